"""Bad input 10: fuzz the HTTP API from its own OpenAPI document (schemathesis).

The ASGI app runs in process on a real store (SQLite) and a real Temporal dev server with a
worker. Two passes over every operation:
- without a token: every /api call is 401 (or the framework's 404/405 for a generated path
  that matches no route) and nothing at all changes in the store (a
  snapshot of every table is compared); no 5xx anywhere (webhooks, unsubscribe, UI included);
- with a token of each scope (ingest, operate, admin): no 5xx, whatever the input; every
  call to a route the scope does not open is 403 (or the framework's 404/405); and a token
  without `admin` changes neither the team nor the tokens (the way up: a password reset,
  a new admin, a new or revoked token), whatever it sends.
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
from engine.scopes import Scope
from engine.services import Services
from engine.settings import load_settings
from tests.helpers.api import ROUTE_SCOPES, allowed
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


def admin_state(sessions) -> str:
    """A digest of what only `admin` may change: the team, and the tokens (all but when
    each was last used, which any request notes)."""
    with sessions() as session:
        team = session.execute(text("SELECT * FROM team_members")).all()
        tokens = session.execute(
            text(
                "SELECT id, name, token_hash, scopes, created_by, expires_at, revoked_at "
                "FROM api_tokens"
            )
        ).all()
    return hashlib.sha256(repr(sorted(map(repr, team + tokens))).encode()).hexdigest()


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
    # admin last: it may revoke the other tokens (ids are small numbers), even its own.
    scopes = [Scope.INGEST, Scope.OPERATE, Scope.ADMIN]
    with sessions.begin() as session:
        tokens = {s: create_api_token(session, f"fuzzer-{s}", [s], "1d") for s in scopes}
    app = create_app(services)
    by_scope = {}
    admin_changed = {}
    async with inprocess_worker(dev_server, sessions, task_queue):
        before = snapshot(sessions)
        anonymous = await asyncio.to_thread(fuzz, app, {}, EXAMPLES)
        after = snapshot(sessions)
        for scope in scopes:
            guarded = admin_state(sessions)
            headers = {"Authorization": f"Bearer {tokens[scope]}"}
            by_scope[scope] = await asyncio.to_thread(fuzz, app, headers, EXAMPLES)
            admin_changed[scope] = admin_state(sessions) != guarded
    authed = [c for calls in by_scope.values() for c in calls]

    errors = [c for c in anonymous + authed if c[2] >= 500]
    assert not errors, errors[:10]
    # 401, or the framework's own 404/405 when the generated path matches no route at all
    # (an id with '/' in it can turn .../status into .../cancel): nothing was run or shown.
    no_route = ('{"detail":"Not Found"}', '{"detail":"Method Not Allowed"}')
    outside = {
        scope: [
            c
            for c in calls
            if c[1].startswith("/api")
            and not allowed(scope, *c[4].split(" ", 1))
            and not (c[2] == 403 or (c[2] in (404, 405) and c[3] in no_route))
        ]
        for scope, calls in by_scope.items()
    }
    assert not any(outside.values()), {s: c[:10] for s, c in outside.items() if c}
    assert not admin_changed[Scope.INGEST], "an ingest token changed the team or the tokens"
    assert not admin_changed[Scope.OPERATE], "an operate token changed the team or the tokens"
    api_labels = {c[4] for c in authed if c[4].split(" ", 1)[1].startswith("/api")}
    assert api_labels == {f"{m} {p}" for m, p in ROUTE_SCOPES}, "fuzzed every /api operation"
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
        authed_statuses={s.value: dict(Counter(c[2] for c in by_scope[s])) for s in scopes},
        out_of_scope_refused=sum(
            1
            for s, calls in by_scope.items()
            for c in calls
            if c[1].startswith("/api") and not allowed(s, *c[4].split(" ", 1))
        ),
    )
