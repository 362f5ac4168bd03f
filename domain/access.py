"""Who may read what, as data: the rules services apply in Python and stores render as filters.

`Principal.can_read_owned_by` is the Python form of OWNED_BY; persistence renders the same
rules as SQL predicates (persistence/projections.py), so a projection read in one statement
sees exactly what the services' loads see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domain.errors import Forbidden
from domain.principal import Principal


@dataclass(frozen=True, slots=True)
class OwnedBy:
    """Readable by the user the attribute names, and by administrators."""

    owner: str


@dataclass(frozen=True, slots=True)
class Everyone:
    """Readable by every signed-in caller."""


@dataclass(frozen=True, slots=True)
class AdministratorsOnly:
    """Only administrators may read it at all; anyone else is Forbidden."""


ReadRule = OwnedBy | Everyone | AdministratorsOnly

# Every entity a projection may name, and who may read one.
ENTITY_RULES: Mapping[str, ReadRule] = {
    "User": OwnedBy("id"),  # a user owns itself
    "Asset": OwnedBy("owner_id"),
    "Submission": OwnedBy("owner_id"),
    "Result": OwnedBy("owner_id"),  # the owner of its submission
    "Model": Everyone(),
}


def owner_attribute(rule: ReadRule, *, is_admin: bool) -> str | None:
    """The attribute that must equal the caller's user id, or None for no filter.

    Raises Forbidden where the caller may not read at all."""
    if isinstance(rule, AdministratorsOnly):
        if not is_admin:
            raise Forbidden("only administrators may do this")
        return None
    if isinstance(rule, Everyone) or is_admin:
        return None
    return rule.owner


def can_read(rule: ReadRule, principal: Principal, owner_id: object) -> bool:
    """The rule in Python, for an object whose owner attribute holds `owner_id`."""
    try:
        owner = owner_attribute(rule, is_admin=principal.is_admin)
    except Forbidden:
        return False
    return owner is None or owner_id == principal.user_id
