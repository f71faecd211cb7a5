"""A made-up health history for the demo: 90 days of daily scores per customer, so the
customer list's trend lines, the customer's chart, the portfolio view and the QBR brief
have something to show on the first page.

Each customer's line wanders within its band and ends at its score today; the accounts that
fall behind (`engine.demo.FALLING_BEHIND`) start 30 points higher and lose most of it in
the last ten days, so one of them crosses into a lower band this week. Each day splits its
score over the scorecard's measures (their points; the made-up days carry no raw values),
and every band crossing is a `HealthChange`, as the recompute would have written. Today's
point is left to the real recompute (the demo's event stream).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from engine.language.health import Scorecard
from engine.store.models import Customer, HealthChange, HealthScore

DAYS = 90
FALL = 30  # how far the falling accounts fall over the history
FALL_DAYS = 10


def _band_range(card: Scorecard, score: int) -> tuple[int, int]:
    """The lowest and highest score of ``score``'s band."""
    starts = sorted(card.bands.values())
    low = max(s for s in starts if s <= score)
    higher = [s for s in starts if s > score]
    return round(low), (round(min(higher)) - 1 if higher else 100)


def _line(rng: random.Random, card: Scorecard, final: int, falling: bool) -> list[int]:
    """Daily scores, oldest first, ending at ``final`` (the day before today); a steady
    account stays in its band (no flapping at a band's edge)."""
    low, high = (0, 100) if falling else _band_range(card, final)
    scores = []
    for i in range(DAYS):
        share = i / (DAYS - 1)
        if falling:
            late = max(0.0, (i - (DAYS - 1 - FALL_DAYS)) / FALL_DAYS)
            level = final + FALL * (1 - (0.2 * share + 0.8 * late))
        else:
            level = final + 8 * (1 - share) * (1 if final < 60 else -1)
        noise = 0 if falling or i == DAYS - 1 else rng.uniform(-2.5, 2.5)
        scores.append(round(min(float(high), max(float(low), level + noise))))
    return scores


def _measures(
    rng: random.Random, card: Scorecard, score: int, offsets: dict[str, float]
) -> dict[str, dict[str, float | None]]:
    """The score split over the measures: each at the score plus its own offset, the
    offsets shifted so the weighted mean is the score again."""
    weight = sum(m.weight for m in card.measures.values())
    mean = sum(offsets[n] * m.weight for n, m in card.measures.items()) / weight
    return {
        name: {
            "value": None,
            "points": round(min(100.0, max(0.0, score + offsets[name] - mean)), 1),
            "weight": m.weight,
        }
        for name, m in card.measures.items()
    }


def seed_health(
    session: Session,
    card: Scorecard,
    now: datetime,
    scores: dict[str, int],
    falling: Iterable[str] = (),
    seed: int = 5,
) -> int:
    """Write the history before today for the customers of ``scores`` (id -> score today),
    set their band; returns the points written. Does nothing for a customer that already
    has history."""
    rng = random.Random(seed)
    falling = set(falling)
    have = set(
        session.scalars(
            select(HealthScore.customer_id)
            .where(HealthScore.customer_id.in_(list(scores)))
            .group_by(HealthScore.customer_id)
            .having(func.count() > 0)
        )
    )
    today = now.date()
    points: list[dict[str, object]] = []
    changes: list[dict[str, object]] = []
    for cid, final in scores.items():
        if cid in have:
            continue
        offsets = {name: rng.uniform(-20, 20) for name in card.measures}
        previous: tuple[int, str] | None = None
        for back, score in zip(
            range(DAYS, 0, -1), _line(rng, card, final, cid in falling), strict=True
        ):
            day = today - timedelta(days=back)
            at = datetime.combine(day, time(6), UTC)
            band = card.band(score)
            points.append(
                {"customer_id": cid, "day": day, "at": at, "score": score, "band": band,
                 "known": 1.0, "measures": _measures(rng, card, score, offsets)}
            )  # fmt: skip
            if previous is not None and previous[1] != band:
                changes.append(
                    {"customer_id": cid, "at": at, "old": previous[0], "new": score,
                     "old_band": previous[1], "new_band": band}
                )  # fmt: skip
            previous = (score, band)
        session.execute(
            update(Customer)
            .where(Customer.id == cid)
            .values(health_score=final, health_band=card.band(final))
        )
    if points:
        session.execute(insert(HealthScore), points)
    if changes:
        session.execute(insert(HealthChange), changes)
    return len(points)
