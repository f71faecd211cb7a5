"""The ``playbook`` command: validate, graph, schema, compile, simulate, and run.

Each subcommand is a thin layer over the engine's Python API (the operations shared with
the API and the web UI live in `engine.services`), so everything the CLI does can also be
done (and is tested) from Python. One module per command group:

- `engine.cli.language`: ``validate``, ``graph``, ``compile``, ``schema`` (the project
  folder only).
- `engine.cli.simulate`: ``simulate``, on Temporal's time-skipping server.
- `engine.cli.stack`: ``up`` (everything on one machine) and ``worker``.
- `engine.cli.enrollments`: ``enroll`` and ``status``.
- `engine.cli.deploy`: ``deploy`` (and roll back) and ``history``.
- `engine.cli.change`: ``diff`` (a change reviewed before it is deployed) and ``backtest``.
- `engine.cli.data`: ``events send`` and ``customers import``.
- `engine.cli.tokens`: ``token create``, ``token list``, ``token revoke``.
- `engine.cli.team`: ``team disable|enable|remove|unlock`` (web UI access).
- `engine.cli.reports`: ``report funnel|ttv|email|tasks|portfolio``.
- `engine.cli.context`: what they share: the consoles, the ``--root`` options, reaching
  the project, the store and Temporal.

Commands import what they need inside their bodies, so ``playbook --help`` starts fast.
"""

from __future__ import annotations

import click

from engine.cli import (
    change,
    data,
    deploy,
    enrollments,
    health,
    language,
    reports,
    simulate,
    stack,
    team,
    tokens,
)
from engine.cli.context import settle
from engine.errors import ConfigError


class _PlaybookGroup(click.Group):
    """The command group; a setting the engine refuses is a one-line error, not a traceback.

    Every command ends by letting Temporal's native threads leave Python, so the process
    exits cleanly (see `engine.client.runtime`).
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            settle()


@click.group(
    cls=_PlaybookGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    commands=[
        language.validate,
        language.graph,
        language.compile,
        language.schema,
        simulate.simulate,
        stack.up,
        stack.worker,
        tokens.token,
        team.team,
        enrollments.enroll_command,
        enrollments.status_command,
        data.events_group,
        data.customers_group,
        deploy.deploy,
        deploy.history,
        change.diff_command,
        change.backtest_command,
        reports.report_command,
        health.health_command,
    ],
)
@click.version_option(package_name="playbook-engine")
def main() -> None:
    """Customer-success playbooks as code, run durably on Temporal.

    Write playbooks in YAML under playbooks/, check them with `playbook validate`, see
    them with `playbook graph`, and run them with `playbook up`.
    """
