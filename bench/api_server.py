"""The HTTP API alone in its own process, for the ingest scenario: ``python -m bench.api_server``.

The real app (`engine.api.app.create_app`) under uvicorn with the production connection
limits (`engine.api.serving.server_config`), on the bench project and the run's store, as
`playbook up` serves it; in its own process, so that its CPU time is the API's alone and the
load generator does not share its core. With ``--processes N`` the extra N - 1 processes are
those of ``playbook up --api-processes N`` (`engine.api.processes`), on the same port. Prints
``ready`` and the process ids once every process listens; stops on SIGTERM (the extra
processes with it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from contextlib import AsyncExitStack
from pathlib import Path

import uvicorn
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from engine.api.app import create_app, warm_routes
from engine.api.processes import shared_socket, start_api_processes
from engine.api.serving import server_config
from engine.client.connection import quiet_runtime
from engine.gc_freeze import freeze_startup_objects
from engine.project import load_project
from engine.services import Services
from engine.settings import load_settings
from engine.store.db import session_factory


async def serve(args: argparse.Namespace) -> None:
    os.environ.update(  # for the extra processes, which read their settings from it
        DATABASE_URL=args.database_url, PLAYBOOK_HOME=str(args.home)
    )
    settings = load_settings(
        playbook_home=args.home,
        database_url=args.database_url,
        temporal_address=args.temporal_address,
    )
    client = await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=quiet_runtime(),
    )
    project = load_project(args.project)
    app = create_app(Services(settings, session_factory(settings.database_url), client, project))
    config = server_config(
        app, settings, "127.0.0.1", args.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    sockets = [shared_socket("127.0.0.1", args.port)] if args.processes > 1 else None
    serving = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    async with AsyncExitStack() as stack:
        pids = await start_api_processes(
            stack,
            args.processes - 1,
            root=args.project,
            host="127.0.0.1",
            port=args.port,
            temporal_address=args.temporal_address,
        )
        warm_routes(app)  # as `playbook up` does
        freeze_startup_objects()
        print("ready", os.getpid(), *pids, flush=True)
        await serving


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_server")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--temporal-address", required=True)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
