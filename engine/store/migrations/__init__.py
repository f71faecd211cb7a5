"""Alembic migrations of the store; run them with `engine.store.db.migrate()`."""
