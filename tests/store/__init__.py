"""Tests of the store: models, migrations and repository, on SQLite and PostgreSQL."""
