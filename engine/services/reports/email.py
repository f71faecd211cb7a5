"""Email performance: per playbook version, step and variant, what became of the emails.

Recipients are the emails that went out (not pending, failed or suppressed; captured
emails count, so a demo without SendGrid has figures). Delivered, opened and clicked count
an email once however many events it had; an open or click implies delivery, a click an
open (images blocked). Rates: delivered and bounced over recipients, the rest over
delivered. An email's playbook version is that of the enrollment run that sent it.

Where a step has two or more variants, a chi-squared test of independence
(`scipy.stats.chi2_contingency`, the standard two-proportion test for two variants) says
whether their click (and open) rates differ by more than chance, with a verdict in words.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from scipy.stats import chi2_contingency
from sqlalchemy import and_, or_, select
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


@dataclass
class _Email:
    customer_id: str | None
    delivered: bool
    opened: bool
    clicked: bool
    bounced: bool
    unsubscribed: bool


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


def build(session: Session, filters: ReportFilters, now: datetime) -> Report:
    report = Report(kind="email", title="Email performance", filters=filters)
    start, end = day_bounds(filters)
    e, run = EmailEngagement, Enrollment
    clicked = e.clicked_at.is_not(None)
    opened = or_(clicked, e.opened_at.is_not(None))
    query = (
        select(
            OutboxMessage.playbook_id,
            OutboxMessage.step_id,
            OutboxMessage.variant,
            OutboxMessage.customer_id,
            run.version,
            or_(opened, e.delivered_at.is_not(None)),
            opened,
            clicked,
            e.bounced_at.is_not(None),
            or_(e.unsubscribed_at.is_not(None), e.spam_reported_at.is_not(None)),
        )
        .outerjoin(e, e.outbox_id == OutboxMessage.id)
        # The enrollment run that sent it (workflow IDs are reused): its version.
        .outerjoin(
            run,
            and_(
                run.workflow_id == OutboxMessage.enrollment_id,
                OutboxMessage.created_at >= run.started_at,
                or_(run.ended_at.is_(None), OutboxMessage.created_at <= run.ended_at),
            ),
        )
        .where(OutboxMessage.status.not_in([str(s) for s in NOT_SENT]))
    )
    if filters.playbook:
        query = query.where(OutboxMessage.playbook_id == filters.playbook)
    if filters.version:
        query = query.where(run.version.startswith(filters.version, autoescape=True))
    if start:
        query = query.where(OutboxMessage.created_at >= start)
    if end:
        query = query.where(OutboxMessage.created_at < end)
    if filters.segment:
        query = query.join(Customer, Customer.id == OutboxMessage.customer_id).where(
            Customer.segment == filters.segment
        )
    rows = session.execute(query).all()
    groups: dict[tuple[str, str, str, str], list[_Email]] = defaultdict(list)
    for playbook, step, variant, customer, version, *flags in rows:
        key = (playbook or "-", version or "?", step or "-", variant or NO_VARIANT)
        groups[key].append(_Email(customer, *(bool(f) for f in flags)))
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
    steps: dict[tuple[str, str, str], dict[str, list[_Email]]] = defaultdict(dict)
    for (playbook, version, step, variant), emails in sorted(groups.items()):
        steps[(playbook, version, step)][variant] = emails
        cell = f"email|{playbook}|{version}|{step}|{variant}"
        sent = len(emails)
        counts = {
            "recipients": emails,
            "delivered": [m for m in emails if m.delivered],
            "opened": [m for m in emails if m.opened],
            "clicked": [m for m in emails if m.clicked],
            "bounced": [m for m in emails if m.bounced],
            "unsubscribed": [m for m in emails if m.unsubscribed],
        }
        delivered = len(counts["delivered"])
        row: dict[str, Cell] = {
            "playbook": Cell(value=playbook),
            "version": Cell(value=version[:12]),
            "step": Cell(value=step if variant == NO_VARIANT else f"{step} / {variant}"),
            "variant": Cell(value=variant),
        }
        for m in MEASURES:
            row[m] = report.runs(f"{cell}|{m}", counts[m])
        for m in MEASURES[1:]:
            whole = sent if m in ("delivered", "bounced") else delivered
            row[f"{m}_rate"] = Cell(value=rate(len(counts[m]), whole))
        table.rows.append(row)
    report.tables.append(table)
    for (playbook, version, step), variants in steps.items():
        if len(variants) < 2:
            continue
        for what, flag in (("Clicks", "clicked"), ("Opens", "opened")):
            data = {
                name: (sum(getattr(m, flag) for m in emails), sum(m.delivered for m in emails))
                for name, emails in variants.items()
            }
            report.notes.append(f"{playbook} {version[:12]} step {step}: {verdict(data, what)}")
    if not rows:
        report.notes.append("No emails match these filters.")
    return report
