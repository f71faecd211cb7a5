"""Sessions end when they should, and logins are throttled: against the live server.

A copied session cookie is replayed from another client after logout, a password change, a
demotion, disabling and removal; the idle timeout is reached by moving the session's last
request back in the store rather than by waiting; failed logins back off, lock out, and are
logged; a login form's nonce works once.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import delete, update

from engine.api.auth import hash_password
from engine.cli import main
from engine.settings import settings_override
from engine.store import logins
from engine.store.models import LoginThrottle, Task, TeamMember, WebSession, utcnow
from engine.web.security import LOGIN_COOKIE, SESSION_COOKIE, login_token, throttle_policies
from tests.helpers.browser import PASSWORD, Browser, Stack, seed_task

LOGIN_LOG = "engine.web.pages.login"


@pytest.fixture(autouse=True)
def no_failures_counted(stack: Stack) -> Iterator[None]:
    """Every test starts and leaves with no failed logins counted (they share 127.0.0.1)."""
    with stack.sessions.begin() as session:
        session.execute(delete(LoginThrottle))
    yield
    with stack.sessions.begin() as session:
        session.execute(delete(LoginThrottle))


@pytest.fixture
def member(stack: Stack) -> str:
    """A fresh admin CSM of this test's own, with the usual password."""
    email = f"m-{uuid.uuid4().hex[:8]}@vendor.example"
    with stack.sessions.begin() as session:
        session.add(
            TeamMember(
                email=email,
                name="Sam Session",
                roles=["csm", "manager"],
                is_admin=True,
                password_hash=hash_password(PASSWORD),
            )
        )
    return email


def form_token(http: httpx.Client) -> str:
    page = http.get("/login")
    found = re.search(r'name="token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def post_login(http: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return http.post(
        "/login", data={"email": email, "password": password, "token": form_token(http)}
    )


def logged_in(stack: Stack, email: str) -> str:
    """Log ``email`` in from a client of its own; returns the session cookie."""
    with httpx.Client(base_url=stack.url, follow_redirects=False) as http:
        response = post_login(http, email)
        assert response.status_code == 303, response.text
        cookie = http.cookies.get(SESSION_COOKIE)
        assert cookie
        return cookie


def opens_inbox(stack: Stack, cookie: str) -> bool:
    """Whether a client holding only ``cookie`` gets the inbox (else the login redirect)."""
    with httpx.Client(
        base_url=stack.url, cookies={SESSION_COOKIE: cookie}, follow_redirects=False
    ) as http:
        response = http.get("/inbox")
    assert response.status_code in (200, 303), response.status_code
    return response.status_code == 200


def test_a_cookie_copied_before_logout_stops_working(
    stack: Stack, browser: Browser, member: str
) -> None:
    browser.login(member)
    copied = browser.driver.get_cookie(SESSION_COOKIE)["value"]
    other = logged_in(stack, member)  # the same member on another device
    assert opens_inbox(stack, copied)
    browser.find("header form button").click()  # log out
    browser.wait_for("input[name=password]")
    assert not opens_inbox(stack, copied)
    assert opens_inbox(stack, other)  # logout ends this session only


def test_a_new_password_ends_every_session(stack: Stack, member: str) -> None:
    cookies = [logged_in(stack, member), logged_in(stack, member)]
    with stack.api() as api:
        same_role = {"name": "Sam Session", "roles": ["csm", "manager"], "is_admin": True}
        assert api.put(f"/api/team/{member}", json=same_role).status_code == 204
        assert all(opens_inbox(stack, cookie) for cookie in cookies)  # nothing taken away
        changed = api.put(f"/api/team/{member}", json={**same_role, "password": "a new secret!"})
        assert changed.status_code == 204
    assert not any(opens_inbox(stack, cookie) for cookie in cookies)
    with httpx.Client(base_url=stack.url, follow_redirects=False) as http:
        assert post_login(http, member).status_code == 401
        assert post_login(http, member, "a new secret!").status_code == 303


@pytest.mark.parametrize(
    "change",
    [
        {"roles": ["csm", "manager"], "is_admin": False},  # no longer an admin
        {"roles": ["csm"], "is_admin": True},  # no longer a manager
    ],
)
def test_a_demotion_ends_every_session(
    stack: Stack, member: str, change: dict[str, object]
) -> None:
    cookie = logged_in(stack, member)
    with stack.api() as api:
        assert api.put(f"/api/team/{member}", json={"name": "Sam", **change}).status_code == 204
    assert not opens_inbox(stack, cookie)


def test_a_disabled_member_is_out_until_enabled(stack: Stack, member: str) -> None:
    cookie = logged_in(stack, member)
    task_id = seed_task(stack, member, "Stays with a disabled member")
    with stack.api() as api:
        assert api.post(f"/api/team/{member}/disable").status_code == 204
        assert not opens_inbox(stack, cookie)
        with httpx.Client(base_url=stack.url, follow_redirects=False) as http:
            refused = post_login(http, member)
            assert refused.status_code == 401 and "Wrong email or password." in refused.text
        assert api.post(f"/api/team/{member}/enable").status_code == 204
        assert api.post("/api/team/nobody@vendor.example/disable").status_code == 404
    assert not opens_inbox(stack, cookie)  # enabling does not bring old sessions back
    assert opens_inbox(stack, logged_in(stack, member))
    with stack.sessions() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.assignee_email == member


def test_a_removed_member_is_out_and_their_open_tasks_unassigned(stack: Stack, member: str) -> None:
    cookie = logged_in(stack, member)
    task_id = seed_task(stack, member, "Goes back to the queue")
    with stack.api() as api:
        assert api.delete(f"/api/team/{member}").status_code == 204
        assert api.delete(f"/api/team/{member}").status_code == 404
    assert not opens_inbox(stack, cookie)
    with stack.sessions() as session:
        assert session.get(TeamMember, member) is None
        task = session.get(Task, task_id)
        assert task is not None and task.assignee_email is None and task.status == "open"
    with httpx.Client(base_url=stack.url, follow_redirects=False) as http:
        assert post_login(http, member).status_code == 401


def test_an_idle_session_ends_and_a_used_one_goes_on(stack: Stack, member: str) -> None:
    idle = timedelta(minutes=stack.settings.session_idle_minutes)
    cookie = logged_in(stack, member)

    def last_request_ago(ago: timedelta) -> None:
        with stack.sessions.begin() as session:
            session.execute(
                update(WebSession)
                .where(WebSession.member_email == member)
                .values(last_seen_at=utcnow() - ago)
            )

    last_request_ago(idle - timedelta(minutes=2))
    assert opens_inbox(stack, cookie)  # in time: the request counts as activity
    last_request_ago(idle - timedelta(minutes=2))
    assert opens_inbox(stack, cookie)
    last_request_ago(idle + timedelta(seconds=1))
    assert not opens_inbox(stack, cookie)


def test_twenty_wrong_passwords_lock_the_account_even_for_the_right_one(
    stack: Stack, member: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGIN_LOG)
    key = logins.account_key(member)

    def wait_out_the_backoff() -> None:
        with stack.sessions.begin() as session:
            session.execute(
                update(LoginThrottle)
                .where(LoginThrottle.key == key)
                .values(last_failure_at=utcnow() - timedelta(minutes=2))
            )

    with httpx.Client(base_url=stack.url, follow_redirects=False) as http:
        for attempt in range(1, 21):
            wrong = post_login(http, member, f"guess number {attempt}")
            assert wrong.status_code == 401, (attempt, wrong.status_code)
            if attempt == stack.settings.login_backoff_after + 1:
                backoff = post_login(http, member)  # the right password, too soon
                assert backoff.status_code == 429
                assert int(backoff.headers["Retry-After"]) >= 1
            wait_out_the_backoff()
        locked = post_login(http, member)
        assert locked.status_code == 429
        assert "Too many failed logins. Try again in 15 minutes." in locked.text
        assert PASSWORD not in locked.text

        with stack.sessions.begin() as session:  # the lockout ends
            session.execute(
                update(LoginThrottle)
                .where(LoginThrottle.key == key)
                .values(locked_until=utcnow() - timedelta(seconds=1))
            )
        assert post_login(http, member).status_code == 303
    with stack.sessions() as session:
        assert session.get(LoginThrottle, key) is None  # a success clears the account
        client = session.get(LoginThrottle, logins.client_key("127.0.0.1"))
        assert client is not None and client.failures == 20  # and not the address

    failed = [r for r in caplog.records if r.getMessage().startswith("failed login")]
    assert len(failed) == 20
    assert all(member in r.getMessage() and "127.0.0.1" in r.getMessage() for r in failed)
    assert not any("guess number" in r.getMessage() for r in caplog.records)
    assert any("locked out" in r.getMessage() and member in r.getMessage() for r in caplog.records)


def test_a_login_form_works_once_and_not_after_it_expires(stack: Stack, member: str) -> None:
    with httpx.Client(base_url=stack.url, follow_redirects=False) as http:
        first = {"email": member, "password": PASSWORD, "token": form_token(http)}
        used_nonce = http.cookies[LOGIN_COOKIE]
        assert http.post("/login", data=first).status_code == 303
    with httpx.Client(
        base_url=stack.url, cookies={LOGIN_COOKIE: used_nonce}, follow_redirects=False
    ) as replay:  # the same form posted again: the right password, a valid signature
        reused = replay.post("/login", data=first)
        assert reused.status_code == 400 and "The login form expired" in reused.text
        assert SESSION_COOKIE not in reused.cookies

    stale = login_token(stack.settings.signing_keys(), "a-nonce", utcnow() - timedelta(seconds=1))
    with httpx.Client(
        base_url=stack.url, cookies={LOGIN_COOKIE: "a-nonce"}, follow_redirects=False
    ) as late:
        expired = late.post("/login", data={"email": member, "password": PASSWORD, "token": stale})
        assert expired.status_code == 400


def playbook(stack: Stack, *args: str) -> Result:
    """Run `playbook ARGS...` on the stack's database."""
    with settings_override(
        playbook_home=stack.settings.playbook_home,
        database_url=stack.settings.database_url,
        signing_secret=stack.settings.signing_secret,
    ):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)


def lock_out(stack: Stack, email: str) -> None:
    policy, _ = throttle_policies(stack.settings)
    with stack.sessions.begin() as session:
        for _ in range(policy.lockout_failures):
            logins.record_failure(session, logins.account_key(email), policy, utcnow())


def test_the_team_cli_disables_enables_unlocks_and_removes(stack: Stack, member: str) -> None:
    cookie = logged_in(stack, member)
    assert playbook(stack, "team", "disable", member).exit_code == 0
    assert not opens_inbox(stack, cookie)
    assert playbook(stack, "team", "enable", member).exit_code == 0

    lock_out(stack, member)  # someone failed on purpose with their email
    with httpx.Client(base_url=stack.url, follow_redirects=False) as http:
        assert post_login(http, member).status_code == 429
        assert playbook(stack, "team", "unlock", member).exit_code == 0
        assert post_login(http, member).status_code == 303
    assert "no failed logins" in playbook(stack, "team", "unlock", member).output

    assert playbook(stack, "team", "remove", member).exit_code == 0
    missing = playbook(stack, "team", "remove", member)
    assert missing.exit_code == 1 and "no team member" in missing.output


def test_the_api_unlocks_a_locked_account(stack: Stack, member: str) -> None:
    lock_out(stack, member)
    with httpx.Client(base_url=stack.url, follow_redirects=False) as http:
        assert post_login(http, member).status_code == 429
        with stack.api() as api:
            assert api.post(f"/api/team/{member}/unlock").status_code == 204
        assert post_login(http, member).status_code == 303
