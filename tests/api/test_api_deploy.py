"""Deploy as a recorded step, on the session's Temporal dev server with a real worker.

Deploying and rolling back change the version that event triggers, sweeps and `enroll`
steps start (before, sweeps and `enroll` steps took the first-registered "latest" version,
so a rollback did not reach them); a running API picks up a deploy made by `playbook
deploy` without a restart; the CLI and the API give the same answer for the same event,
with the reason when it enrolls nobody, and a broken file on disk does not block
`events send`; `playbook deploy` refuses a playbook that fails validation.

Each test has its own database, task queue and worker (`build_worker`, as in production).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from click.testing import CliRunner, Result
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from engine.api.app import create_app
from engine.api.auth import create_api_token
from engine.cli import main
from engine.client.deployment import deploy_new_playbooks, deploy_version, deploy_working_copy
from engine.client.enrollment import enroll, reenroll_refusal
from engine.messages import SWEEP_WORKFLOW_NAME, EnrollmentResult, SweepInput, SweepResult
from engine.project import Project, load_project
from engine.services import Services
from engine.settings import Settings, load_settings, settings_override
from engine.stack import running_versions
from engine.statuses import EnrollmentStatus
from engine.store import deployments
from engine.store.repository import upsert_enrollment
from tests.helpers.harness import seed_customer, write_project
from tests.helpers.temporal import target_of

GREET = """\
playbook: greet
name: Greeting
trigger: {{on_event: account.ready, if: customer.segment != "internal"}}
reenroll: always
steps:
  - id: done
    end: {{outcome: {outcome}}}
"""

DIGEST = """\
playbook: digest
name: Daily digest
trigger: {{schedule: {{every: day}}}}
reenroll: always
steps:
  - id: done
    end: {{outcome: {outcome}}}
"""

PARENT = """\
playbook: parent
name: Hands over to greet
trigger: {manual: true}
reenroll: always
steps:
  - id: hand_over
    enroll: {playbook: greet}
  - id: done
    end: {outcome: handed_over}
"""

WELCOME_BACK = """\
playbook: welcome_back
name: Welcome back
trigger: {on_event: account.back}
reenroll: always
steps:
  - id: done
    end: {outcome: welcomed_back}
"""

BROKEN = """\
playbook: broken
name: Broken
steps:
  - id: oops
    emial: {template: nowhere}
"""


def settings_for(env: WorkflowEnvironment, db_url: str, home: Path) -> Settings:
    return load_settings(
        playbook_home=home,
        database_url=db_url,
        temporal_address=target_of(env),
        temporal_namespace="default",
        temporal_task_queue=f"deploy-{uuid.uuid4().hex[:8]}",
        signing_secret="deploy-test-signing-secret-of-32-bytes-or-more",
        sendgrid_api_key=None,
        public_base_url="http://testserver",
        worker_max_concurrent_activities=8,
    )


@asynccontextmanager
async def worker_for(client: Client, settings: Settings) -> AsyncIterator[None]:
    """The production worker (`worker.build_worker`): enroll steps and sweeps included."""
    from worker import build_activities, build_worker

    with ThreadPoolExecutor(max_workers=8) as pool:
        async with build_worker(client, settings, build_activities(settings, client), pool):
            yield


async def cli(settings: Settings, *args: str) -> Result:
    """`playbook ARGS...` against the test's store and Temporal, in a thread."""

    def run() -> Result:
        with settings_override(
            playbook_home=settings.playbook_home,
            database_url=settings.database_url,
            temporal_address=settings.temporal_address,
            temporal_namespace=settings.temporal_namespace,
            temporal_task_queue=settings.temporal_task_queue,
            signing_secret=settings.signing_secret,
        ):
            return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return await asyncio.to_thread(run)


async def outcome(client: Client, workflow_id: str) -> str:
    handle = client.get_workflow_handle(workflow_id, result_type=EnrollmentResult)
    return (await asyncio.wait_for(handle.result(), 30)).outcome


def write(root: Path, greet: str, digest: str) -> Project:
    return write_project(
        root,
        {
            "greet": GREET.format(outcome=greet),
            "digest": DIGEST.format(outcome=digest),
            "parent": PARENT,
        },
    )


async def started_versions(
    services: Services, settings: Settings, tag: str
) -> tuple[str, str, str]:
    """The outcome of what an event, an `enroll` step and a sweep start now."""
    client = services.client
    by_event, by_step = f"ev-{tag}", f"step-{tag}"
    seed_customer(services.sessions, by_event, segment="smb")
    seed_customer(services.sessions, by_step, segment="smb")
    routed = await services.router.handle(f"ready-{tag}", by_event, "account.ready", None, {})
    assert routed.enrolled == [f"greet/{by_event}"], routed
    parent = services.deployed.plan("parent")
    assert parent is not None
    await enroll(client, parent, by_step, task_queue=settings.temporal_task_queue)
    assert await outcome(client, f"parent/{by_step}") == "handed_over"
    swept = await client.execute_workflow(
        SWEEP_WORKFLOW_NAME,
        SweepInput(playbook="digest"),
        id=f"sweep-{tag}-{uuid.uuid4().hex[:6]}",
        task_queue=settings.temporal_task_queue,
        result_type=SweepResult,
    )
    assert swept.enrolled, "the sweep enrolled nobody"
    digests = {await outcome(client, workflow_id) for workflow_id in swept.enrolled}
    assert len(digests) == 1, digests
    return (
        await outcome(client, f"greet/{by_event}"),
        await outcome(client, f"greet/{by_step}"),
        digests.pop(),
    )


async def test_deploy_then_rollback_changes_what_events_sweeps_and_enroll_steps_start(
    local_temporal: WorkflowEnvironment,
    db_url: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    settings = settings_for(local_temporal, db_url, tmp_path / "home")
    root = tmp_path / "playbooks"
    first = write(root, "greet_v1", "digest_v1")
    deploy_working_copy(sessions, first, by="test", message="first")
    second = write(root, "greet_v2", "digest_v2")
    deploy_working_copy(sessions, second, ["greet", "digest"], by="test", message="v2")
    services = Services(settings, sessions, local_temporal.client, second)

    async with worker_for(local_temporal.client, settings):
        assert await started_versions(services, settings, "v2") == (
            "greet_v2",
            "greet_v2",
            "digest_v2",
        )
        for pid in ("greet", "digest"):  # back to the first versions, by hash prefix
            rolled = deploy_version(
                sessions, pid, first.plans[pid].version[:10], by="test", message="undo"
            )
            assert rolled.status == "deployed" and rolled.rollback
        assert await started_versions(services, settings, "v1") == (
            "greet_v1",
            "greet_v1",
            "digest_v1",
        )

    # The history and status say what happened.
    listed = await cli(settings, "history", "greet", "--format", "json")
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)
    assert [i["message"] for i in items] == ["undo", "v2", "first"]
    assert [i["version"] for i in items] == [
        first.plans["greet"].version,
        second.plans["greet"].version,
        first.plans["greet"].version,
    ]
    assert [(i["current"], i["rollback"]) for i in items] == [
        (True, True),
        (False, False),
        (False, False),
    ]
    table = await cli(settings, "history", "greet")
    assert table.exit_code == 0 and "undo" in table.stdout and "(rollback)" in table.stdout
    status = await cli(settings, "status", "--playbook", "greet", "--format", "json")
    assert status.exit_code == 0, status.output
    [deployed] = json.loads(status.stdout)["deployed"]
    assert deployed["version"] == first.plans["greet"].version
    assert deployed["rollback_from"] == second.plans["greet"].version
    shown = await cli(settings, "status")
    assert f"deployed greet@{first.plans['greet'].short_version}" in shown.stdout
    assert f"rollback: {second.plans['greet'].short_version} is newer" in shown.stdout


@asynccontextmanager
async def api_for(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    with services.sessions.begin() as session:
        token = create_api_token(session, "deploy-tests", ["admin"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(create_app(services)),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


async def post_event(api: httpx.AsyncClient, customer: str, name: str) -> dict[str, object]:
    body = {"id": f"api-{uuid.uuid4().hex}", "customer_id": customer, "name": name}
    response = await api.post("/api/events", json=body)
    assert response.status_code == 202, response.text
    result: dict[str, object] = response.json()["results"][0]
    return result


async def test_a_running_api_picks_up_a_deploy_without_restart(
    local_temporal: WorkflowEnvironment,
    db_url: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    settings = settings_for(local_temporal, db_url, tmp_path / "home")
    root = tmp_path / "playbooks"
    project = write(root, "greet_v1", "digest_v1")
    deploy_working_copy(sessions, project, by="test")
    services = Services(settings, sessions, local_temporal.client, project)
    seed_customer(sessions, "returning", segment="smb")
    (root / "welcome_back.yaml").write_text(WELCOME_BACK)  # added on disk, not deployed

    async with worker_for(local_temporal.client, settings), api_for(services) as api:
        before = await post_event(api, "returning", "account.back")
        assert before["enrolled"] == []
        assert before["notes"] == ["no deployed playbook triggers on account.back"]

        deployed = await cli(
            settings, "deploy", "welcome_back", "--root", str(root), "-m", "add it", "--by", "ops"
        )
        assert deployed.exit_code == 0, deployed.output
        assert "deployed welcome_back@" in deployed.output and "first deploy" in deployed.output
        again = await cli(settings, "deploy", "welcome_back", "--root", str(root))
        assert again.exit_code == 0 and "unchanged welcome_back@" in again.output

        after = await post_event(api, "returning", "account.back")
        assert after["enrolled"] == ["welcome_back/returning"], after
        assert await outcome(local_temporal.client, "welcome_back/returning") == "welcomed_back"
    with sessions() as session:
        [row] = deployments.history(session, "welcome_back")
        assert (row.deployed_by, row.message) == ("ops", "add it")


async def test_cli_and_api_give_the_same_answer_and_broken_yaml_does_not_block_events(
    local_temporal: WorkflowEnvironment,
    db_url: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    settings = settings_for(local_temporal, db_url, tmp_path / "home")
    root = tmp_path / "playbooks"
    project = write(root, "greet_v1", "digest_v1")
    deploy_working_copy(sessions, project, by="test")
    (root / "broken.yaml").write_text(BROKEN)  # the CLI used to refuse every event
    assert load_project(root).errors
    services = Services(settings, sessions, local_temporal.client, project)
    seed_customer(sessions, "insider", segment="internal")

    async with worker_for(local_temporal.client, settings), api_for(services) as api:
        for name, expected in (
            (
                "account.ready",
                'greet: not enrolled (trigger condition customer.segment != "internal" is '
                'false with customer.segment = "internal")',
            ),
            ("nothing.listens", "no deployed playbook triggers on nothing.listens"),
        ):
            by_api = await post_event(api, "insider", name)
            by_cli = await cli(settings, "events", "send", "insider", name, "--root", str(root))
            assert by_cli.exit_code == 0, by_cli.output
            assert by_api["status"] == "accepted" and by_api["enrolled"] == []
            assert by_api["notes"] == [expected]
            assert "accepted" in by_cli.output
            assert [line.strip() for line in by_cli.output.splitlines()[1:]] == [expected]


async def test_deploy_refuses_a_playbook_that_fails_validation(
    db_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = load_settings(
        playbook_home=tmp_path / "home",
        database_url=db_url,
        temporal_address="127.0.0.1:1",  # deploys with no schedule to update need none
        signing_secret="deploy-test-signing-secret-of-32-bytes-or-more",
    )
    root = tmp_path / "playbooks"
    write_project(root, {"welcome_back": WELCOME_BACK})
    (root / "broken.yaml").write_text(BROKEN)

    for args in (("deploy",), ("deploy", "broken"), ("deploy", "broken", "welcome_back")):
        refused = await cli(settings, *args, "--root", str(root))
        assert refused.exit_code == 1, refused.output
        assert "broken.yaml" in refused.output and "emial" in refused.output
        assert "deploy refused" in refused.output and "nothing was deployed" in refused.output
        with sessions() as session:
            assert deployments.current_deployments(session) == {}

    # A valid playbook next to a broken one can still be deployed on its own.
    alone = await cli(settings, "deploy", "welcome_back", "--root", str(root))
    assert alone.exit_code == 0, alone.output
    with sessions() as session:
        assert set(deployments.current_deployments(session)) == {"welcome_back"}
    unknown = await cli(settings, "deploy", "welcome_back", "--version", "ffff")
    assert unknown.exit_code == 1 and "no registered version 'ffff'" in unknown.output


def test_up_deploys_only_playbooks_never_deployed_and_says_what_runs(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    root = tmp_path / "playbooks"
    first = write(root, "greet_v1", "digest_v1")
    new = deploy_new_playbooks(sessions, first, by="playbook up")
    assert sorted(r.playbook for r in new) == ["digest", "greet", "parent"]
    assert all(
        "first deploy of the working copy" in line
        for line in running_versions(sessions, first, new)
    )

    edited = write(root, "greet_v2", "digest_v1")  # edited on disk, not deployed
    assert deploy_new_playbooks(sessions, edited, by="playbook up") == []
    lines = running_versions(sessions, edited, [])
    greet = first.plans["greet"].short_version
    assert (
        f"[yellow]running[/] greet@{greet} (deployed; working copy differs: "
        "run playbook deploy greet)"
    ) in lines
    assert f"[green]running[/] digest@{first.plans['digest'].short_version} (deployed)" in lines
    with sessions() as session:
        assert deployments.deployed_plan(session, "greet") == first.plans["greet"]


GAP = """\
playbook: gap
name: Every 90 days at most
trigger: {on_event: account.ready}
reenroll: 90d
steps:
  - id: done
    end: {outcome: done}
"""


def test_a_reenroll_refusal_says_which_rule_and_until_when(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    plan = write_project(tmp_path / "playbooks", {"gap": GAP}).plan("gap")
    seed_customer(sessions, "again", segment="smb")
    started = datetime(2026, 9, 1, 9, tzinfo=UTC)
    with sessions.begin() as session:
        assert reenroll_refusal(session, plan, "again") is None
        upsert_enrollment(
            session,
            workflow_id="gap/again",
            playbook_id="gap",
            version=plan.version,
            customer_id="again",
            started_at=started,
        )
        assert reenroll_refusal(session, plan, "again") == (
            "already enrolled: gap/again is running since 2026-09-01"
        )
        upsert_enrollment(
            session,
            workflow_id="gap/again",
            playbook_id="gap",
            version=plan.version,
            customer_id="again",
            status=EnrollmentStatus.COMPLETED,
            ended_at=datetime.now(UTC) - timedelta(days=10),
        )
        refusal = reenroll_refusal(session, plan, "again")
    again = datetime.now(UTC) + timedelta(days=80)
    assert refusal is not None and refusal.startswith("reenroll gap: the last enrollment ended")
    assert f"next possible {again:%Y-%m-%d}" in refusal
