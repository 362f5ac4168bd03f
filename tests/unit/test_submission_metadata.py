"""Submission metadata as the domain checks it: bounds, distinct keys, stored sorted."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.history import SubmissionFilter
from domain.submissions import MetadataEntry, checked_metadata


def test_labels_are_stored_sorted_by_key() -> None:
    checked = checked_metadata([("team", "red"), ("order", "A-17")], "input.metadata")

    assert checked == (MetadataEntry("order", "A-17"), MetadataEntry("team", "red"))


def test_no_labels_are_none() -> None:
    assert checked_metadata([], "input.metadata") == ()


@pytest.mark.parametrize(
    ("pairs", "paths"),
    [
        ([(f"k{n}", "v") for n in range(17)], ["input.metadata"]),
        ([("", "v")], ["input.metadata.0.key"]),
        ([("k" * 65, "v")], ["input.metadata.0.key"]),
        ([("a\x00b", "v")], ["input.metadata.0.key"]),
        ([("ok", "v" * 257)], ["input.metadata.0.value"]),
        ([("a", "1"), ("b", "2"), ("a", "3")], ["input.metadata.2.key"]),
        ([("", "v" * 257)], ["input.metadata.0.key", "input.metadata.0.value"]),
    ],
)
def test_bad_labels_name_each_bad_field(pairs: list[tuple[str, str]], paths: list[str]) -> None:
    with pytest.raises(InvalidInput) as raised:
        checked_metadata(pairs, "input.metadata")

    assert sorted(raised.value.fields) == sorted(paths)


def test_the_limits_themselves_are_accepted() -> None:
    pairs = [(f"{n:02}" + "k" * 62, "v" * 256) for n in range(16)]

    assert len(checked_metadata(pairs, "input.metadata")) == 16


def test_a_filter_pair_is_checked_like_a_label() -> None:
    assert SubmissionFilter.checked(None, None, None, metadata=("k", "v")).metadata == (
        MetadataEntry("k", "v")
    )
    with pytest.raises(InvalidInput) as raised:
        SubmissionFilter.checked(None, None, None, metadata=("", "v" * 257))

    assert sorted(raised.value.fields) == ["filter.metadata.key", "filter.metadata.value"]
