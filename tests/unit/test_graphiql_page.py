"""The GraphiQL page: offline assets, README's operations as tabs, a safe embedded config."""

from __future__ import annotations

import json
import re

from starlette.routing import Mount

from graph.transport.graphiql import (
    ASSETS_DIR,
    EXAMPLES,
    graphiql_page,
    graphiql_routes,
    host_name,
    is_own_host,
)
from graph.transport.models_page import ASSETS_DIR as MODELS_ASSETS
from graph.transport.models_page import models_page


def embedded_config(page: str) -> dict[str, object]:
    match = re.search(r'id="assay-graphiql-config">(.*?)</script>', page, flags=re.DOTALL)
    assert match is not None
    config: dict[str, object] = json.loads(match.group(1))
    return config


def test_page_loads_only_its_own_assets() -> None:
    page = graphiql_page()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    # and the link to the model monitoring page, served by this server too
    assert sources == ["data:,", "/graphiql/graphiql.css", "/models", "/graphiql/graphiql.js"]


def test_the_models_page_loads_only_its_own_assets_and_reads_only_graphql() -> None:
    page = models_page("/graphql", None)
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources == [
        "data:,",
        "/models-assets/models.css",
        "/graphql",
        "/models-assets/models.js",
    ]
    script = (MODELS_ASSETS / "models.js").read_text()
    assert "config.endpoint" in script
    assert "http" not in script.replace("http://www.w3.org/2000/svg", "")  # no CDN, no other API


def test_built_assets_are_in_the_package() -> None:
    for name in ("graphiql.js", "graphiql.css"):
        assert (ASSETS_DIR / name).stat().st_size > 10_000, f"run the build in graphiql/: {name}"


def test_every_example_is_a_tab_with_the_bearer_template() -> None:
    config = embedded_config(graphiql_page("/graphql"))
    tabs = config["tabs"]
    assert isinstance(tabs, list)
    assert [tab["query"] for tab in tabs] == [query for query, _ in EXAMPLES]
    assert all("Bearer <paste a token" in tab["headers"] for tab in tabs)
    operations = " ".join(tab["query"] for tab in tabs)
    for field in (
        "viewer",
        "models",
        "runInference",
        "createSubmission",
        "submissions(first: 20",
        "requestAssetUpload",
        "submissionUpdated",
    ):
        assert field in operations
    assert config["endpoint"] == "/graphql"


def test_endpoint_cannot_close_the_script_element() -> None:
    page = graphiql_page("/graphql</script><script>alert(1)</script>")
    assert page.count("</script>") == 2
    assert embedded_config(page)["endpoint"] == "/graphql</script><script>alert(1)</script>"


def test_no_asset_routes_when_graphiql_is_off() -> None:
    assert graphiql_routes(enabled=False) == []
    [route] = graphiql_routes(enabled=True)
    assert isinstance(route, Mount)
    assert route.path == "/graphiql"


def test_only_the_servers_own_names_are_its_hosts() -> None:
    public = host_name("https://api.example.com")
    assert public == "api.example.com"
    for own in ("localhost", "localhost:8000", "127.0.0.1:80", "[::1]:8000", "API.example.com"):
        assert is_own_host(own, public), own
    for other in ("rebind.example", "127.0.0.1.nip.io", "[::2]", "", None, "[::1", "a b"):
        assert not is_own_host(other, public), other
