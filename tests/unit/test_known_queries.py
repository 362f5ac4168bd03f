"""What the fast lane may skip for a known text: the memo of measurements, and the names."""

from __future__ import annotations

from typing import Any

from graphql import parse

from graph.execution.extension import MAX_MEASURE_KEY_BYTES, KnownQueries
from graph.protection.limits import measure_operation, measured_variables
from graph.schema.record import schema

PAGES = """
query Pages($first: Int, $n: Int = 5, $id: ID!, $ids: [ID!]!, $flag: Boolean!) {
  viewer { submissions(first: $first) @include(if: $flag) { edges { node { id } } } }
  one: submission(id: $id) { assets(first: $n) { totalCount } }
  nodes(ids: $ids) { id }
}
"""


def test_measured_variables_are_those_in_the_arguments_a_measurement_reads() -> None:
    assert measured_variables(parse(PAGES)) == ("first", "ids", "n")
    assert measured_variables(parse("query($id: ID!) { submission(id: $id) { id } }")) == ()
    mutation = (
        "mutation($in: BatchInferenceInput!) { batchInference(input: $in) { clientMutationId } }"
    )
    assert measured_variables(parse(mutation)) == ("in",)


def test_a_known_query_measures_as_measure_operation_for_each_value_it_reads() -> None:
    known = KnownQueries(10)
    document = parse(PAGES)
    known.remember(PAGES, "Pages", document)
    entry = known.get(PAGES, "Pages")
    assert entry is not None
    graphql_schema = schema._schema
    cases: list[dict[str, Any]] = [
        {"first": 3, "id": "a", "ids": ["x"], "flag": True},
        {"first": 3, "id": "b", "ids": ["x"], "flag": False},  # the same measure: memoized
        {"first": 50, "id": "a", "ids": ["x", "y"], "flag": True},
        {"first": None, "n": 7, "ids": [], "flag": True},
        {},
    ]
    for variables in cases:
        expected = measure_operation(graphql_schema, document, "Pages", variables)
        assert entry.measure(graphql_schema, variables) == expected
        assert entry.measure(graphql_schema, variables) == expected
    assert len(entry.measures) == 4
    known.remember(PAGES, "Pages", parse(PAGES))  # the pipeline answering it again (a GET)
    assert known.get(PAGES, "Pages") is entry  # kept, with what it measured


def test_a_measurement_of_large_values_is_made_each_time_and_not_kept() -> None:
    text = "mutation($in: BatchInferenceInput!) { batchInference(input: $in) { batch { id } } }"
    known = KnownQueries(10)
    document = parse(text)
    known.remember(text, None, document)
    entry = known.get(text, None)
    assert entry is not None
    graphql_schema = schema._schema
    row = {"sepal_length_cm": 5.1, "sepal_width_cm": 3.5}
    for count in (1, 1000, 999):
        variables = {"in": {"modelId": "m", "inputs": [row] * count}}
        expected = measure_operation(graphql_schema, document, None, variables)
        assert entry.measure(graphql_schema, variables) == expected
        assert expected is not None
        assert expected.inference_requests == count
    assert all(len(key) <= MAX_MEASURE_KEY_BYTES for key in entry.measures)
    assert len(entry.measures) == 1  # the one small batch


def test_a_document_of_one_operation_is_also_known_without_its_name() -> None:
    known = KnownQueries(10)
    known.remember(PAGES, "Pages", parse(PAGES))
    two = "query A { viewer { id } } query B { viewer { name } }"
    known.remember(two, "A", parse(two))

    assert known.get(PAGES, None) is known.get(PAGES, "Pages") is not None
    assert known.get(two, "A") is not None
    assert known.get(two, None) is None
    assert known.get(two, "B") is None
