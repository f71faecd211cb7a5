"""The store: SQLAlchemy models, sessions, migrations and the repository functions.

The store is the source of truth for business data (customers, contacts, events, tasks,
outbox); Temporal is the source of truth for where each enrollment stands.
"""
