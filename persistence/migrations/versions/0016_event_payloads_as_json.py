"""events keep their payloads as json text, not jsonb

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 00:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A payload is written once and read whole (the event listener, which parses it in
    # Python); jsonb parsed each into its binary form at INSERT (about 45% of an event row's
    # cost: 4,000 of them for a 1,000-input batch) and printed it back as text at every read.
    # json keeps the checked text. The webhooks' and callbacks' fan-out cast it to jsonb.
    # Rewrites the table (an ACCESS EXCLUSIVE lock while it runs: writers of events wait).
    # Either code runs against either type: PostgreSQL casts json and jsonb into each other
    # on assignment, and the listener decodes both.
    op.execute("ALTER TABLE events ALTER COLUMN payload TYPE json USING payload::json")


def downgrade() -> None:
    op.execute("ALTER TABLE events ALTER COLUMN payload TYPE jsonb USING payload::jsonb")
