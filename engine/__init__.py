"""The playbook engine: language, compiler, store, triggers, API and CLI."""
