"""Email performance: per playbook version, step and variant, what became of the emails.

Recipients are the emails that went out (not pending, failed or suppressed; captured
emails count, so a demo without SendGrid has figures). Delivered, opened and clicked count
an email once however many events it had; an open or click implies delivery, a click an
open (images blocked). Rates: delivered and bounced over recipients, the rest over
delivered. An email's playbook version is that of the enrollment run that sent it (the
outbox row's `run_key`, that run's `enrollment_key`).

Where a step has two or more variants, a chi-squared test of independence
(`scipy.stats.chi2_contingency`, the standard two-proportion test for two variants) says
whether their click (and open) rates differ by more than chance, with a verdict in words.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from scipy.stats import chi2_contingency
from sqlalchemy import ColumnElement, Select, case, func, or_, select
from sqlalchemy.orm import Session

from engine.services.reports.model import (
    Cell,
    Chart,
    Column,
    Report,
    ReportFilters,
    Table,
    day_bounds,
    rate,
)
from engine.statuses import OutboxStatus
from engine.store.models import Customer, EmailEngagement, Enrollment, OutboxMessage

NOT_SENT = {
    OutboxStatus.PENDING,
    OutboxStatus.SENDING,
    OutboxStatus.FAILED,
    OutboxStatus.SUPPRESSED,
}
CONFIDENCE = 0.95
MEASURES = ("recipients", "delivered", "opened", "clicked", "bounced", "unsubscribed")
NO_VARIANT = "(none)"


def verdict(variants: dict[str, tuple[int, int]], what: str) -> str:
    """A plain-language verdict on ``variants`` ({name: (successes, trials)}) for ``what``."""
    named = {k: v for k, v in variants.items() if v[1] > 0}
    if len(named) < 2:
        return f"{what}: not enough delivered emails in two variants to compare."
    shares = {k: s / n for k, (s, n) in named.items()}
    best = max(shares, key=lambda k: shares[k])
    listing = ", ".join(f"{k} {shares[k]:.1%} of {named[k][1]}" for k in sorted(named))
    table = [[s, n - s] for s, n in named.values()]
    if all(row[0] == 0 for row in table) or all(row[1] == 0 for row in table):
        return f"{what}: no difference to test yet ({listing})."
    p_value = float(chi2_contingency(table).pvalue)
    confidence = 1 - p_value
    if p_value < 1 - CONFIDENCE:
        return (
            f"{what}: variant {best} does better ({listing}); a difference this large would "
            f"happen by chance with p = {p_value:.3f}, so it is real with "
            f"{confidence:.1%} confidence."
        )
    return (
        f"{what}: no clear winner yet ({listing}); p = {p_value:.3f} ({confidence:.1%} "
        f"confidence, {CONFIDENCE:.0%} needed). Keep the variants running for more data."
    )


E, RUN = EmailEngagement, Enrollment
CLICKED = E.clicked_at.is_not(None)
OPENED = or_(CLICKED, E.opened_at.is_not(None))
# What each measure counts, as SQL over an outbox row and its engagement roll-up.
CONDITIONS: dict[str, ColumnElement[bool]] = {
    "delivered": or_(OPENED, E.delivered_at.is_not(None)),
    "opened": OPENED,
    "clicked": CLICKED,
    "bounced": E.bounced_at.is_not(None),
    "unsubscribed": or_(E.unsubscribed_at.is_not(None), E.spam_reported_at.is_not(None)),
}
# Groups are keyed by playbook, version, step and variant; these stand for a missing one.
MISSING = {"playbook": "-", "version": "?", "step": "-", "variant": NO_VARIANT}


def _emails(columns: Sequence[Any], filters: ReportFilters) -> Select[Any]:
    """``columns`` over the emails that went out within ``filters``, each joined to its
    engagement roll-up and to the enrollment run that sent it (its version)."""
    start, end = day_bounds(filters)
    query = (
        select(*columns)
        .select_from(OutboxMessage)
        .outerjoin(E, E.outbox_id == OutboxMessage.id)
        # The run that sent it, by its key (workflow IDs are reused across runs).
        .outerjoin(RUN, RUN.enrollment_key == OutboxMessage.run_key)
        .where(OutboxMessage.status.not_in([str(s) for s in NOT_SENT]))
    )
    if filters.playbook:
        query = query.where(OutboxMessage.playbook_id == filters.playbook)
    if filters.version:
        query = query.where(RUN.version.startswith(filters.version, autoescape=True))
    if start:
        query = query.where(OutboxMessage.created_at >= start)
    if end:
        query = query.where(OutboxMessage.created_at < end)
    if filters.segment:
        query = query.join(Customer, Customer.id == OutboxMessage.customer_id).where(
            Customer.segment == filters.segment
        )
    return query


GROUP = (OutboxMessage.playbook_id, RUN.version, OutboxMessage.step_id, OutboxMessage.variant)


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def build(session: Session, filters: ReportFilters, now: datetime) -> Report:
    report = Report(kind="email", title="Email performance", filters=filters)
    counted = [func.count(), *(_count(CONDITIONS[m]) for m in MEASURES[1:])]
    query = _emails([*GROUP, *counted], filters).group_by(*GROUP)
    groups: dict[tuple[str, str, str, str], dict[str, int]] = {}
    for playbook, version, step, variant, *numbers in session.execute(query):
        key = (
            playbook or MISSING["playbook"],
            version or MISSING["version"],
            step or MISSING["step"],
            variant or MISSING["variant"],
        )
        groups[key] = dict(zip(MEASURES, (int(n) for n in numbers), strict=True))
    table = Table(
        key="steps",
        title="Per step and variant",
        columns=[
            Column(key="playbook", label="Playbook", kind="text"),
            Column(key="version", label="Version", kind="text"),
            Column(key="step", label="Step", kind="text"),
            Column(key="variant", label="Variant", kind="text"),
            *(Column(key=m, label=m.title()) for m in MEASURES),
            *(Column(key=f"{m}_rate", label=f"{m.title()} %", kind="rate") for m in MEASURES[1:]),
        ],
        chart=Chart(
            type="bar",
            label="step",
            series=["opened_rate", "clicked_rate"],
            title="Open and click rates per step and variant",
        ),
    )
    steps: dict[tuple[str, str, str], dict[str, dict[str, int]]] = defaultdict(dict)
    for (playbook, version, step, variant), counts in sorted(groups.items()):
        steps[(playbook, version, step)][variant] = counts
        cell = f"email|{playbook}|{version}|{step}|{variant}"
        sent, delivered = counts["recipients"], counts["delivered"]
        row: dict[str, Cell] = {
            "playbook": Cell(value=playbook),
            "version": Cell(value=version[:12]),
            "step": Cell(value=step if variant == NO_VARIANT else f"{step} / {variant}"),
            "variant": Cell(value=variant),
        }
        for m in MEASURES:
            row[m] = Cell(value=counts[m], cell=f"{cell}|{m}")
        for m in MEASURES[1:]:
            whole = sent if m in ("delivered", "bounced") else delivered
            row[f"{m}_rate"] = Cell(value=rate(counts[m], whole))
        table.rows.append(row)
    report.tables.append(table)
    for (playbook, version, step), variants in steps.items():
        if len(variants) < 2:
            continue
        for what, measure in (("Clicks", "clicked"), ("Opens", "opened")):
            data = {name: (c[measure], c["delivered"]) for name, c in variants.items()}
            report.notes.append(f"{playbook} {version[:12]} step {step}: {verdict(data, what)}")
    if not groups:
        report.notes.append("No emails match these filters.")
    return report


def customers(session: Session, filters: ReportFilters, cell: str) -> list[str] | None:
    """The customers behind one figure (``email|playbook|version|step|variant|measure``),
    or None if the report has no such figure."""
    parts = cell.split("|")
    if len(parts) != 6 or parts[0] != "email" or parts[5] not in MEASURES:
        return None
    *keys, measure = parts[1:]
    query = _emails([OutboxMessage.customer_id], filters).where(
        OutboxMessage.customer_id.is_not(None)
    )
    for column, name, value in zip(GROUP, MISSING, keys, strict=True):
        query = query.where(column.is_(None) if value == MISSING[name] else column == value)
    if measure != "recipients":
        query = query.where(CONDITIONS[measure])
    return sorted(set(session.scalars(query.distinct())))
