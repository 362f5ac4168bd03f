"""The fields the compiler serves, by GraphQL type: where each value comes from.

Each entry mirrors a resolver in graph/types.py or graph/queries.py; a field missing here
sends its documents to the reference executor. The differential tests hold the two equal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

from graph.execution import loads
from graph.execution.loads import by_argument_id as by_id
from graph.execution.loads import for_the_viewer
from graph.execution.specs import ROOT, Embedded, FieldSpec, Paged, Related, Value
from graph.ids import to_global_id


def _global_id(type_name: str) -> Callable[[Any], str]:
    def get(entity: Any) -> str:
        return to_global_id(type_name, entity.id)

    return get


def _values(*names: str) -> dict[str, FieldSpec]:
    """Fields named as the entity's attributes, snake_case to camelCase."""
    specs: dict[str, FieldSpec] = {}
    for name in names:
        head, *rest = name.split("_")
        specs[head + "".join(part.title() for part in rest)] = Value(attrgetter(name), name)
    return specs


def _root(_: Any) -> str:
    return ROOT


_id = attrgetter("id")

CATALOG: Mapping[str, Mapping[str, FieldSpec]] = {
    "Query": {
        "viewer": Related(loads.viewer, _root),
        "user": Related(by_id(loads.users_by_id), _root, loads.id_of("User")),
        "users": Paged(loads.user_page, loads.user_count, _root, loads.user_page_arguments),
        "asset": Related(by_id(loads.assets_by_id), _root, loads.id_of("Asset")),
        "assets": Paged(
            for_the_viewer(loads.asset_pages, "viewer_asset_page"),
            for_the_viewer(loads.asset_counts, "viewer_asset_count"),
            _root,
            loads.asset_page_arguments,
        ),
        "submission": Related(by_id(loads.submissions_by_id), _root, loads.id_of("Submission")),
        "submissions": Paged(
            for_the_viewer(loads.submission_pages, "viewer_submission_page"),
            for_the_viewer(loads.submission_counts, "viewer_submission_count"),
            _root,
            loads.submission_page_arguments,
        ),
        "result": Related(by_id(loads.results_by_id), _root, loads.id_of("Result")),
        "models": Related(loads.active_models, _root),
        "model": Related(by_id(loads.models_by_id), _root, loads.id_of("Model")),
    },
    "User": {
        "id": Value(_global_id("User")),
        **_values("email", "name", "language", "is_active", "groups", "created_at", "updated_at"),
        "assets": Paged(loads.asset_pages, loads.asset_counts, _id, loads.asset_page_arguments),
        "submissions": Paged(
            loads.submission_pages, loads.submission_counts, _id, loads.submission_page_arguments
        ),
    },
    "Asset": {
        "id": Value(_global_id("Asset")),
        **_values("file_name", "content_type", "size_bytes", "status", "created_at", "updated_at"),
        "owner": Related(loads.users_by_id, attrgetter("owner_id")),
        "downloadUrl": Related(loads.download_urls, lambda asset: asset),
    },
    "Model": {
        "id": Value(_global_id("Model")),
        **_values("name", "version", "description", "input_schema", "output_schema"),
    },
    "Submission": {
        "id": Value(_global_id("Submission")),
        **_values("input", "status", "error", "attempts", "created_at", "updated_at"),
        "owner": Related(loads.users_by_id, attrgetter("owner_id")),
        "model": Related(loads.models_by_id, attrgetter("model_id")),
        "assets": Related(loads.assets_of_submissions, _id),
        "results": Related(loads.results_of_submissions, _id),
        "latestResult": Related(loads.latest_results_of_submissions, _id),
    },
    "Result": {
        "id": Value(_global_id("Result")),
        **_values("prediction", "confidence", "model_version", "processing_time_ms", "created_at"),
        "alternatives": Embedded(attrgetter("alternatives")),
        "submission": Related(loads.submissions_by_id, attrgetter("submission_id")),
    },
    "Alternative": _values("value", "confidence"),
}
