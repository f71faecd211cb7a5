"""Temporal activities: every side effect of a playbook, each idempotent, one module per effect.

- `registry`: `PlaybookActivities`, the set a worker registers (built over one store)
- `base`: the base class holding the store's session factory; `heartbeat`: side-thread heartbeats
- `decisions`: `decide`, `check_milestone`, `record_enrollment` (local activities on the store)
- `email`: `send_email` (outbox, suppression, unsubscribe link); `mailer`: SendGrid and capture
- `tasks`: `create_task`, `escalate_task`; `customers`: `update_customer`, `enroll_customer`
- `sweep`: `sweep_triggers`, the hourly date/schedule trigger sweep
"""
