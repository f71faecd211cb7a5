"""Scenario: events no enrollment listens to, posted in batches of 1,000 to the API over HTTP.

Issue 20's first figure. The API runs as `playbook up` serves it (uvicorn, the real app, a
SQLite store), alone in its process (`bench/api_server.py`); the harness posts batches
prepared beforehand (so their JSON encoding is not timed), ``IN_FLIGHT`` at a time over
keep-alive connections, and counts what was stored. The customers have no enrollment, so
each event is stored and costs no Temporal work: what is measured is the HTTP path and the
store. Events posted one by one are measured too, for comparison.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from bench.report import Metric
from bench.scenarios.spec import BenchFailure, Progress, Sizes
from bench.scenarios.stack import BENCH_PLAYBOOKS, Stack, compile_bytecode, cpu_seconds
from engine.api.auth import create_api_token
from engine.store.db import migrate, session_factory
from engine.store.models import Customer, Event, utcnow

BATCH = 1000
IN_FLIGHT = 4
"""Batches in flight per API process, each over its own keep-alive connection. The kernel
hands a connection to one process by a hash of its addresses, so with 2 per process every
connection landed on one of two processes in about one run of eight (16,800 /s against
24,000 /s); a process stores one batch at a time, so the extra ones only queue there."""
CUSTOMERS = 1000
SINGLES = 300
NAME = "page.viewed"  # no bench playbook listens to it or triggers on it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _body(customers: list[str], size: int, seq: int) -> bytes:
    events = [
        {
            "id": uuid.uuid4().hex,
            "customer_id": customers[(seq + i) % len(customers)],
            "name": NAME,
            "at": "2026-12-03T10:00:00+00:00",
            "properties": {"path": "/reports", "ms": i},
        }
        for i in range(size)
    ]
    return json.dumps(events[0] if size == 1 else {"events": events}).encode()


async def _post(http: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> int:
    """Post one prepared body; how many events it reported as accepted."""
    response = await http.post("/api/events", content=body, headers=headers)
    if response.status_code != 202:
        raise BenchFailure(f"POST /api/events: {response.status_code} {response.text[:300]}")
    results: list[dict[str, Any]] = response.json()["results"]
    if any(r["status"] != "accepted" or r["signalled"] for r in results):
        raise BenchFailure(f"an event was not simply stored: {results[:3]}")
    return len(results)


def _store(stack: Stack, sizes: Sizes) -> tuple[str, sessionmaker[Session], str, list[str]]:
    """The store to ingest into (URL, sessions), an ingest token there, and fresh customers:
    the run's SQLite store, or the migrated ``sizes.ingest_database``."""
    if not sizes.ingest_database:
        return stack.db_url, stack.sessions, stack.token, stack.seed("ingest", CUSTOMERS)
    url = sizes.ingest_database
    migrate(url)
    sessions = session_factory(url)
    prefix = f"ingest-{uuid.uuid4().hex[:8]}"  # a store that is reused holds earlier runs
    now = utcnow()
    with sessions.begin() as session:
        session.execute(
            insert(Customer),
            [
                {
                    "id": f"{prefix}-{i:05d}",
                    "name": f"Customer {i}",
                    "timezone": "UTC",
                    "attributes": {},
                    "tags": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(CUSTOMERS)
            ],
        )
        token = create_api_token(session, prefix, ["ingest"])
    return url, sessions, token, [f"{prefix}-{i:05d}" for i in range(CUSTOMERS)]


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


async def ingest(stack: Stack, sizes: Sizes, progress: Progress) -> list[Metric]:
    url, sessions, token, customers = _store(stack, sizes)
    in_flight = IN_FLIGHT * sizes.ingest_processes
    batches = [_body(customers, BATCH, n) for n in range(sizes.ingest_events // BATCH)]
    singles = [_body(customers, 1, n) for n in range(SINGLES)]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    port = _free_port()
    if stack.bytecode:
        compile_bytecode()
    log = stack.tmp / "api-server.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.api_server",
            "--database-url",
            url,
            "--temporal-address",
            stack.address,
            "--home",
            str(stack.tmp),
            "--project",
            str(BENCH_PLAYBOOKS),
            "--port",
            str(port),
            "--processes",
            str(sizes.ingest_processes),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    try:
        assert proc.stdout is not None
        ready = (await asyncio.wait_for(proc.stdout.readline(), timeout=120)).split()
        if ready[:1] != [b"ready"]:
            raise BenchFailure(f"the API did not start:\n{log.read_text(errors='replace')[-2000:]}")
        pids = [int(pid) for pid in ready[1:]]
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=120,
            limits=httpx.Limits(max_connections=in_flight),
        ) as http:
            await _post(http, _body(customers, BATCH, -1), headers)  # warm up
            report = progress.phase(f"ingest: {len(batches)} batches of {BATCH}", len(batches))
            queue = list(reversed(batches))
            stored = 0

            async def sender() -> None:
                nonlocal stored
                while queue:
                    stored += await _post(http, queue.pop(), headers)
                    report(stored // BATCH)

            per_process = [cpu_seconds(pid) for pid in pids]
            began = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(in_flight)))
            batch_s = time.perf_counter() - began
            per_process = [cpu_seconds(pid) - c for pid, c in zip(pids, per_process, strict=True)]
            batch_cpu = sum(per_process)
            load = os.getloadavg()
            cpu = _cpu(pids)
            began = time.perf_counter()
            for body in singles:
                await _post(http, body, headers)
            single_s = time.perf_counter() - began
            single_cpu = _cpu(pids) - cpu
    finally:
        proc.terminate()
        await proc.wait()
    with sessions() as session:
        rows = session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.status == "stored", Event.customer_id.in_(customers))
        )
    expected = len(batches) * BATCH + BATCH + SINGLES
    if rows != expected:
        raise BenchFailure(f"{rows} events stored, {expected} posted")
    events = len(batches) * BATCH
    rate = events / batch_s
    loads = "/".join(f"{v:.1f}" for v in load)
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    return [
        Metric(
            "ingest",
            f"irrelevant events, batches of {BATCH} over HTTP, {backend}, "
            f"{sizes.ingest_processes} API processes ({events} events, "
            f"{in_flight} in flight; load average {loads})",
            "/s",
            rate,
            goal=">= 20,000/s",
            met=rate >= 20_000,
        ),
        Metric(
            "ingest",
            "API CPU per 1,000 events in batches (every API process)",
            "ms",
            batch_cpu * 1e6 / events,
        ),
        Metric(
            "ingest",
            f"the same events one by one ({SINGLES}, one in flight)",
            "/s",
            SINGLES / single_s,
        ),
        Metric(
            "ingest",
            "the busiest API process's share of the API CPU in batches "
            f"(even: {100 / len(pids):.0f}%)",
            "%",
            100 * max(per_process) / batch_cpu,
        ),
        Metric("ingest", "API CPU per event one by one", "ms", single_cpu * 1e3 / SINGLES),
    ]
