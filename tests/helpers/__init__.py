"""Helpers shared by the test suite, imported as ``tests.helpers.<module>``.

- `paths`: where the repository, the shipped playbooks and the examples are.
- `polling`: `eventually` (async) and `wait_until` (sync), the one way tests poll.
- `temporal`: starting Temporal's time-skipping test server and its dev server.
- `sendgrid_standin`: a local SendGrid that enforces the mail-send contract carried here.
- `sendgrid_contract`: that contract (`sendgrid_contract.json`), cut from SendGrid's official
  OpenAPI file, and the command that regenerates it.
- `harness`: runs enrollments on the time-skipping server against a real store.
- `onboarding`: the shipped onboarding playbook, started and brought to its waits.
- `api`: probe playbooks, seeding and webhook signing for the HTTP API tests.
- `browser`: the running web stack and the Chromium driver of the browser tests.
- `reliability`: sizes, seeding, fault-run helpers and the duplicate audit.
- `simulation`: small customers and timeline lookups for the Simulator tests.
- `fuzz`: the YAML token list and project contexts the loader fuzzers share.
"""
