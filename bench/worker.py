"""The worker process of a benchmark run: ``python -m bench.worker --variant engine ...``.

Each run gets a fresh process, so its peak RSS (``VmHWM``) and CPU time belong to that run
alone. Both variants get the production activities (`worker.build_activities`: the store,
the capture mailer) and the production worker settings; the engine variant is exactly
`worker.build_worker`, the baseline the same worker with `BaselineWorkflow` registered
instead of the interpreter. Prints ``ready`` once polling, stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.registry import PlaybookActivities
from bench.baseline import BaselineWorkflow
from engine.client.connection import quiet_runtime
from engine.gc_freeze import freeze_startup_objects
from engine.settings import Settings, load_settings
from worker import activity_limits, build_activities, build_worker


def baseline_worker(
    client: Client, settings: Settings, activities: PlaybookActivities, executor: ThreadPoolExecutor
) -> Worker:
    """`worker.build_worker` with the hand-written workflow instead of the interpreter."""
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[BaselineWorkflow],
        activities=activities.all(),
        activity_executor=executor,
        **activity_limits(settings),
    )


async def serve(variant: str, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=quiet_runtime(),
    )
    build = build_worker if variant == "engine" else baseline_worker
    with ThreadPoolExecutor(max_workers=settings.activity_slots) as pool:
        async with build(client, settings, build_activities(settings, client), pool):
            freeze_startup_objects()  # as `playbook worker` does
            print("ready", flush=True)
            await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("--variant", choices=["engine", "baseline"], required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--temporal-address", required=True)
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    settings = load_settings(
        playbook_home=args.home,
        database_url=args.database_url,
        temporal_address=args.temporal_address,
        temporal_task_queue=args.task_queue,
    )
    asyncio.run(serve(args.variant, settings))


if __name__ == "__main__":
    main()
