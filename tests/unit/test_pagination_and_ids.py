"""Page requests and pages; Relay global ids and keyset cursors, including malformed ones."""

from __future__ import annotations

import base64
import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from domain.errors import InvalidInput
from domain.ids import new_id
from domain.pagination import DEFAULT_PAGE_SIZE, Keyset, Page, PageRequest, keyset_of
from graph.ids import from_cursor, from_global_id, parse_id, to_cursor, to_global_id

NOW = datetime(2026, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    created_at: datetime
    id: UUID


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def test_new_ids_are_version_7_in_time_order_and_each_greater_than_the_last() -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    ids = [new_id() for _ in range(10_000)]  # many within one millisecond
    after = int(datetime.now(UTC).timestamp() * 1000)
    assert all(isinstance(i, UUID) and i.version == 7 for i in ids)
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert len(set(ids)) == len(ids)
    assert before <= ids[0].int >> 80 <= ids[-1].int >> 80 <= after


def test_page_request_defaults_to_the_default_size() -> None:
    assert PageRequest.checked(None, None) == PageRequest(first=DEFAULT_PAGE_SIZE, after=None)


@pytest.mark.parametrize("first", [1, 50, 100])
def test_page_request_accepts_1_to_100(first: int) -> None:
    assert PageRequest.checked(first, None).first == first


@pytest.mark.parametrize("first", [0, -1, 101])
def test_page_request_out_of_bounds_is_invalid_input_naming_the_path(first: int) -> None:
    with pytest.raises(InvalidInput) as raised:
        PageRequest.checked(first, None, path="submissions.first")

    assert list(raised.value.fields) == ["submissions.first"]
    assert str(first) in raised.value.fields["submissions.first"]


def _items(count: int) -> list[Item]:
    return [Item(NOW + timedelta(seconds=n), uuid.uuid4()) for n in range(count)]


def test_page_from_overfetch_with_one_extra_row_has_a_next_page() -> None:
    rows = _items(4)

    page = Page.from_overfetch(rows, PageRequest(first=3))

    assert list(page.items) == rows[:3]
    assert (page.has_next_page, page.has_previous_page) == (True, False)


def test_page_from_overfetch_of_exactly_first_rows_has_no_next_page() -> None:
    rows = _items(3)
    after = keyset_of(_items(1)[0])

    page = Page.from_overfetch(rows, PageRequest(first=3, after=after))

    assert list(page.items) == rows
    assert (page.has_next_page, page.has_previous_page) == (False, True)


def test_empty_page() -> None:
    page: Page[Item] = Page.empty()

    assert (list(page.items), page.has_next_page, page.has_previous_page) == ([], False, False)


def test_keysets_order_by_time_then_id() -> None:
    low, high = UUID(int=1), UUID(int=2)

    assert Keyset(NOW, low) < Keyset(NOW, high) < Keyset(NOW + timedelta(microseconds=1), low)


@pytest.mark.parametrize("type_name", ["User", "Asset", "Model", "Submission", "Result"])
def test_global_id_round_trips(type_name: str) -> None:
    ident = uuid.uuid4()

    encoded = to_global_id(type_name, ident)

    assert from_global_id(encoded) == (type_name, ident)
    assert "=" not in encoded
    assert parse_id(encoded, type_name) == ident


def test_parse_id_of_another_type_is_none() -> None:
    assert parse_id(to_global_id("User", uuid.uuid4()), "Submission") is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not base64 at all!",
        b64("User"),
        b64("User:not-a-uuid"),
        b64(f"Bogus:{uuid.uuid4()}"),
        b64(f":{uuid.uuid4()}"),
        base64.urlsafe_b64encode(b"\xff\xfe:\x00").decode(),
    ],
)
def test_malformed_global_id_is_invalid_input_naming_the_path(bad: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        from_global_id(bad, path="input.modelId")

    assert list(raised.value.fields) == ["input.modelId"]


def test_cursor_round_trips() -> None:
    keyset = Keyset(NOW, uuid.uuid4())

    assert from_cursor(to_cursor(keyset, "Submission"), "Submission") == keyset


def test_a_cursor_given_before_cursors_named_their_list_still_pages_on() -> None:
    keyset = Keyset(NOW, uuid.uuid4())
    older = b64(f"{NOW.isoformat()}|{keyset.id}")

    assert from_cursor(older, "Submission") == keyset
    assert from_cursor(older, "Asset", "before") == keyset


def test_no_cursor_is_none() -> None:
    assert from_cursor(None, "Asset") is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "%%%",
        b64("s|2026-01-01T00:00:00+00:00"),
        b64(f"s|yesterday|{uuid.uuid4()}"),
        b64("s|2026-01-01T00:00:00+00:00|nope"),
        b64(f"s|2026-01-01T00:00:00|{uuid.uuid4()}"),  # no time zone
        b64(f"a|2026-01-01T00:00:00+00:00|{uuid.uuid4()}"),  # an asset's, in submissions
    ],
)
def test_malformed_cursor_is_invalid_input_naming_after(bad: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        from_cursor(bad, "Submission")

    assert list(raised.value.fields) == ["after"]


def test_last_scans_the_other_way_from_before_and_stops_at_after() -> None:
    after, before = (keyset_of(i) for i in _items(2))

    request = PageRequest.checked(None, after, descending=True, last=5, before=before)

    assert request == PageRequest(
        first=5, after=before, descending=False, until=after, is_backward=True
    )


def test_first_with_before_stops_short_of_it() -> None:
    before = keyset_of(_items(1)[0])

    assert PageRequest.checked(3, None, before=before).until == before


@pytest.mark.parametrize("last", [0, 101])
def test_last_out_of_bounds_is_invalid_input_naming_last(last: int) -> None:
    with pytest.raises(InvalidInput) as raised:
        PageRequest.checked(None, None, last=last)

    assert list(raised.value.fields) == ["last"]


def test_first_with_last_is_invalid_input_naming_last() -> None:
    with pytest.raises(InvalidInput) as raised:
        PageRequest.checked(5, None, last=5)

    assert list(raised.value.fields) == ["last"]


def test_the_default_first_a_schema_fills_in_does_not_count_against_last() -> None:
    assert PageRequest.checked(DEFAULT_PAGE_SIZE, None, last=5).first == 5


def test_a_backward_page_is_in_list_order_with_more_before_it_from_the_overfetch() -> None:
    scanned = _items(4)[::-1]  # newest first: the other way from an oldest-first list

    page = Page.from_overfetch(scanned, PageRequest(first=3, descending=True, is_backward=True))

    assert list(page.items) == scanned[:3][::-1]
    assert (page.has_previous_page, page.has_next_page) == (True, False)


def test_a_backward_page_from_before_has_a_next_page_and_none_before_when_short() -> None:
    before = keyset_of(_items(1)[0])
    request = PageRequest(first=3, after=before, descending=True, is_backward=True)

    page = Page.from_overfetch(_items(2)[::-1], request)

    assert (page.has_previous_page, page.has_next_page) == (False, True)


def test_a_page_that_stops_at_a_cursor_has_a_next_page() -> None:
    until = keyset_of(_items(1)[0])

    page = Page.from_overfetch(_items(2), PageRequest(first=3, until=until))

    assert (page.has_previous_page, page.has_next_page) == (False, True)


def test_a_cursor_of_another_kind_of_list_is_invalid_input_naming_the_argument() -> None:
    cursor = to_cursor(Keyset(NOW, uuid.uuid4()), "Asset")

    with pytest.raises(InvalidInput) as raised:
        from_cursor(cursor, "Submission", "before")

    assert list(raised.value.fields) == ["before"]


class _DriverUUID(UUID):
    """A UUID subclass, as asyncpg's own is: orjson does not write it, str() does."""


@pytest.mark.parametrize("type_name", ["User", "Submission", "Result", "Batch", "WebhookDelivery"])
def test_a_global_id_is_the_type_and_the_uuid_text_in_base64url(type_name: str) -> None:
    for ident in (new_id(), uuid.uuid4(), UUID(int=0), UUID(int=2**128 - 1)):
        expected = b64(f"{type_name}:{ident}")
        assert to_global_id(type_name, ident) == expected
        assert to_global_id(type_name, _DriverUUID(int=ident.int)) == expected
        assert from_global_id(expected) == (type_name, ident)
