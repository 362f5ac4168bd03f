"""A request's context: the application's shared one with the request's own parts."""

from __future__ import annotations

import uuid

import pytest
from starlette.requests import Request

from domain.errors import Unauthenticated
from domain.principal import Principal
from domain.services.assets import UploadPolicy
from graph.execution.context import Context
from tests.unit.fakes import FakeBlobStore, FakeClock, FakeUnitOfWork


def _shared() -> Context:
    return Context(
        request_id="-",
        uow=FakeUnitOfWork,
        clock=FakeClock(),
        admin_group="admin",
        blobs=FakeBlobStore(),
        download_url_ttl=60,
        upload_policy=UploadPolicy(),
        run_inference_timeout=1.0,
        max_subscriptions_per_connection=3,
    )


def _request(request_id: str) -> Request:
    return Request({"type": "http", "headers": [], "state": {"request_id": request_id}})


def test_a_requests_context_has_the_shared_services_and_its_own_request_and_caller() -> None:
    shared = _shared()
    person = Principal(user_id=uuid.uuid4(), subject="s", groups=(), is_admin=False)
    request = _request("req-1")
    context = shared.for_request(request, None, person, compiled_declined=True)
    assert (context.request_id, context.request, context.principal) == ("req-1", request, person)
    assert context.compiled_declined
    assert (context.uow, context.clock, context.blobs) == (shared.uow, shared.clock, shared.blobs)
    assert context.max_subscriptions_per_connection == 3


def test_requests_do_not_share_what_each_one_changes_on_its_context() -> None:
    shared = _shared()
    first = shared.for_request(_request("a"), None, Unauthenticated())
    second = shared.for_request(_request("b"), None, Unauthenticated())
    first.cost = 7
    first.open_subscriptions += 1
    first.rate_limit_headers = (("RateLimit", "r=1"),)
    for untouched in (second, shared):
        assert (untouched.cost, untouched.open_subscriptions) == (None, 0)
        assert untouched.rate_limit_headers == ()
    assert shared.request is None
    with pytest.raises(Unauthenticated):
        _ = second.principal
