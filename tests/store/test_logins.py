"""Server-side sessions, failed-login counting and login nonces, with an explicit clock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from engine.store import logins
from engine.store.models import LoginThrottle, TeamMember, utcnow

LIMITS = logins.SessionLimits(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
POLICY = logins.ThrottlePolicy(
    backoff_after=3,
    backoff_max=timedelta(seconds=60),
    lockout_failures=20,
    lockout=timedelta(minutes=15),
)
EMAIL = "casey@vendor.example"


def _member(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(TeamMember(email=EMAIL, name="Casey", roles=["csm"]))


def _failures(session: Session, key: str) -> int:
    row = session.get(LoginThrottle, key)
    assert row is not None
    return row.failures


def test_a_session_lasts_until_idle_too_long_or_too_old(sessions: sessionmaker[Session]) -> None:
    _member(sessions)
    start = utcnow()
    with sessions.begin() as session:
        secret = logins.open_session(session, EMAIL, start)
    now = start
    for _ in range(30):  # a request every 25 minutes keeps it alive...
        now += timedelta(minutes=25)
        with sessions.begin() as session:
            member = logins.session_member(session, secret, LIMITS, now)
        if now - start >= LIMITS.absolute:
            assert member is None  # ...until 12 hours after the login
            break
        assert member is not None and member.email == EMAIL
    else:
        raise AssertionError("the session never reached its absolute lifetime")

    with sessions.begin() as session:
        idle = logins.open_session(session, EMAIL, start)
    with sessions.begin() as session:
        assert logins.session_member(session, idle, LIMITS, start + timedelta(minutes=29))
        assert not logins.session_member(session, idle, LIMITS, start + timedelta(minutes=60))
        assert not logins.session_member(session, "not-a-session", LIMITS, start)


def test_ending_sessions_one_or_all_and_disabling_the_member(
    sessions: sessionmaker[Session],
) -> None:
    _member(sessions)
    now = utcnow()
    with sessions.begin() as session:
        first, second, third = (logins.open_session(session, EMAIL, now) for _ in range(3))
    with sessions.begin() as session:
        logins.end_session(session, first, now)
    with sessions.begin() as session:
        assert logins.session_member(session, first, LIMITS, now) is None
        assert logins.session_member(session, second, LIMITS, now) is not None
        assert logins.end_member_sessions(session, EMAIL.upper(), now) == 2
    with sessions.begin() as session:
        assert logins.session_member(session, second, LIMITS, now) is None
        assert logins.session_member(session, third, LIMITS, now) is None
        fourth = logins.open_session(session, EMAIL, now)
        member = session.get(TeamMember, EMAIL)
        assert member is not None
        member.disabled_at = now
    with sessions.begin() as session:
        assert logins.session_member(session, fourth, LIMITS, now) is None


def test_a_login_nonce_is_used_once(session: Session) -> None:
    expires = utcnow() + timedelta(minutes=10)
    assert logins.use_login_nonce(session, "nonce-1", expires)
    assert not logins.use_login_nonce(session, "nonce-1", expires)
    assert logins.use_login_nonce(session, "nonce-2", expires)
    session.commit()
    logins.prune(session, LIMITS, POLICY.lockout, expires + timedelta(seconds=1))
    assert logins.use_login_nonce(session, "nonce-1", expires + timedelta(minutes=10))


def test_backoff_doubles_after_the_free_failures_up_to_its_cap() -> None:
    waits = [POLICY.backoff(n).total_seconds() for n in range(12)]
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert POLICY.backoff(10_000) == timedelta(seconds=60)


def test_failures_back_off_then_lock_out_then_start_over(session: Session) -> None:
    key = logins.account_key(" Casey@Vendor.example ")
    assert key == "account:casey@vendor.example"
    checks = [(key, POLICY)]
    now = utcnow()
    for _ in range(3):
        assert not logins.record_failure(session, key, POLICY, now)
    assert logins.login_wait(session, checks, now) == timedelta(0)
    assert not logins.record_failure(session, key, POLICY, now)
    assert logins.login_wait(session, checks, now) == timedelta(seconds=1)
    assert logins.login_wait(session, checks, now + timedelta(seconds=1)) == timedelta(0)

    locked_at = None
    for _ in range(4, 20):
        now += POLICY.backoff(20)  # waiting out each backoff
        if logins.record_failure(session, key, POLICY, now):
            locked_at = now
    assert locked_at is not None and _failures(session, key) == 20
    assert logins.login_wait(session, checks, locked_at) == POLICY.lockout
    almost = locked_at + POLICY.lockout - timedelta(seconds=1)
    assert logins.login_wait(session, checks, almost) == timedelta(seconds=1)
    after = locked_at + POLICY.lockout
    assert logins.login_wait(session, checks, after) == timedelta(0)
    assert not logins.record_failure(session, key, POLICY, after)  # a fresh count
    assert _failures(session, key) == 1

    logins.clear_failures(session, key)
    assert logins.login_wait(session, checks, after) == timedelta(0)


def test_failures_are_forgotten_after_a_quiet_spell(session: Session) -> None:
    key = logins.client_key("203.0.113.7")
    now = utcnow()
    for _ in range(10):
        logins.record_failure(session, key, POLICY, now)
    assert logins.login_wait(session, [(key, POLICY)], now) > timedelta(0)
    later = now + POLICY.lockout
    assert logins.login_wait(session, [(key, POLICY)], later) == timedelta(0)
    logins.record_failure(session, key, POLICY, later)
    assert _failures(session, key) == 1


def test_the_longest_wait_of_account_and_address_applies(session: Session) -> None:
    client = logins.client_key("198.51.100.1")
    lenient = logins.ThrottlePolicy(
        backoff_after=20,
        backoff_max=timedelta(seconds=60),
        lockout_failures=5,
        lockout=timedelta(hours=1),
    )
    now = utcnow()
    for n in range(5):  # five accounts tried from one address: the address locks
        logins.record_failure(session, logins.account_key(f"user{n}@x.example"), POLICY, now)
        logins.record_failure(session, client, lenient, now)
    fresh_account = logins.account_key("someone@x.example")
    wait = logins.login_wait(session, [(fresh_account, POLICY), (client, lenient)], now)
    assert wait == timedelta(hours=1)
