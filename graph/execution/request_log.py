"""One structured log line per GraphQL operation (logger `assay.request`).

Never logged: variables, documents, tokens, URLs; only names, codes, counts and timings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from graphql import GraphQLError

from domain.principal import Principal
from graph.execution.context import Context
from telemetry import metrics

logger = logging.getLogger("assay.request")


def error_codes(errors: Sequence[GraphQLError] | None) -> list[str]:
    return [str((e.extensions or {}).get("code", "INTERNAL")) for e in errors or ()]


def log_operation(
    context: Context,
    *,
    operation_name: str | None,
    operation_type: str,
    duration_seconds: float,
    errors: Sequence[GraphQLError] | None,
) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return  # e.g. ASSAY_LOG_LEVEL=WARNING: the line would be dropped after being built
    principal = context.principal_or_error
    statements = metrics.REQUEST_STATEMENTS.get()
    codes = error_codes(errors)
    duration_ms = round(duration_seconds * 1000, 2)
    fields = {
        "request_id": context.request_id,
        "operation_name": operation_name,
        "operation_type": operation_type,
        "principal_id": str(principal.user_id) if isinstance(principal, Principal) else None,
        "duration_ms": duration_ms,
        "cost": context.cost,
        "error_codes": codes,
        "sql_statements": statements.value if statements is not None else None,
    }
    logger.info(
        "%s %s %s in %.1f ms (request %s)",
        operation_type,
        operation_name or "<anonymous>",
        ",".join(codes) if codes else "ok",
        duration_ms,
        context.request_id,
        extra=fields,
    )
