"""Temporal activities: every side effect of a playbook (email, tasks, customer data)."""
