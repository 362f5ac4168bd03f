"""submissions check their owner and model once per statement, not once per row

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 16:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# A foreign key checks each inserted row on its own (a lookup in the parent, which it locks
# FOR KEY SHARE): a 1,000-input batch ran 2,000 of them for the owner and the model, about a
# third of its submissions' INSERT (55-71 -> 39-48 ms in B1's timeline; docs/performance.md).
# The same rule, held another way:
# - inserted rows: one set-based check per statement, over the distinct owners and models
#   of the rows it inserted (a transition table), raising the error a foreign key raises;
# - the parents: users and models are never deleted (an erased account keeps its emptied
#   row; a model is set inactive) and their ids never change. Triggers make that a rule, so no
#   check can be overtaken by a delete, which is what the foreign key's lock was for;
# - a submission's owner and model are never changed (erasure deletes the row).
# Batches and results keep their foreign keys: a batch is deleted (erasure) while its owner
# may still be submitting, and results go with their submission (ON DELETE CASCADE).
_CHECK_INSERTED = """
CREATE FUNCTION assay_submission_references_exist() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  missing record;
  fk text;
  detail text;
BEGIN
  SELECT n.owner_id, n.model_id,
         NOT EXISTS (SELECT FROM users u WHERE u.id = n.owner_id) AS no_owner
    INTO missing
    FROM (SELECT DISTINCT owner_id, model_id FROM inserted_submissions) AS n
   WHERE NOT EXISTS (SELECT FROM users u WHERE u.id = n.owner_id)
      OR NOT EXISTS (SELECT FROM models m WHERE m.id = n.model_id)
   LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  -- As a foreign key words it: what a client or a log reader already knows.
  IF missing.no_owner THEN
    fk := 'fk_submissions_owner_id_users';
    detail := format('Key (owner_id)=(%s) is not present in table "users".', missing.owner_id);
  ELSE
    fk := 'fk_submissions_model_id_models';
    detail := format('Key (model_id)=(%s) is not present in table "models".', missing.model_id);
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', TABLE = 'submissions',
    CONSTRAINT = fk, DETAIL = detail,
    MESSAGE = 'insert or update on table "submissions" violates foreign key constraint "'
              || fk || '"';
END
$$
"""

_REFUSE_CHANGE = """
CREATE FUNCTION assay_refuse_reference_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'rows of "%" are never deleted: submissions refer to them', TG_TABLE_NAME
      USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME,
            HINT = 'An account is erased (deleteViewer keeps its emptied row); '
                   || 'a model is set inactive.';
  END IF;
  IF TG_TABLE_NAME = 'submissions' THEN
    IF (NEW.owner_id, NEW.model_id) IS DISTINCT FROM (OLD.owner_id, OLD.model_id) THEN
      RAISE EXCEPTION 'a submission''s owner_id and model_id never change'
        USING ERRCODE = 'foreign_key_violation', TABLE = 'submissions';
    END IF;
  ELSIF NEW.id IS DISTINCT FROM OLD.id THEN
    RAISE EXCEPTION 'the id of a row of "%" never changes: submissions refer to it', TG_TABLE_NAME
      USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
  END IF;
  RETURN NEW;
END
$$
"""

_REFUSE = "FOR EACH ROW EXECUTE FUNCTION assay_refuse_reference_change()"
# (name, table, when): each a trigger of its own, as each statement goes on its own.
_GUARDS = (
    ("submission_references_fixed", "submissions", "BEFORE UPDATE OF owner_id, model_id"),
    ("users_never_deleted", "users", "BEFORE DELETE"),
    ("users_id_fixed", "users", "BEFORE UPDATE OF id"),
    ("models_never_deleted", "models", "BEFORE DELETE"),
    ("models_id_fixed", "models", "BEFORE UPDATE OF id"),
)


def upgrade() -> None:
    op.execute(_CHECK_INSERTED)
    op.execute(_REFUSE_CHANGE)
    op.execute(
        "CREATE TRIGGER submission_references_exist AFTER INSERT ON submissions"
        " REFERENCING NEW TABLE AS inserted_submissions"
        " FOR EACH STATEMENT EXECUTE FUNCTION assay_submission_references_exist()"
    )
    for name, table, when in _GUARDS:
        op.execute(f"CREATE TRIGGER {name} {when} ON {table} {_REFUSE}")
    op.drop_constraint("fk_submissions_owner_id_users", "submissions", type_="foreignkey")
    op.drop_constraint("fk_submissions_model_id_models", "submissions", type_="foreignkey")


def downgrade() -> None:
    op.create_foreign_key(
        "fk_submissions_model_id_models", "submissions", "models", ["model_id"], ["id"]
    )
    op.create_foreign_key(
        "fk_submissions_owner_id_users", "submissions", "users", ["owner_id"], ["id"]
    )
    for name, table, _ in reversed(_GUARDS):
        op.execute(f"DROP TRIGGER {name} ON {table}")
    op.execute("DROP TRIGGER submission_references_exist ON submissions")
    op.execute("DROP FUNCTION assay_refuse_reference_change()")
    op.execute("DROP FUNCTION assay_submission_references_exist()")
