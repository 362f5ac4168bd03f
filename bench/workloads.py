"""The benchmark's fixed GraphQL documents and the request bodies built from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

USERS_PAGE = 100
SUBMISSIONS_PER_USER_PAGE = 10

# W1: a nested list, ~2,100 objects plus models and assets.
W1_QUERY = """query W1 {
  users(first: 100) {
    edges {
      cursor
      node {
        id
        email
        name
        createdAt
        submissions(first: 10, orderBy: CREATED_AT_ASC) {
          edges {
            node {
              id
              status
              createdAt
              model { id name }
              assets { id fileName sizeBytes }
              results { id prediction confidence createdAt }
            }
          }
          pageInfo { hasNextPage endCursor }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

# W2: a point lookup with its owner, model and results.
W2_QUERY = """query W2($id: ID!) {
  submission(id: $id) {
    id
    status
    input
    attempts
    createdAt
    updatedAt
    owner { id email name }
    model { id name version }
    results { id prediction confidence modelVersion createdAt }
  }
}"""

# W3: a write; the workers are off, so the submission stays PENDING.
W3_MUTATION = """mutation W3($input: CreateSubmissionInput!) {
  createSubmission(input: $input) { submission { id status createdAt } }
}"""

# W4: the fan-out subscription.
W4_SUBSCRIPTION = "subscription W4 { submissionUpdated { id status } }"

# W5: a batch run by the workers, and the poll that counts what they finished.
W5_MUTATION = """mutation W5($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { id } }
}"""
W5_POLL = "query W5Poll { submissions(first: 1, status: SUCCEEDED) { totalCount } }"

IRIS_INPUT: Mapping[str, float] = {
    "sepal_length_cm": 5.9,
    "sepal_width_cm": 3.0,
    "petal_length_cm": 5.1,
    "petal_width_cm": 1.8,
}

ALL_DOCUMENTS: Mapping[str, str] = {
    "W1": W1_QUERY,
    "W2": W2_QUERY,
    "W3": W3_MUTATION,
    "W4": W4_SUBSCRIPTION,
    "W5": W5_MUTATION,
    "W5Poll": W5_POLL,
}


@dataclass(frozen=True)
class Workload:
    """A timed HTTP workload: its name and the bodies its requests cycle through."""

    name: str
    title: str
    bodies: Sequence[bytes]


def body(query: str, operation: str, variables: Mapping[str, object] | None = None) -> bytes:
    return orjson.dumps({"query": query, "operationName": operation, "variables": variables or {}})


def w1() -> Workload:
    return Workload("W1", "nested list", [body(W1_QUERY, "W1")])


def w2(submission_ids: Sequence[str]) -> Workload:
    bodies = [body(W2_QUERY, "W2", {"id": i}) for i in submission_ids]
    return Workload("W2", "point lookup", bodies)


def create_submission_variables(model_id: str, n: int = 0) -> dict[str, object]:
    features = {k: round(v + (n % 7) / 10, 2) for k, v in IRIS_INPUT.items()}
    return {"input": {"modelId": model_id, "input": features}}


def w3(model_id: str, variants: int = 64) -> Workload:
    bodies = [
        body(W3_MUTATION, "W3", create_submission_variables(model_id, n)) for n in range(variants)
    ]
    return Workload("W3", "createSubmission", bodies)


def w5_body(model_id: str, count: int) -> bytes:
    inputs = [dict(IRIS_INPUT) for _ in range(count)]
    return body(W5_MUTATION, "W5", {"input": {"modelId": model_id, "inputs": inputs}})
