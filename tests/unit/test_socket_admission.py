"""Socket admission: sockets not signed in yet get a bounded share of the slots, globally and
per address, and are the ones evicted (oldest first) or refused when the slots run out;
signed-in sockets are never evicted."""

from __future__ import annotations

import uuid

from graph.realtime.sockets import Slot, SocketLimits, SocketRegistry


class Socket:
    """A socket as the registry sees it: its address, and whether it was evicted."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.evicted_with: int | None = None
        self.slot: Slot | None = None

    async def evict(self, code: int, reason: str) -> None:
        self.evicted_with = code


async def connect(sockets: SocketRegistry, address: str) -> Socket:
    socket = Socket(address)
    socket.slot = await sockets.admit(address, socket.evict)
    return socket


async def sign_in(sockets: SocketRegistry, socket: Socket) -> None:
    assert socket.slot is not None

    async def close(code: int, reason: str) -> None:
        pass

    sockets.signed_in(socket.slot, uuid.uuid4(), close)


LIMITS = SocketLimits(max_sockets=4, max_unauthenticated=2, max_unauthenticated_per_address=2)


async def test_a_new_socket_evicts_the_oldest_unauthenticated_one_past_the_global_share() -> None:
    sockets = SocketRegistry(LIMITS)
    first, second = await connect(sockets, "10.0.0.1"), await connect(sockets, "10.0.0.2")
    third = await connect(sockets, "10.0.0.3")
    assert third.slot is not None
    assert first.evicted_with == 1013
    assert second.evicted_with is None
    assert sockets.open == 2


async def test_an_address_at_its_share_pays_with_its_own_oldest_socket() -> None:
    sockets = SocketRegistry(SocketLimits(max_unauthenticated_per_address=2))
    other = await connect(sockets, "10.0.0.9")
    office = [await connect(sockets, "10.0.0.1") for _ in range(2)]
    # The office's share is full: its own oldest goes, not the older socket of another.
    colleague = await connect(sockets, "10.0.0.1")
    assert colleague.slot is not None
    assert office[0].evicted_with == 1013
    assert other.evicted_with is None


async def test_signed_in_sockets_are_never_evicted_and_only_a_full_house_refuses() -> None:
    sockets = SocketRegistry(LIMITS)
    signed = []
    for i in range(4):
        signed.append(await connect(sockets, f"10.0.0.{i}"))
        await sign_in(sockets, signed[-1])
    refused = await connect(sockets, "10.0.0.1")
    assert refused.slot is None
    assert all(s.evicted_with is None for s in signed)
    assert signed[0].slot is not None
    sockets.release(signed[0].slot, None, None)
    assert (await connect(sockets, "10.0.0.1")).slot is not None


async def test_when_every_slot_is_taken_a_new_socket_evicts_one_not_signed_in() -> None:
    sockets = SocketRegistry(LIMITS)
    signed = []
    for i in range(3):
        signed.append(await connect(sockets, f"10.0.0.{i}"))
        await sign_in(sockets, signed[-1])
    waiting = await connect(sockets, "10.0.0.7")
    newcomer = await connect(sockets, "10.0.0.8")
    assert newcomer.slot is not None
    assert waiting.evicted_with == 1013
    assert sockets.open == 4


async def test_an_evicted_socket_leaving_frees_no_second_slot() -> None:
    sockets = SocketRegistry(LIMITS)
    first = await connect(sockets, "10.0.0.1")
    await connect(sockets, "10.0.0.2")
    await connect(sockets, "10.0.0.3")  # evicts first
    assert first.slot is not None
    sockets.release(first.slot, None, None)
    assert sockets.open == 2
    assert sockets.unauthenticated == 2


async def test_sockets_are_capped_per_process_and_unauthenticated_per_address() -> None:
    sockets = SocketRegistry(
        SocketLimits(max_sockets=3, max_unauthenticated=3, max_unauthenticated_per_address=2)
    )
    first = await connect(sockets, "10.0.0.1")
    await connect(sockets, "10.0.0.1")
    assert sockets.unauthenticated == 2
    await sign_in(sockets, first)
    assert sockets.unauthenticated == 1, "a signed-in socket no longer counts for its address"
    await connect(sockets, "10.0.0.2")
    assert sockets.open == 3
    await connect(sockets, "10.0.0.3")
    assert sockets.open == 3, "the process cap holds: the oldest waiting socket made room"
