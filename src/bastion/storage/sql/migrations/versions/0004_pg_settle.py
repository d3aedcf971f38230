"""pg settle: the settlement batch as one PostgreSQL function call (one round trip)

Revision ID: 0004_pg_settle
Revises: 0003_meta
Create Date: 2026-11-26 08:40:00.000000

On PostgreSQL, a group-commit batch (balances, ledger rows, usage history) is one statement,
``SELECT * FROM bastion_settle(charges, logs)``, committed with its reply: one round trip
instead of six through SQLAlchemy.  Accounts are locked in a fixed order (byte order of their
ids) so that replicas writing batches at once never deadlock.  SQLite has no functions; its
writer runs the same statements itself (storage/sql/sqlite_batch.py).
"""

from __future__ import annotations

from alembic import op

revision = "0004_pg_settle"
down_revision = "0003_meta"
branch_labels = None
depends_on = None

SETTLE = """
CREATE OR REPLACE FUNCTION bastion_settle(charges jsonb, logs jsonb)
RETURNS TABLE (settled_account varchar, settled_version bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
  moved record;
BEGIN
  FOR moved IN
    SELECT c.account_id, sum(c.amount) AS total, count(*) AS n
    FROM jsonb_to_recordset(charges) AS c(account_id varchar, amount bigint)
    GROUP BY c.account_id
    ORDER BY c.account_id COLLATE "C"
  LOOP
    UPDATE accounts SET balance = accounts.balance - moved.total,
                        version = accounts.version + moved.n
     WHERE accounts.id = moved.account_id
    RETURNING accounts.version INTO settled_version;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'charge for a missing account %', moved.account_id
        USING ERRCODE = 'foreign_key_violation';
    END IF;
    settled_account := moved.account_id;
    RETURN NEXT;
  END LOOP;
  INSERT INTO ledger (account_id, key_id, request_id, kind, amount, model, endpoint, usage,
                      actor, reason, created_ms, day, month)
  SELECT c.account_id, c.key_id, c.request_id, 'charge', -c.amount, c.model, c.endpoint,
         c.usage, NULL, NULL, c.created_ms, c.day, c.month
    FROM ROWS FROM (jsonb_to_recordset(charges) AS (
           account_id varchar, key_id varchar, request_id varchar, amount bigint,
           model varchar, endpoint varchar, usage text, created_ms bigint, day integer,
           month integer)) WITH ORDINALITY AS c(
           account_id, key_id, request_id, amount, model, endpoint, usage, created_ms, day,
           month, ord)
   ORDER BY c.ord;
  INSERT INTO request_log (request_id, account_id, key_id, model, endpoint, status, usage,
                           cost, duration_ms, created_ms, day)
  SELECT l.request_id, l.account_id, l.key_id, l.model, l.endpoint, l.status, l.usage,
         l.cost, l.duration_ms, l.created_ms, l.day
    FROM jsonb_to_recordset(logs) AS l(
           request_id varchar, account_id varchar, key_id varchar, model varchar,
           endpoint varchar, status integer, usage text, cost bigint, duration_ms integer,
           created_ms bigint, day integer);
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SETTLE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS bastion_settle(jsonb, jsonb)")
