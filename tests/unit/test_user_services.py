"""User use cases against fakes: sign-in provisioning, profile changes, listing, deactivation."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.pagination import PageRequest
from domain.principal import Identity, Principal
from domain.services import users
from domain.users import UserFilter
from tests.unit.fakes import FakeClock, FakeData, FakeUnitOfWork

ADMIN_GROUP = "admin"


def identity(email: str = "ann@example.com", *groups: str, subject: str = "sub-ann") -> Identity:
    return Identity(
        subject=subject,
        email=email,
        name="Ann",
        groups=groups,
        expires_at=FakeClock().now + timedelta(hours=1),
    )


async def sign_in(data: FakeData, who: Identity, clock: FakeClock | None = None) -> Principal:
    principal, _ = await users.authenticate(
        FakeUnitOfWork(data), who, admin_group=ADMIN_GROUP, clock=clock or FakeClock()
    )
    return principal


async def test_authenticate_provisions_user_from_identity() -> None:
    data = FakeData()
    uow = FakeUnitOfWork(data)

    principal, user = await users.authenticate(
        uow, identity("ann@example.com", "ops"), admin_group=ADMIN_GROUP, clock=FakeClock()
    )

    assert data.users[user.id] == user
    assert (user.email, user.name, user.groups, user.is_active) == (
        "ann@example.com",
        "Ann",
        ("ops",),
        True,
    )
    assert principal.user_id == user.id
    assert principal.is_admin is False
    assert uow.commits == 1


async def test_authenticate_makes_members_of_the_admin_group_admins() -> None:
    principal = await sign_in(FakeData(), identity("root@example.com", "admin", subject="root"))

    assert principal.is_admin is True
    assert principal.groups == ("admin",)


async def test_authenticate_refreshes_email_and_groups_for_a_known_subject() -> None:
    data = FakeData()
    first = await sign_in(data, identity("old@example.com", "a"))

    second = await sign_in(data, identity("new@example.com", "b"))

    assert second.user_id == first.user_id
    assert data.users[first.user_id].email == "new@example.com"
    assert data.users[first.user_id].groups == ("b",)


async def test_authenticate_refuses_deactivated_user_with_forbidden() -> None:
    data = FakeData()
    principal = await sign_in(data, identity())
    user = data.users[principal.user_id]
    data.users[user.id] = user.deactivated(FakeClock().now)

    with pytest.raises(Forbidden, match="deactivated"):
        await sign_in(data, identity())


async def test_returning_user_with_unchanged_claims_is_read_without_a_transaction() -> None:
    data = FakeData()
    first = await sign_in(data, identity("ann@example.com", "ops"))
    uow, reader = FakeUnitOfWork(data), FakeUnitOfWork(data)

    principal, user = await users.authenticate(
        uow,
        identity("ann@example.com", "ops"),
        admin_group=ADMIN_GROUP,
        clock=FakeClock(),
        reader=reader,
    )

    assert (principal.user_id, user) == (first.user_id, data.users[first.user_id])
    assert (uow.commits, reader.commits) == (0, 0)


@pytest.mark.parametrize(
    "claims",
    [("new@example.com", ("ops",)), ("ann@example.com", ("ops", "admin")), None],
    ids=["email changed", "groups changed", "first sign-in"],
)
async def test_reader_hands_changed_claims_and_new_users_to_the_upsert(
    claims: tuple[str, tuple[str, ...]] | None,
) -> None:
    data = FakeData()
    if claims is not None:
        await sign_in(data, identity("ann@example.com", "ops"))
    email, groups = claims or ("ann@example.com", ("ops",))
    uow = FakeUnitOfWork(data)

    principal, user = await users.authenticate(
        uow,
        identity(email, *groups),
        admin_group=ADMIN_GROUP,
        clock=FakeClock(),
        reader=FakeUnitOfWork(data),
    )

    assert uow.commits == 1
    assert (data.users[user.id].email, data.users[user.id].groups) == (email, groups)
    assert principal.is_admin is ("admin" in groups)


async def test_reader_still_refuses_a_deactivated_user() -> None:
    data = FakeData()
    principal = await sign_in(data, identity())
    data.users[principal.user_id] = data.users[principal.user_id].deactivated(FakeClock().now)

    with pytest.raises(Forbidden, match="deactivated"):
        await users.authenticate(
            FakeUnitOfWork(data),
            identity(),
            admin_group=ADMIN_GROUP,
            clock=FakeClock(),
            reader=FakeUnitOfWork(data),
        )


async def test_update_viewer_changes_name_and_language() -> None:
    data, clock = FakeData(), FakeClock()
    principal = await sign_in(data, identity())
    clock.advance(minutes=5)

    user = await users.update_viewer(
        FakeUnitOfWork(data), principal, name="  Ann B ", language="pt-BR", clock=clock
    )

    assert (user.name, user.language, user.updated_at) == ("Ann B", "pt-BR", clock.now)
    assert data.users[principal.user_id] == user


async def test_update_viewer_with_none_keeps_values() -> None:
    data = FakeData()
    principal = await sign_in(data, identity())

    user = await users.update_viewer(
        FakeUnitOfWork(data), principal, name=None, language=None, clock=FakeClock()
    )

    assert (user.name, user.language) == ("Ann", "en")


@pytest.mark.parametrize(
    ("name", "language", "fields"),
    [
        ("", None, {"input.name"}),
        ("   ", None, {"input.name"}),
        ("x" * 201, None, {"input.name"}),
        (None, "english!", {"input.language"}),
        (None, "", {"input.language"}),
        (None, "e", {"input.language"}),
        ("", "english!", {"input.name", "input.language"}),
    ],
)
async def test_update_viewer_rejects_invalid_values_and_changes_nothing(
    name: str | None, language: str | None, fields: set[str]
) -> None:
    data = FakeData()
    principal = await sign_in(data, identity())
    before = data.users[principal.user_id]

    with pytest.raises(InvalidInput) as raised:
        await users.update_viewer(
            FakeUnitOfWork(data), principal, name=name, language=language, clock=FakeClock()
        )

    assert set(raised.value.fields) == fields
    assert data.users[principal.user_id] == before


async def test_list_and_count_users_are_for_admins_only() -> None:
    data = FakeData()
    principal = await sign_in(data, identity())

    with pytest.raises(Forbidden):
        await users.list_users(FakeUnitOfWork(data), principal, PageRequest(), UserFilter())
    with pytest.raises(Forbidden):
        await users.count_users(FakeUnitOfWork(data), principal, UserFilter())


async def test_list_users_filters_for_admins() -> None:
    data, clock = FakeData(), FakeClock()
    admin = await sign_in(data, identity("root@example.com", "admin", subject="root"), clock)
    clock.advance(seconds=1)
    await sign_in(data, identity("ann@example.com", subject="ann"), clock)

    page = await users.list_users(
        FakeUnitOfWork(data), admin, PageRequest(), UserFilter(email_contains="ANN")
    )
    count = await users.count_users(FakeUnitOfWork(data), admin, UserFilter(is_active=True))

    assert [u.email for u in page.items] == ["ann@example.com"]
    assert count == 2


async def test_get_visible_users_hides_others_from_non_admins() -> None:
    data = FakeData()
    ann = await sign_in(data, identity("ann@example.com", subject="ann"))
    bob = await sign_in(data, identity("bob@example.com", subject="bob"))

    seen = await users.get_visible_users(FakeUnitOfWork(data), ann, [ann.user_id, bob.user_id])

    assert [u.email if u else None for u in seen] == ["ann@example.com", None]


async def test_deactivate_user_by_admin_deactivates() -> None:
    data, clock = FakeData(), FakeClock()
    admin = await sign_in(data, identity("root@example.com", "admin", subject="root"))
    ann = await sign_in(data, identity())
    clock.advance(hours=1)

    user = await users.deactivate_user(FakeUnitOfWork(data), admin, ann.user_id, clock=clock)

    assert user.is_active is False
    assert user.updated_at == clock.now
    assert data.users[ann.user_id].is_active is False


async def test_deactivate_of_inactive_user_returns_it_unchanged() -> None:
    data = FakeData()
    admin = await sign_in(data, identity("root@example.com", "admin", subject="root"))
    ann = await sign_in(data, identity())
    await users.deactivate_user(FakeUnitOfWork(data), admin, ann.user_id, clock=FakeClock())
    before = data.users[ann.user_id]

    later = FakeClock(before.updated_at + timedelta(days=1))
    again = await users.deactivate_user(FakeUnitOfWork(data), admin, ann.user_id, clock=later)

    assert again == before


async def test_deactivate_user_by_non_admin_is_forbidden() -> None:
    data = FakeData()
    ann = await sign_in(data, identity())
    bob = await sign_in(data, identity("bob@example.com", subject="bob"))

    with pytest.raises(Forbidden):
        await users.deactivate_user(FakeUnitOfWork(data), ann, bob.user_id, clock=FakeClock())
    assert data.users[bob.user_id].is_active is True


async def test_deactivating_oneself_is_conflict() -> None:
    data = FakeData()
    admin = await sign_in(data, identity("root@example.com", "admin", subject="root"))

    with pytest.raises(Conflict):
        await users.deactivate_user(FakeUnitOfWork(data), admin, admin.user_id, clock=FakeClock())


async def test_deactivating_unknown_user_is_not_found() -> None:
    data = FakeData()
    admin = await sign_in(data, identity("root@example.com", "admin", subject="root"))

    with pytest.raises(NotFound):
        await users.deactivate_user(FakeUnitOfWork(data), admin, uuid.uuid4(), clock=FakeClock())
