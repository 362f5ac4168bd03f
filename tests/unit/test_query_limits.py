"""Query limits and the cost model, on the real schema, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import get_introspection_query, parse

from graph.execution.query_protection import strip_suggestions
from graph.protection.limits import (
    OperationMeasure,
    QueryLimits,
    check_document,
    check_operation,
    count_tokens,
    measure_operation,
)
from graph.schema.record import schema

LIMITS = QueryLimits()


def measure(query: str, variables: dict[str, Any] | None = None) -> OperationMeasure:
    result = measure_operation(schema._schema, parse(query), None, variables)
    assert result is not None
    return result


def nested(depth: int) -> str:
    """`{ viewer { submissions { edges { node { owner ... } } } } }`, `depth` fields deep."""
    cycle = ["submissions", "edges", "node", "owner"]
    names = ["viewer"] + [cycle[i % 4] for i in range(depth - 2)]
    leaf = {"submissions": "totalCount", "edges": "cursor"}.get(names[-1], "id")
    return "{ " + " { ".join([*names, leaf]) + " }" * len(names) + " }"


def violation(query: str, limits: QueryLimits = LIMITS) -> dict[str, Any] | None:
    error = check_operation(measure(query), limits)
    return None if error is None else dict(error.extensions or {})


def test_scalar_costs_nothing_and_an_object_one() -> None:
    assert measure("{ __typename }").cost == 0
    assert measure("{ viewer { id name } }").cost == 1


def test_connection_costs_first_times_its_subtree() -> None:
    query = "{ submissions(first: 10) { edges { node { id results { id } } } } }"

    # submissions: 10 * (1 + edges (1 + node (1 + results 10 * 1)))
    assert measure(query).cost == 10 * (1 + 1 + 1 + 10)


def test_connection_without_first_costs_twenty() -> None:
    assert measure("{ assets { edges { node { id } } } }").cost == 20 * 3


def test_first_read_from_variables_and_their_defaults() -> None:
    query = "query($n: Int = 7) { assets(first: $n) { totalCount } }"

    assert measure(query, {"n": 3}).cost == 3
    assert measure(query).cost == 7
    assert measure("query($n: Int) { assets(first: $n) { totalCount } }").cost == 20


@pytest.mark.parametrize("first", ["-5", "null", "0", "1000000", '"x"', "$missing"])
def test_weird_first_values_do_not_crash_the_cost(first: str) -> None:
    query = f"query($missing: Int) {{ assets(first: {first}) {{ totalCount }} }}"

    assert 0 <= measure(query).cost <= 100


def test_nested_connections_multiply() -> None:
    query = """{ users(first: 10) { edges { node { submissions(first: 5) {
        edges { node { id } } } } } } }"""

    # users: 10 * (1 + edges (1 + node (1 + submissions 5 * (1 + 1 + 1))))
    assert measure(query).cost == 10 * (1 + 1 + 1 + 5 * 3)


def test_list_fields_cost_their_bound() -> None:
    assert measure("{ models { id } }").cost == 100
    assert measure('{ nodes(ids: ["a", "b", "c"]) { id } }').cost == 3
    assert measure("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["a"] * 7}).cost == 7
    assert measure('{ submission(id: "s") { assets { id } } }').cost == 1 + 10


def test_fragments_and_inline_fragments_count_where_spread() -> None:
    query = """
    { a: submission(id: "1") { ...Results } b: submission(id: "2") { ...Results }
      node(id: "3") { ... on Submission { results { id } } } }
    fragment Results on Submission { results { id } }
    """

    measured = measure(query)

    assert measured.cost == 3 * (1 + 10)
    assert measured.aliases == 2
    assert measured.depth == 3


def test_fragment_bomb_is_measured_without_exploding() -> None:
    spreads = "\n".join(f"fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    query = f"{{ viewer {{ ...F0 }} }}\n{spreads}\nfragment F40 on User {{ id }}"

    assert measure(query).cost == 1


def test_introspection_query_passes_every_limit() -> None:
    query = get_introspection_query(
        descriptions=True, specified_by_url=True, directive_is_repeatable=True
    )

    assert check_document(query, LIMITS) is None
    measured = measure(query)
    assert measured.cost == 0
    assert measured.depth == 0
    assert check_operation(measured, LIMITS) is None


def test_depth_at_and_over_the_limit() -> None:
    assert measure(nested(10)).depth == 10
    assert violation(nested(10)) is None
    assert violation(nested(11)) == {"code": "QUERY_TOO_COMPLEX", "cost": 11, "limit": 10}


def test_aliases_at_and_over_the_limit() -> None:
    def aliased(count: int) -> str:
        return "{ viewer { " + " ".join(f"a{i}: id" for i in range(count)) + " } }"

    assert violation(aliased(30)) is None
    assert violation(aliased(31)) == {"code": "QUERY_TOO_COMPLEX", "cost": 31, "limit": 30}


def test_directives_at_and_over_the_limit() -> None:
    def directed(count: int) -> str:
        return "{ viewer { id " + "@include(if: true) " * count + "} }"

    assert violation(directed(50)) is None
    assert violation(directed(51)) == {"code": "QUERY_TOO_COMPLEX", "cost": 51, "limit": 50}


def test_root_fields_at_and_over_the_limit() -> None:
    limits = QueryLimits(max_aliases=100)

    def wide(count: int) -> str:
        return "{ " + " ".join(f"f{i}: viewer {{ id }}" for i in range(count)) + " }"

    assert violation(wide(20), limits) is None
    error = violation(wide(21), limits)
    assert error == {"code": "QUERY_TOO_COMPLEX", "cost": 21, "limit": 20}


def test_cost_at_and_over_the_limit() -> None:
    limits = QueryLimits(max_cost=100)

    assert violation("{ models { id } }", limits) is None
    assert violation("{ models { id } viewer { id } }", limits) == {
        "code": "QUERY_TOO_COMPLEX",
        "cost": 101,
        "limit": 100,
    }


def test_document_size_at_and_over_the_limit() -> None:
    limits = QueryLimits(max_document_bytes=100)
    at_limit = "{ __typename }".ljust(100)

    assert check_document(at_limit, limits) is None
    error = check_document(at_limit + " ", limits)
    assert error is not None
    assert error.extensions == {"code": "QUERY_TOO_COMPLEX", "cost": 101, "limit": 100}


def test_tokens_at_and_over_the_limit() -> None:
    limits = QueryLimits(max_tokens=10)
    query = "{ a b c d e f g h }"  # braces and 8 names

    assert count_tokens(query) == 10
    assert check_document(query, limits) is None
    error = check_document("{ a b c d e f g h i }", limits)
    assert error is not None
    assert error.extensions == {"code": "QUERY_TOO_COMPLEX", "cost": 11, "limit": 10}
    assert "tokens" in error.message


def test_inference_requests_are_counted_per_input() -> None:
    query = """mutation($inputs: [JSON!]!) {
        batchInference(input: {modelId: "m", inputs: $inputs}) { submissions { id } }
        createSubmission(input: {modelId: "m", input: {}}) { submission { id } }
        updateViewer(input: {name: "x"}) { id } }"""

    assert measure(query, {"inputs": [1, 2, 3]}).inference_requests == 4
    assert measure("{ viewer { id } }").inference_requests == 0


def test_suggestions_are_stripped() -> None:
    message = "Cannot query field 'nam' on type 'User'. Did you mean 'name'?"

    assert strip_suggestions(message) == "Cannot query field 'nam' on type 'User'."
