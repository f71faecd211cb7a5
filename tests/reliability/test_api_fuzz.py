"""Bad input 10: fuzz the HTTP API from its own OpenAPI document (schemathesis).

The ASGI app runs in process on a real store (SQLite) and a real Temporal dev server with a
worker. Two passes over every operation:
- without a token: every /api call is 401 (or the framework's 404/405 for a generated path
  that matches no route) and nothing at all changes in the store (a
  snapshot of every table is compared); no 5xx anywhere (webhooks, unsubscribe, UI included);
- with a token: no 5xx, whatever the input.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy import inspect, text

from engine.api.app import create_app
from engine.api.auth import create_api_token
from engine.project import load_project
from engine.services import Services
from engine.settings import load_settings
from tests.helpers.paths import PLAYBOOKS
from tests.helpers.reliability import inprocess_worker, seed_customers, sized

EXAMPLES = sized(8, 60)
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def snapshot(sessions) -> str:
    """A digest of every row of every table (what "no state change" is checked against)."""
    digest = hashlib.sha256()
    with sessions() as session:
        names = sorted(inspect(session.get_bind()).get_table_names())
        for name in names:
            rows = session.execute(text(f'SELECT * FROM "{name}"')).all()
            digest.update(name.encode())
            for row in sorted(map(repr, rows)):
                digest.update(row.encode())
    return digest.hexdigest()


def fuzz(app, headers: dict[str, str], examples: int) -> list[tuple[str, str, int, str, str]]:
    """Every operation, ``examples`` cases each: (method, path, status, body, operation)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: list[tuple[str, str, int, str, str]] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case) -> None:
            response = case.call(headers=headers)
            seen.append(
                (
                    case.method.upper(),
                    case.formatted_path,
                    response.status_code,
                    response.text[:300],
                    case.operation.label,
                )
            )

        call()
    return seen


@pytest.fixture
def services(dev_server, sessions, db_url, tmp_path, task_queue) -> Services:
    settings_ = load_settings(
        database_url=db_url,
        playbook_home=tmp_path / "home",
        signing_secret="reliability-secret-of-at-least-32-bytes",
        temporal_task_queue=task_queue,
    )
    project = load_project(PLAYBOOKS)
    return Services(settings_, sessions, dev_server.client, project, use_search_attributes=False)


async def test_api_fuzz_no_500_and_no_unauthenticated_state_change(
    dev_server, sessions, services, task_queue, figures
):
    seed_customers(sessions, 3)
    with sessions.begin() as session:
        token = create_api_token(session, "fuzzer")
    app = create_app(services)
    async with inprocess_worker(dev_server, sessions, task_queue):
        before = snapshot(sessions)
        anonymous = await asyncio.to_thread(fuzz, app, {}, EXAMPLES)
        after = snapshot(sessions)
        authed = await asyncio.to_thread(fuzz, app, {"Authorization": f"Bearer {token}"}, EXAMPLES)

    errors = [c for c in anonymous + authed if c[2] >= 500]
    assert not errors, errors[:10]
    # 401, or the framework's own 404/405 when the generated path matches no route at all
    # (an id with '/' in it can turn .../status into .../cancel): nothing was run or shown.
    no_route = ('{"detail":"Not Found"}', '{"detail":"Method Not Allowed"}')
    let_in = [
        c
        for c in anonymous
        if c[1].startswith("/api") and c[2] != 401 and not (c[2] in (404, 405) and c[3] in no_route)
    ]
    assert not let_in, let_in[:10]
    assert before == after, "an unauthenticated request changed the store"
    changing = [c for c in anonymous if c[0] in STATE_CHANGING]
    figures.update(
        requests=len(anonymous) + len(authed),
        operations=len({c[4] for c in authed}),
        unauthenticated_state_changing=len(changing),
        unauthenticated_2xx=sum(1 for c in changing if 200 <= c[2] < 300),
        server_errors=len(errors),
        authed_statuses=dict(Counter(c[2] for c in authed)),
    )
