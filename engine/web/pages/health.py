"""The portfolio's health (``/health``): customers per band in each segment, and who moved
band in the last seven days, each figure linking to the customers it counts."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine.store import health_trends
from engine.store.models import utcnow
from engine.web.dependencies import ViewerDep, services_of
from engine.web.pages.customers import NO_SEGMENT, band_order, bands_of
from engine.web.rendering import render

router = APIRouter()
MOVED_WITHIN = timedelta(days=7)


@router.get("/health")
def health_page(request: Request, viewer: ViewerDep) -> Response:
    card = services_of(request).project.scorecard
    since = utcnow() - MOVED_WITHIN
    with services_of(request).sessions() as session:
        counts = health_trends.band_counts(session, bands_of(card))
        moves = health_trends.band_moves_since(session, since)
    order = band_order(card)
    rank = {name: i for i, name in enumerate(order)}
    segments = sorted(counts, key=lambda s: (s is None, s or ""))
    totals = {b: sum(counts[s].get(b, 0) for s in segments) for b in order}
    # Worse first: a move down the bands (to a lower start) before a move up.
    worse = [m for m in moves if rank.get(m.new_band, 0) < rank.get(m.old_band or "", len(order))]
    better = [m for m in moves if m not in worse]
    return render(
        request,
        "health.html",
        viewer,
        bands=order,
        rows=[(s if s is not None else NO_SEGMENT, counts[s]) for s in segments],
        totals=totals,
        worse=worse,
        better=better,
        days=MOVED_WITHIN.days,
        scorecard=card is not None,
    )
