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
from sqlalchemy import func, select

from bench.report import Metric
from bench.scenarios.spec import BenchFailure, Progress, Sizes
from bench.scenarios.stack import BENCH_PLAYBOOKS, Stack, compile_bytecode, cpu_seconds
from engine.store.models import Event

BATCH = 1000
IN_FLIGHT = 2
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


async def ingest(stack: Stack, sizes: Sizes, progress: Progress) -> list[Metric]:
    customers = stack.seed("ingest", CUSTOMERS)
    batches = [_body(customers, BATCH, n) for n in range(sizes.ingest_events // BATCH)]
    singles = [_body(customers, 1, n) for n in range(SINGLES)]
    headers = {"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"}
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
            stack.db_url,
            "--temporal-address",
            stack.address,
            "--home",
            str(stack.tmp),
            "--project",
            str(BENCH_PLAYBOOKS),
            "--port",
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    try:
        assert proc.stdout is not None
        if (await asyncio.wait_for(proc.stdout.readline(), timeout=120)).strip() != b"ready":
            raise BenchFailure(f"the API did not start:\n{log.read_text(errors='replace')[-2000:]}")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=120,
            limits=httpx.Limits(max_connections=IN_FLIGHT),
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

            cpu = cpu_seconds(proc.pid)
            began = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
            batch_s = time.perf_counter() - began
            batch_cpu = cpu_seconds(proc.pid) - cpu
            load = os.getloadavg()
            cpu = cpu_seconds(proc.pid)
            began = time.perf_counter()
            for body in singles:
                await _post(http, body, headers)
            single_s = time.perf_counter() - began
            single_cpu = cpu_seconds(proc.pid) - cpu
    finally:
        proc.terminate()
        await proc.wait()
    with stack.sessions() as session:
        rows = session.scalar(
            select(func.count()).select_from(Event).where(Event.status == "stored")
        )
    expected = len(batches) * BATCH + BATCH + SINGLES
    if rows != expected:
        raise BenchFailure(f"{rows} events stored, {expected} posted")
    events = len(batches) * BATCH
    rate = events / batch_s
    loads = "/".join(f"{v:.1f}" for v in load)
    return [
        Metric(
            "ingest",
            f"irrelevant events, batches of {BATCH} over HTTP, SQLite ({events} events, "
            f"{IN_FLIGHT} in flight; load average {loads})",
            "/s",
            rate,
            goal=">= 20,000/s",
            met=rate >= 20_000,
        ),
        Metric("ingest", "API CPU per 1,000 events in batches", "ms", batch_cpu * 1e6 / events),
        Metric(
            "ingest",
            f"the same events one by one ({SINGLES}, one in flight)",
            "/s",
            SINGLES / single_s,
        ),
        Metric("ingest", "API CPU per event one by one", "ms", single_cpu * 1e3 / SINGLES),
    ]
