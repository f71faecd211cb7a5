"""The store: SQLAlchemy models, sessions, migrations and the repository functions.

The store is the source of truth for business data (customers, contacts, events, tasks,
outbox); Temporal is the source of truth for where each enrollment stands.

- `engine.store.models`: the tables; `engine.store.db`: engines, sessions, migrations.
- `engine.store.repository`: idempotent reads and writes.
- `engine.store.events`: ingesting one event (once per id), its milestones, and which
  running enrollments must hear of it.
- `engine.store.context`: the data expressions and templates see, built from a customer's
  rows, and `decide`, which evaluates expressions over it.
"""
