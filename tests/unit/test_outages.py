"""A database outage is told apart from a statement the server refused."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc

from domain.errors import Unavailable
from persistence.outages import is_lost_connection, is_unreachable


def raised_from(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


def test_a_connection_gone_mid_statement_is_an_outage() -> None:
    gone = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
    wrapped = raised_from(exc.InterfaceError("SELECT 1", {}, gone), gone)
    assert is_lost_connection(wrapped)
    assert is_lost_connection(asyncpg.exceptions.AdminShutdownError("terminating"))
    assert is_lost_connection(exc.TimeoutError("QueuePool limit reached"))


def test_refused_or_missing_socket_while_connecting_is_unreachable() -> None:
    assert is_unreachable(ConnectionRefusedError(111, "refused"))
    assert is_unreachable(FileNotFoundError(2, "no such socket"))
    assert is_unreachable(TimeoutError())
    assert is_unreachable(Unavailable())


def test_a_refused_statement_is_no_outage() -> None:
    refused = asyncpg.exceptions.UniqueViolationError("duplicate key")
    wrapped = raised_from(exc.IntegrityError("INSERT", {}, refused), refused)
    assert not is_lost_connection(wrapped)
    assert not is_unreachable(wrapped)
    # A file error inside a unit of work is not the database's.
    assert not is_lost_connection(FileNotFoundError(2, "blob"))


def test_every_form_of_a_closed_connection_is_an_outage() -> None:
    closed = asyncpg.exceptions.InterfaceError("cannot perform operation: connection is closed")
    assert is_lost_connection(closed)
    assert is_lost_connection(raised_from(exc.InterfaceError("SELECT 1", {}, closed), closed))
    assert is_lost_connection(ConnectionResetError(104, "Connection reset by peer"))
    assert is_lost_connection(BrokenPipeError(32, "Broken pipe"))
    assert is_lost_connection(asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-way"))
    assert is_lost_connection(asyncpg.exceptions.CannotConnectNowError("starting up"))
    # The driver gave up waiting for an answer (the command timeout): the server is not there.
    assert is_lost_connection(TimeoutError())


def test_a_misused_connection_is_no_outage() -> None:
    busy = asyncpg.exceptions.InterfaceError(
        "cannot perform operation: another operation is in progress"
    )
    assert not is_lost_connection(busy)


def test_a_connection_that_heard_the_servers_goodbye_while_idle_is_an_outage() -> None:
    # A restart's FATAL arrives at an idle pooled connection before the socket's end: the
    # driver is then stuck waiting for a sync point that never comes, and the next statement
    # on it fails this way (seen as INTERNAL in test_database_restart.py).
    stuck = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )
    assert is_lost_connection(stuck)
    assert is_lost_connection(raised_from(exc.InternalError("SELECT 1", {}, stuck), stuck))
