"""The Temporal client side of the engine: how the API, the web UI, the CLI, the simulator
and the benchmark talk to running workflows.

`engine.client.playbook` is the one place that starts `PlaybookWorkflow` and sends it
signals, queries and updates, each through the workflow's typed methods.
"""
