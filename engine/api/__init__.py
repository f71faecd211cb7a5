"""The HTTP API (FastAPI): events, customers, tasks, enrollments, webhooks, unsubscribe."""
