"""More than one API process on one port: ``playbook up --api-processes N``.

One API process is one core at most (Python), and storing a batch of events holds SQLite's
writer lock only for its insert, so a second process nearly doubles what the API takes.
The processes listen on one address with ``SO_REUSEPORT`` (Linux spreads the connections
among them). Only the first process (``playbook up`` itself) migrates the database,
deploys, creates the schedules and runs the worker; the others (``python -m
engine.api.processes``, started by `start_api_processes`) only serve HTTP: everything they
share lives in the store (deployments are re-read when one is recorded, login sessions and
failed-login counters are rows, the signing secret is a file the first process created).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import threading
from contextlib import AsyncExitStack
from pathlib import Path

import uvicorn

from engine.api.app import create_app, warm_routes
from engine.api.serving import server_config
from engine.client.connection import connect, quiet_runtime
from engine.errors import EngineError
from engine.gc_freeze import freeze_startup_objects
from engine.project import load_project
from engine.services import Services
from engine.settings import Settings, load_settings
from engine.store.db import session_factory

READY = b"ready"
START_TIMEOUT = 120.0
"""Seconds an extra API process may take to load the project and connect to Temporal."""


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that other processes may listen on too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # a small answer waits for the client's delayed ACK (40 ms) under Nagle's algorithm.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def start_api_processes(
    stack: AsyncExitStack, count: int, *, root: Path, host: str, port: int, temporal_address: str
) -> list[int]:
    """Start ``count`` API processes serving on ``host:port`` (bound with `shared_socket`)
    and wait until each listens; ``stack`` stops them (SIGTERM) on exit. Their process ids."""
    pids: list[int] = []
    for _ in range(count):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "engine.api.processes",
            "--root",
            str(root),
            "--host",
            host,
            "--port",
            str(port),
            "--temporal-address",
            temporal_address,
            stdin=asyncio.subprocess.PIPE,  # closed when this process ends, however it ends
            stdout=asyncio.subprocess.PIPE,
        )
        stack.push_async_callback(_stop, proc)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = b""
        if line.strip() != READY:
            raise EngineError(f"an extra API process did not start (exit status {proc.returncode})")
        pids.append(proc.pid)
    return pids


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
    await proc.wait()


async def serve(settings: Settings, root: Path, host: str, port: int) -> None:
    """Serve the app on the shared ``host:port`` until SIGTERM or SIGINT, or until the
    process that started this one ends (its end of our standard input closes); print
    ``ready`` once listening. Nothing but HTTP: no migration, deploy, schedule or worker."""
    client = await connect(settings, quiet_runtime())
    project = load_project(root)
    app = create_app(Services(settings, session_factory(settings.database_url), client, project))
    config = server_config(app, settings, host, port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[shared_socket(host, port)]))
    loop = asyncio.get_running_loop()

    def stop_with_parent() -> None:
        sys.stdin.buffer.read()  # returns at end of file: the starting process is gone
        loop.call_soon_threadsafe(setattr, server, "should_exit", True)

    threading.Thread(target=stop_with_parent, daemon=True).start()
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if not serving.done():
        warm_routes(app)
        freeze_startup_objects()
        sys.stdout.buffer.write(READY + b"\n")
        sys.stdout.flush()
    await serving


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m engine.api.processes")
    parser.add_argument("--root", type=Path, required=True, help="The playbooks folder.")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--temporal-address", help="Else TEMPORAL_ADDRESS.")
    parser.add_argument("--database-url", help="Else DATABASE_URL.")
    parser.add_argument("--home", type=Path, help="Else PLAYBOOK_HOME.")
    args = parser.parse_args()
    overrides = {
        key: value
        for key, value in (
            ("temporal_address", args.temporal_address),
            ("database_url", args.database_url),
            ("playbook_home", args.home),
        )
        if value is not None
    }
    # uvicorn raises the SIGINT it stopped on again once stopped (Ctrl-C reaches the whole
    # process group): a clean stop, not an error to print.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(load_settings(**overrides), args.root, args.host, args.port))


if __name__ == "__main__":
    main()
