"""CORS on /graphql: preflights, headers on answers (the fast lane's too), refused origins."""

from __future__ import annotations

import httpx

from telemetry import metrics
from tests.integration.conftest import TokenFactory

WEB_APP = "http://localhost:5173"  # allowed by development's default
ELSEWHERE = "https://evil.example"
VIEWER = {"query": "{ viewer { email } }"}


def fast_lane_answers() -> float:
    answered: float = metrics.FAST_LANE.labels("answered")._value.get()
    return answered


async def test_preflight_names_the_methods_and_headers_clients_send(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        "/graphql",
        headers={
            "Origin": WEB_APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-request-id",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == WEB_APP
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-request-id", "x-assay-cost"):
        assert header in allowed
    assert int(response.headers["access-control-max-age"]) > 0


async def test_answers_to_an_allowed_origin_expose_request_id_and_retry_after(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    headers = {"Origin": WEB_APP, "Authorization": f"Bearer {token('cors@example.com')}"}
    before = fast_lane_answers()
    for _ in range(3):  # the first runs the pipeline; later ones the fast lane
        response = await client.post("/graphql", json=VIEWER, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == WEB_APP
        exposed = response.headers["access-control-expose-headers"].lower()
        assert "x-request-id" in exposed
        assert "retry-after" in exposed
    assert fast_lane_answers() > before, "the fast lane answered none of them"


async def test_error_answers_carry_cors_headers_too(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", content=b"{", headers={"Origin": WEB_APP, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == WEB_APP


async def test_other_origins_get_no_cors_headers(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/graphql", headers={"Origin": ELSEWHERE, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    response = await client.post("/graphql", json=VIEWER, headers={"Origin": ELSEWHERE})
    assert "access-control-allow-origin" not in response.headers


async def test_blob_urls_answer_a_browser_as_the_production_bucket_does(
    client: httpx.AsyncClient,
) -> None:
    # The bucket's rule (infra/assay_infra/storage.py): PUT, GET, HEAD; content-type and
    # if-none-match; ETag exposed. The local store's URLs must let a web app do the same.
    response = await client.options(
        "/blobs/assets/some-owner/some-asset/scan.png",
        headers={
            "Origin": WEB_APP,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type, if-none-match",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == WEB_APP
    methods = response.headers["access-control-allow-methods"]
    assert {"PUT", "GET", "HEAD"} <= {m.strip() for m in methods.split(",")}
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed
    assert "if-none-match" in allowed
    answer = await client.get("/blobs/assets/x/y/z.png", headers={"Origin": WEB_APP})
    assert "etag" in answer.headers["access-control-expose-headers"].lower()


async def test_blob_urls_refuse_another_origin_and_graphql_still_refuses_put(
    client: httpx.AsyncClient,
) -> None:
    stranger = await client.options(
        "/blobs/assets/a/b/c.png",
        headers={"Origin": ELSEWHERE, "Access-Control-Request-Method": "PUT"},
    )
    assert stranger.status_code == 400
    assert stranger.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    put_on_api = await client.options(
        "/graphql", headers={"Origin": WEB_APP, "Access-Control-Request-Method": "PUT"}
    )
    assert put_on_api.status_code == 400
