"""The Query, Mutation and Subscription roots, assembled from the entity modules."""

from __future__ import annotations

import strawberry

from graph.schema.accounts import AccountMutations, AccountQueries
from graph.schema.assets import AssetMutations, AssetQueries
from graph.schema.batches import BatchMutations, BatchQueries
from graph.schema.lookups import NodeQueries
from graph.schema.model_alerts import ModelAlertMutations, ModelAlertQueries
from graph.schema.models import ModelQueries
from graph.schema.results import ResultQueries
from graph.schema.submissions import SubmissionMutations, SubmissionQueries
from graph.schema.subscriptions import Subscription
from graph.schema.users import UserMutations, UserQueries
from graph.schema.webhooks import WebhookMutations, WebhookQueries


@strawberry.type(
    description="Reads. Every field needs a signed-in caller: UNAUTHENTICATED without a valid "
    "token or API key, FORBIDDEN for a deactivated user. Other users' objects are NOT_FOUND "
    "except to administrators. Any operation can be QUERY_TOO_COMPLEX (size, depth, aliases, "
    "cost) or RATE_LIMITED (`extensions.retryAfterSeconds` says when to retry)."
)
class Query(
    NodeQueries,
    UserQueries,
    AssetQueries,
    SubmissionQueries,
    ResultQueries,
    ModelQueries,
    BatchQueries,
    WebhookQueries,
    AccountQueries,
    ModelAlertQueries,
):
    pass


@strawberry.type(
    description="Changes, each in its own transaction; the same sign-in, limit and rate errors "
    "as Query. Invalid input is BAD_USER_INPUT with `extensions.fields` naming each input path."
)
class Mutation(
    UserMutations,
    AssetMutations,
    SubmissionMutations,
    BatchMutations,
    WebhookMutations,
    AccountMutations,
    ModelAlertMutations,
):
    pass


__all__ = ["Mutation", "Query", "Subscription"]
