"""The contact budget and each recipient's calendar: pure rules the `send_email` activity applies.

Given what a contact already received (the local dates of the emails charged to their
budget), the caps of the delivery policy say whether one more may go today and, if not,
the first day it may. Given the recipient's zone, the send window and their days off
(public holidays of their country, the company's calendar), `next_send_moment` says when
an email may go out and why it moved. No I/O and no clock: the caller passes every input,
so the simulator and the worker get the same answers for the same data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from engine.language.plan import CapPlan, ContentPlan, VariantPlan, WindowPlan
from engine.language.sendwindow import zone

# Looked ahead at most this far for an open day (a window on Mondays, a month of holidays).
MAX_DAYS_AHEAD = 60
DayOff = Callable[[date], str | None]


def no_days_off(_day: date) -> str | None:
    """The calendar without holidays."""
    return None


@dataclass(frozen=True)
class SendMoment:
    """When an email may go out, and the shifts that moved it (for timelines and the outbox)."""

    at: datetime
    moves: list[str] = field(default_factory=list)


def next_send_moment(
    now: datetime, timezone: str | None, window: WindowPlan | None, day_off: DayOff = no_days_off
) -> SendMoment:
    """The first moment at or after ``now`` inside ``window`` on a day that is not off.

    Without a window, any time of an open day will do: a day off moves the email to the
    same local time on the next open day. Returns ``now`` itself when it may go at once.
    """
    tz = zone(timezone)
    local = now.astimezone(tz)
    moves: list[str] = []
    for offset in range(MAX_DAYS_AHEAD):
        day = local.date() + timedelta(days=offset)
        if window is not None and window.days and day.weekday() not in window.days:
            continue
        reason = day_off(day)
        if reason:
            moves.append(f"{day.isoformat()}, {reason}")
            continue
        if window is None or not window.days:
            opens = local if offset == 0 else datetime.combine(day, local.timetz())
            closes = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
        else:
            opens = datetime.combine(day, _at(window.start_minute), tzinfo=tz)
            closes = datetime.combine(day, _at(window.end_minute), tzinfo=tz)
        if offset == 0 and opens <= local < closes:
            return SendMoment(now, [])
        if local < opens:
            at = opens.astimezone(now.tzinfo)
            return SendMoment(at, [_moved(move, at, tz) for move in moves])
    return SendMoment(now, [])  # no open day within reach: never block forever


def _moved(move: str, at: datetime, tz: object) -> str:
    local_day = at.astimezone(tz).date().isoformat()  # type: ignore[arg-type]
    return f"moved from {move}, to {local_day}"


def local_day(moment: datetime, timezone: str | None) -> date:
    """The calendar date of ``moment`` in ``timezone``."""
    return moment.astimezone(zone(timezone)).date()


def day_start(day: date, timezone: str | None) -> datetime:
    """Local midnight of ``day`` in ``timezone``, as an aware datetime."""
    return datetime.combine(day, time(0), tzinfo=zone(timezone))


def cap_reached(caps: Iterable[CapPlan], today: date, sent_days: list[date]) -> CapPlan | None:
    """The first cap one more email on ``today`` would exceed, or None when it may go."""
    for cap in caps:
        first = today - timedelta(days=cap.days - 1)
        if sum(1 for day in sent_days if first <= day <= today) >= cap.max:
            return cap
    return None


def first_day_under_caps(caps: list[CapPlan], today: date, sent_days: list[date]) -> date:
    """The first day after ``today`` on which every cap leaves room for one more email."""
    longest = max((cap.days for cap in caps), default=1)
    for offset in range(1, longest + 2):
        day = today + timedelta(days=offset)
        if cap_reached(caps, day, sent_days) is None:
            return day
    return today + timedelta(days=longest + 1)


@dataclass(frozen=True)
class Send:
    """One email charged to a contact's budget: to whom, when, and the contact's zone."""

    contact: str
    at: datetime
    timezone: str | None = None


def cap_violations(sends: Iterable[Send], caps: list[CapPlan]) -> list[str]:
    """Every contact and day on which ``sends`` go over one of ``caps``, as sentences.

    The check a simulation of the whole book runs on what it captured: empty when every
    contact stayed within the policy.
    """
    days: dict[str, list[date]] = {}
    for send in sends:
        days.setdefault(send.contact.lower(), []).append(local_day(send.at, send.timezone))
    problems: list[str] = []
    for contact, sent in sorted(days.items()):
        for day in sorted(set(sent)):
            for cap in caps:
                first = day - timedelta(days=cap.days - 1)
                count = sum(1 for other in sent if first <= other <= day)
                if count > cap.max:
                    problems.append(
                        f"{contact}: {count} emails in the {cap.days} day(s) to {day.isoformat()}"
                        f", over the cap of {describe_cap(cap)}"
                    )
    return problems


def describe_cap(cap: CapPlan) -> str:
    """A cap as people say it: '1 email a day', '3 emails in 7 days'."""
    emails = "email" if cap.max == 1 else "emails"
    if cap.days == 1:
        return f"{cap.max} {emails} a day"
    return f"{cap.max} {emails} in {cap.days} days"


def pick_variant(variants: list[VariantPlan], identity: str) -> VariantPlan | None:
    """The variant ``identity`` (a contact and a step) gets, by weight, always the same one.

    A hash, not a random draw: the same contact gets the same variant in every enrollment
    and on every retry or replay, and nothing random runs in workflow code.
    """
    if not variants:
        return None
    digest = hashlib.sha256(identity.encode("utf-8")).digest()
    point = int.from_bytes(digest[:8], "big") % sum(v.weight for v in variants)
    for variant in variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    return variants[-1]  # unreachable: the weights add up to more than ``point``


def locale_chain(tag: str | None) -> list[str]:
    """The locale tags to try, most specific first: 'de-AT' -> ['de-at', 'de']."""
    if not tag:
        return []
    parts = tag.replace("_", "-").lower().split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def localized(
    content: ContentPlan, locales: Mapping[str, ContentPlan], tag: str | None
) -> tuple[str | None, ContentPlan]:
    """The version of ``content`` for locale ``tag`` (falling back along its chain, then to
    the template itself), with the tag of the version chosen (None: the template itself)."""
    known = {key.lower(): key for key in locales}
    for candidate in locale_chain(tag):
        if candidate in known:
            return known[candidate], locales[known[candidate]]
    return None, content


def holiday_language(tag: str | None, supported: Iterable[str], fallback: str = "en_US") -> str:
    """The language, among the holiday library's ``supported`` ones for a country, to name
    holidays in for locale ``tag``: 'de-AT' -> 'de', 'pt' -> 'pt_BR'; else ``fallback``."""
    known = {language.lower().replace("_", "-"): language for language in supported}
    chain = locale_chain(tag)
    for candidate in chain:
        if candidate in known:
            return known[candidate]
    if chain:  # the language alone, in whichever region the library writes it
        for key, language in sorted(known.items()):
            if key.split("-")[0] == chain[-1]:
                return language
    return fallback


def _at(minute_of_day: int) -> time:
    return time(minute_of_day // 60, minute_of_day % 60)
