"""Temporal workflows: one interpreter workflow runs every compiled playbook plan."""
