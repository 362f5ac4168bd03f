"""The fast lane for batchInference: a known mutation text answered below Strawberry.

graph/execution/batch_plans.py remembers a batchInference text once the full pipeline
accepted it; graph/transport/fast_lane.py hands a POST of that text here. The steps are the
runInference lane's (graph/transport/inference_lane.py, `MutationLane`): sign in, coerce the
variables and the argument as graphql-core and Strawberry do, the limits and the input
hygiene rule, the rate limit and the inference budget (one per input), then the resolver's
own use case (`queue_batch`, graph/schema/batches.py: the callbackUrl check, create_batch),
the batch as the viewer reads it when the plan shows it, and the payload written by the
plan, without a SubmissionType per input or graphql-core's completion of each. Until the use
case runs, anything the lane is not sure of is handed on uncharged; a domain error is
answered as the reference executor answers it, the inference budget given back.
"""

from __future__ import annotations

from starlette.requests import Request

from domain.principal import Principal
from graph.execution.batch_plans import BATCH_INFERENCE, BatchAnswer
from graph.execution.context import Context
from graph.execution.inference_plans import InferencePlan
from graph.execution.pipeline import RequestState
from graph.schema.batches import BatchInferenceInput, queue_batch
from graph.transport.inference_lane import MutationLane

# The input's fields that graphql-core's coercion leaves as Strawberry would convert them (an
# ID is its text, JSON its value, a list of JSON a list): built directly, without Strawberry's
# generic conversion of each input. Metadata's nested input objects take it.
_PLAIN_FIELDS = frozenset({"modelId", "inputs", "callbackUrl", "metadata"})


def _plain_input(given: object) -> BatchInferenceInput | None:
    """The argument as convert_arguments would give it, when only plain fields are set."""
    if not isinstance(given, dict) or given.get("metadata") is not None:
        return None
    if not given.keys() <= _PLAIN_FIELDS or type(given.get("inputs")) is not list:
        return None
    return BatchInferenceInput(
        model_id=given["modelId"], inputs=given["inputs"], callback_url=given.get("callbackUrl")
    )


class BatchLane(MutationLane[BatchAnswer, BatchInferenceInput]):
    root = BATCH_INFERENCE
    input_type = BatchInferenceInput

    def _plain_input(self, given: object) -> BatchInferenceInput | None:
        return _plain_input(given)

    async def _run(
        self,
        context: Context,
        principal: Principal,
        given: BatchInferenceInput,
        plan: InferencePlan[BatchAnswer],
    ) -> BatchAnswer:
        stored = await queue_batch(context, given)
        if not plan.reads_more:  # the batch is not shown: not read
            return stored, None
        assert stored[0].batch_id is not None, "create_batch always makes a batch"
        return stored, await context.loaders.batch_by_id.load(stored[0].batch_id)

    def _keep(self, request: Request, answer: BatchAnswer) -> None:
        RequestState.of(request).batch_answer = answer
