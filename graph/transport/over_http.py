"""GraphQL over HTTP (the draft spec): media types, and the status codes that go with them."""

from __future__ import annotations

from collections.abc import Sequence

from graphql import GraphQLError

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
_WILDCARDS = frozenset({"*/*", "application/*"})


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media_type, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media_type:
            ranges.append((media_type.lower(), quality))
    return ranges


def negotiate(accept: str | None) -> str | None:
    """The response media type for an Accept header; None when it names nothing we serve.

    No Accept, and wildcards, mean application/json (the spec's legacy default); on a tie the
    explicitly named application/graphql-response+json wins.
    """
    if not accept or not accept.strip():
        return JSON
    best: tuple[float, int, str] | None = None
    for media_type, quality in _ranges(accept):
        if quality <= 0:
            continue
        if media_type == GRAPHQL_RESPONSE_JSON:
            candidate = (quality, 2, GRAPHQL_RESPONSE_JSON)
        elif media_type == JSON:
            candidate = (quality, 1, JSON)
        elif media_type in _WILDCARDS:
            candidate = (quality, 0, JSON)
        else:
            continue
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return None if best is None else best[2]


def is_request_error(data: object, errors: Sequence[GraphQLError] | None) -> bool:
    """A request error: nothing executed (parse, validation, variables, limits, APQ).

    Field errors always carry a path; errors raised before execution never do.
    """
    return data is None and bool(errors) and all(e.path is None for e in errors or ())


def request_error_status(errors: Sequence[GraphQLError]) -> int:
    """The status of a request error under application/graphql-response+json."""
    codes = {(e.extensions or {}).get("code") for e in errors}
    if codes == {"RATE_LIMITED"}:
        return 429
    if codes == {"FORBIDDEN"}:
        return 403
    return 400
