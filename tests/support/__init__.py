"""Shared helpers for the test suite: local stand-ins for external services."""
