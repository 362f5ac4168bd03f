"""a batch's results may be written alongside its transaction, and confirmed by it

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 18:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# A batch stored at accept writes its 1,000 results on a second connection while its own
# transaction writes the submissions and events (persistence/alongside.py): PostgreSQL works
# on two cores instead of one (B1 148.5 -> 122.8 ms in-process, docs/performance.md). Those
# results commit first, before their submissions exist, so the foreign key from results to
# submissions goes; the rule it held is held this way:
# - an inserted result names a submission that exists, or one listed by an
#   unconfirmed_results row (its batch's, inserted first in the same transaction): checked once
#   per statement over the rows it inserted;
# - such a row is deleted by the batch's transaction when it commits (the confirmation);
#   one that stays (the process died, or the transaction failed) is undone: its results
#   deleted, where no submission came (persistence.alongside.undo_unconfirmed);
# - deleting submissions deletes their results (what ON DELETE CASCADE did), and a
#   submission's id never changes (a foreign key refused that too).
# No lock on the submission is needed where the key took one: results are only written for a
# submission inserted or updated (so locked) by the same transaction, or not yet stored.
_CHECK_INSERTED = """
CREATE FUNCTION assay_result_submissions_exist() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  orphan uuid;
BEGIN
  SELECT r.submission_id INTO orphan
    FROM inserted_results AS r
   WHERE NOT EXISTS (SELECT FROM submissions s WHERE s.id = r.submission_id)
     AND r.submission_id NOT IN (SELECT unnest(u.submission_ids) FROM unconfirmed_results u)
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', TABLE = 'results',
      CONSTRAINT = 'fk_results_submission_id_submissions',
      DETAIL = format('Key (submission_id)=(%s) is not present in table "submissions".', orphan),
      MESSAGE = 'insert or update on table "results" violates foreign key constraint '
                || '"fk_results_submission_id_submissions"';
  END IF;
  RETURN NULL;
END
$$
"""

_DELETE_WITH_SUBMISSIONS = """
CREATE FUNCTION assay_delete_results_of_submissions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM results WHERE submission_id IN (SELECT id FROM deleted_submissions);
  RETURN NULL;
END
$$
"""

_REFUSE_ID_CHANGE = """
CREATE FUNCTION assay_submission_id_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id IS DISTINCT FROM OLD.id THEN
    RAISE EXCEPTION 'a submission''s id never changes: results refer to it'
      USING ERRCODE = 'foreign_key_violation', TABLE = 'submissions';
  END IF;
  RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "unconfirmed_results",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("submission_ids", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unconfirmed_results")),
    )
    op.execute(_CHECK_INSERTED)
    op.execute(_DELETE_WITH_SUBMISSIONS)
    op.execute(_REFUSE_ID_CHANGE)
    op.execute(
        "CREATE TRIGGER result_submissions_exist AFTER INSERT ON results"
        " REFERENCING NEW TABLE AS inserted_results"
        " FOR EACH STATEMENT EXECUTE FUNCTION assay_result_submissions_exist()"
    )
    op.execute(
        "CREATE TRIGGER submission_results_deleted AFTER DELETE ON submissions"
        " REFERENCING OLD TABLE AS deleted_submissions"
        " FOR EACH STATEMENT EXECUTE FUNCTION assay_delete_results_of_submissions()"
    )
    op.execute(
        "CREATE TRIGGER submission_id_fixed BEFORE UPDATE OF id ON submissions"
        " FOR EACH ROW EXECUTE FUNCTION assay_submission_id_fixed()"
    )
    op.drop_constraint("fk_results_submission_id_submissions", "results", type_="foreignkey")


def downgrade() -> None:
    # Results no batch confirmed (none once every unconfirmed row is undone) cannot keep a key.
    op.execute(
        "DELETE FROM results r WHERE NOT EXISTS (SELECT FROM submissions s"
        " WHERE s.id = r.submission_id)"
    )
    op.create_foreign_key(
        "fk_results_submission_id_submissions",
        "results",
        "submissions",
        ["submission_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.execute("DROP TRIGGER submission_id_fixed ON submissions")
    op.execute("DROP TRIGGER submission_results_deleted ON submissions")
    op.execute("DROP TRIGGER result_submissions_exist ON results")
    op.execute("DROP FUNCTION assay_submission_id_fixed()")
    op.execute("DROP FUNCTION assay_delete_results_of_submissions()")
    op.execute("DROP FUNCTION assay_result_submissions_exist()")
    op.drop_table("unconfirmed_results")
