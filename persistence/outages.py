"""Tell a database outage from a refused statement, and report it in the domain's words."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc

from domain.errors import Unavailable

# The server is gone, going or not there yet: not that the statement was wrong.
_LOST = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, crash recovery, starting up
    asyncpg.exceptions.PostgresConnectionError,
    exc.TimeoutError,  # no pooled connection within the pool timeout
    ConnectionError,  # the socket itself: reset, broken pipe, refused
    TimeoutError,  # no answer within the command timeout: the server is not answering
    # The driver's protocol is out of step: a pooled connection heard the server's FATAL
    # (a restart) while idle and its next statement finds it waiting for a sync point that
    # never comes ("cannot switch to state 12; another operation (2) is in progress"). The
    # connection is unusable, whatever the cause.
    asyncpg.exceptions.InternalClientError,
)
# While connecting, the socket's own errors say the same (refused, no such socket, timeout).
_UNREACHABLE = (*_LOST, OSError)
# asyncpg's own word for a connection it already knows is gone; its other InterfaceErrors
# (an operation already in progress, ...) are the program's mistakes, not an outage.
_CLOSED_MESSAGES = ("connection is closed", "connection was closed")


def _is_closed_connection(error: BaseException) -> bool:
    return isinstance(error, asyncpg.exceptions.InterfaceError) and any(
        message in str(error) for message in _CLOSED_MESSAGES
    )


def _chain(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def is_lost_connection(error: BaseException) -> bool:
    """A statement failed because the connection or the server went away."""
    return any(
        isinstance(e, (Unavailable, *_LOST))
        or _is_closed_connection(e)
        or (isinstance(e, exc.DBAPIError) and e.connection_invalidated)
        for e in _chain(error)
    )


# No connection came free within the pool timeout: the database may answer, but every
# connection is in use (more requests than connections, or statements slow to end).
BUSY = (
    "every database connection stayed in use past the pool timeout (the server is busy, or "
    "the database slow to answer); retry shortly"
)


def unavailable(error: BaseException) -> Unavailable:
    """The domain's error for a database lost or out of reach (see is_unreachable): after
    the pool's timeout, it says every connection was busy, not that the database is down."""
    if any(isinstance(e, exc.TimeoutError) for e in _chain(error)):
        return Unavailable(BUSY)
    return Unavailable()


def is_unreachable(error: BaseException) -> bool:
    """Connecting failed because the server cannot be reached (or went away meanwhile)."""
    return is_lost_connection(error) or any(isinstance(e, _UNREACHABLE) for e in _chain(error))
