"""The Query, Mutation and Subscription roots, assembled from the entity modules."""

from __future__ import annotations

import strawberry

from graph.schema.accounts import AccountMutations, AccountQueries
from graph.schema.assets import AssetMutations, AssetQueries
from graph.schema.batches import BatchMutations, BatchQueries
from graph.schema.lookups import NodeQueries
from graph.schema.models import ModelQueries
from graph.schema.results import ResultQueries
from graph.schema.submissions import SubmissionMutations, SubmissionQueries
from graph.schema.subscriptions import Subscription
from graph.schema.users import UserMutations, UserQueries
from graph.schema.webhooks import WebhookMutations, WebhookQueries


@strawberry.type
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
):
    pass


@strawberry.type
class Mutation(
    UserMutations,
    AssetMutations,
    SubmissionMutations,
    BatchMutations,
    WebhookMutations,
    AccountMutations,
):
    pass


__all__ = ["Mutation", "Query", "Subscription"]
