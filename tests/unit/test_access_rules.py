"""The read rules as data (domain/access.py) mean what the services' checks mean."""

from __future__ import annotations

import uuid

import pytest

from domain.access import ENTITY_RULES, can_read, owner_attribute
from domain.errors import Forbidden
from domain.principal import Principal
from graph.execution.declarations import Paged, declarations_of
from graph.schema.record import schema

ME, OTHER = uuid.uuid4(), uuid.uuid4()


def _principal(*, is_admin: bool) -> Principal:
    return Principal(ME, "sub", ("admin",) if is_admin else (), is_admin)


@pytest.mark.parametrize("entity", ["User", "Asset", "Submission", "Result"])
@pytest.mark.parametrize("is_admin", [False, True])
@pytest.mark.parametrize("owner", [ME, OTHER])
def test_owned_entities_follow_can_read_owned_by(
    entity: str, is_admin: bool, owner: uuid.UUID
) -> None:
    principal = _principal(is_admin=is_admin)
    assert can_read(ENTITY_RULES[entity], principal, owner) == principal.can_read_owned_by(owner)


def test_users_filter_on_the_owner_and_administrators_do_not() -> None:
    assert owner_attribute(ENTITY_RULES["Submission"], is_admin=False) == "owner_id"
    assert owner_attribute(ENTITY_RULES["User"], is_admin=False) == "id"
    assert owner_attribute(ENTITY_RULES["Submission"], is_admin=True) is None
    assert owner_attribute(ENTITY_RULES["Model"], is_admin=False) is None


def test_the_user_list_is_forbidden_to_non_administrators() -> None:
    users = declarations_of(schema._schema).fields["Query"]["users"]
    assert isinstance(users, Paged)
    assert users.rule is not None  # the field's own rule, declared with it
    with pytest.raises(Forbidden):
        owner_attribute(users.rule, is_admin=False)
    assert owner_attribute(users.rule, is_admin=True) is None
    assert not can_read(users.rule, _principal(is_admin=False), ME)
