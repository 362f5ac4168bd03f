"""The fast lane: known compiled queries answered below Strawberry's HTTP view.

A query document enters the fast lane only after the full path (parsing with the token
limit, validation, introspection policy, the document limits) accepted it and answered it on
the compiled path; `KnownQueries` remembers it by (query text, operation name). A later POST
of the same text then skips re-parsing, Strawberry's per-request view and extension hooks, and
runs the steps of the request pipeline (graph/execution/pipeline.py) that depend on the request, the
same `Pipeline` methods the full path's extensions call: authenticate, resolve the document,
the variable-dependent limits (depth, aliases, cost, input hygiene), charge the rate limit,
execute the compiled plan, record (metrics and the request log).

Persisted queries (by hash, or trusted documents) take the lane when this process already
knows what the full pipeline would resolve them to (PersistedQueries.resolve_in_memory).

Whatever the lane is not sure to answer exactly as the full pipeline would, it hands on,
untouched and uncharged: another verb or media type, other extensions, the cost header, a
batch, unknown text, a persisted query to look up or remember, a caller who is not signed
in, a limit or rate limit that would refuse, an input the hygiene rule refuses
(graph/protection/input_hygiene.py), or a compiled run that falls back. The full
pipeline then answers, reusing the body, and through the request's RequestState the caller
and the compiled attempt the lane already made; a charge the lane made is given back first.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import orjson
from graphql import GraphQLSchema
from starlette.requests import Request
from starlette.responses import Response
from strawberry.http.parse_content_type import parse_content_type

from domain.ports import UnitOfWork, UnitOfWorkFactory
from domain.principal import Principal
from graph.execution.extension import KnownQueries, KnownQuery
from graph.execution.pipeline import Pipeline
from graph.execution.query_protection import COST_HEADER
from graph.transport.batch_lane import BatchLane
from graph.transport.inference_lane import InferenceLane
from graph.transport.lanes import admitted, answered, hand_on
from graph.transport.over_http import JSON, negotiate

_REQUEST_KEYS = frozenset({"query", "operationName", "variables", "extensions"})
_APQ = frozenset({"persistedQuery"})


class FastLane:
    def __init__(
        self,
        schema: GraphQLSchema,
        pipeline: Pipeline,
        known: KnownQueries,
        reads: UnitOfWorkFactory,
        *,
        inference: InferenceLane | None = None,
        batch: BatchLane | None = None,
    ) -> None:
        self.schema = schema
        self.pipeline = pipeline
        self.known = known
        self.reads = reads
        self.inference = inference  # known runInference texts (graph/transport/inference_lane.py)
        self.batch = batch  # known batchInference texts (graph/transport/batch_lane.py)

    async def answer(self, request: Request) -> Response | None:
        """The response, or None for the full pipeline (the body stays readable for it)."""
        headers = request.headers
        if headers.get(COST_HEADER) == "1":
            return hand_on("not_eligible")
        media_type = negotiate(headers.get("accept"))
        if media_type is None or not _is_json(headers.get("content-type") or ""):
            return hand_on("not_eligible")
        body = await request.body()  # kept on the request: the full pipeline reads it again
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return hand_on("not_eligible")
        if type(payload) is not dict or not payload.keys() <= _REQUEST_KEYS:
            return hand_on("not_eligible")
        query = payload.get("query")
        operation_name = payload.get("operationName")
        variables = payload.get("variables")
        extensions = payload.get("extensions")
        if (
            not (query is None or type(query) is str)
            or not (operation_name is None or type(operation_name) is str)
            or not (variables is None or type(variables) is dict)
            or not (extensions is None or (type(extensions) is dict and extensions.keys() <= _APQ))
        ):
            return hand_on("not_eligible")
        known = None
        if query is not None and extensions is None:
            known = self.known.get(query, operation_name)
            if known is None:
                lane = self.inference
                if lane is not None and (run := lane.known.get(query, operation_name)):
                    return await lane.answer(request, run, query, variables, media_type)
                batch = self.batch
                if batch is not None and (queue := batch.known.get(query, operation_name)):
                    return await batch.answer(request, queue, query, variables, media_type)
                return hand_on("unknown_document")  # the common case, before any sign-in
        # One connection for the sign-in and the plan (the unit of work is reentrant); it is
        # back in the pool before the full pipeline runs, when the request is handed on.
        reader = self.reads()
        async with reader:
            return await self._answer(
                request, reader, known, query, operation_name, variables, extensions, media_type
            )

    async def _answer(
        self,
        request: Request,
        reader: UnitOfWork,
        known: KnownQuery | None,
        query: str | None,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        extensions: dict[str, Any] | None,
        media_type: str,
    ) -> Response | None:
        pipeline = self.pipeline
        principal_or_error = await pipeline.authenticate(request, reader)  # kept for the full path
        if not isinstance(principal_or_error, Principal):
            return hand_on("signed_out")
        resolved = await pipeline.resolve_document(
            query, extensions, principal_or_error, in_memory=True
        )
        if resolved is None or resolved.document is None:
            return hand_on("persisted_query")
        if known is None:  # named by a persisted query: known by the text it resolved to?
            known = self.known.get(resolved.document, operation_name)
            if known is None:
                return hand_on("unknown_document")
        query = resolved.document
        started = time.perf_counter()
        context = pipeline.context(request, None)
        context.read_uow = lambda: reader
        admission = await admitted(pipeline, self.schema, known, variables, context)
        if isinstance(admission, str):
            return hand_on(admission)
        charged, _ = admission

        data = await pipeline.execute(
            context, self.schema, known.document, query, known.operation_name, variables
        )
        if data is None:  # tried once: the full path goes straight to the reference executor
            pipeline.refund(charged)  # and charges it again
            return hand_on("fallback")

        return answered(
            pipeline,
            context,
            orjson.dumps({"data": data}),
            media_type,
            operation_name=known.operation_name,
            operation_type="query",
            started=started,
        )


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str) -> bool:
    """Strawberry's reading of a Content-Type, remembered: clients send a handful of
    spellings, and its parser (the email package's) costs ~2% of a point lookup."""
    return parse_content_type(content_type)[0] == JSON
