"""`assay operations add` registers trusted documents in the database and prints their hashes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from graph.protection.persisted import document_hash
from persistence.operations import SqlPersistedOperations
from tests.e2e.conftest import base_env, run_assay

ME = "query Me {\n  viewer { id email }\n}\n"
SEVERAL = """
query Models { models { id name } }
query Submission($id: ID!) { submission(id: $id) { ...S } }
fragment S on Submission { id status }
"""


async def test_operations_add_registers_every_operation_as_trusted(
    db: AsyncEngine, postgres_url: str, tmp_path: Path
) -> None:
    (tmp_path / "me.graphql").write_text(ME)
    (tmp_path / "several.graphql").write_text(SEVERAL)
    env = base_env(tmp_path / "data", database_url=postgres_url)
    done = run_assay(
        ["operations", "add", str(tmp_path / "me.graphql"), str(tmp_path / "several.graphql")],
        env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [line[1] for line in lines] == ["Me", "Models", "Submission"]
    assert lines[0][0] == document_hash(ME)
    stored = SqlPersistedOperations(db)
    for sha256, *_ in lines:
        assert await stored.is_trusted(sha256)
    submission = await stored.get(lines[2][0])
    assert submission is not None
    assert "fragment S on Submission" in submission
    assert document_hash(submission) == lines[2][0]


async def test_operations_add_refuses_a_file_that_does_not_parse(
    db: AsyncEngine, postgres_url: str, tmp_path: Path
) -> None:
    (tmp_path / "good.graphql").write_text(ME)
    (tmp_path / "bad.graphql").write_text("query {")
    env = base_env(tmp_path / "data", database_url=postgres_url)
    files = [str(tmp_path / "good.graphql"), str(tmp_path / "bad.graphql")]
    done = run_assay(["operations", "add", *files], env, timeout=120)
    assert done.returncode != 0
    assert "bad.graphql" in done.stderr
    assert await SqlPersistedOperations(db).get(document_hash(ME)) is None  # nothing registered
