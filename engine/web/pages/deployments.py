"""Admin pages for changing playbooks: each playbook's deploy history, and the diff between
two of its registered versions (the change, the emails before and after, the running
enrollments it would touch: `engine.services.change`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from engine.errors import StoreError
from engine.language.plan import CompiledPlan
from engine.services import change
from engine.store import deployments
from engine.web.dependencies import ViewerDep, services_of
from engine.web.rendering import error_page, render

router = APIRouter()
ADMINS_ONLY = "Only admins see deployments."


@router.get("/deployments")
def deployed(request: Request, viewer: ViewerDep) -> Response:
    """Every deployed playbook and its current version."""
    if not viewer.is_admin:
        return error_page(request, viewer, 403, ADMINS_ONLY)
    with services_of(request).sessions() as session:
        current = sorted(
            deployments.current_deployments(session).values(), key=lambda d: d.playbook_id
        )
    return render(request, "deployments.html", viewer, current=current)


@router.get("/deployments/{playbook}")
def playbook_history(request: Request, playbook: str, viewer: ViewerDep) -> Response:
    """One playbook's deployments, newest first, each with a link to its diff."""
    if not viewer.is_admin:
        return error_page(request, viewer, 403, ADMINS_ONLY)
    with services_of(request).sessions() as session:
        rows = deployments.history(session, playbook)
    if not rows:
        return error_page(request, viewer, 404, f"{playbook} was never deployed.")
    # Each deployment's diff is against the deployment before it.
    previous = {
        row.id: rows[i + 1].version if i + 1 < len(rows) else None for i, row in enumerate(rows)
    }
    return render(
        request, "deployment_history.html", viewer, playbook=playbook, rows=rows, previous=previous
    )


@router.get("/deployments/{playbook}/diff")
def playbook_diff(
    request: Request, playbook: str, viewer: ViewerDep, old: str = "", new: str = ""
) -> Response:
    """The change from version ``old`` to ``new`` (default: the deployed one), with the
    running enrollments it touches; no forecast here (`playbook diff` runs one)."""
    if not viewer.is_admin:
        return error_page(request, viewer, 403, ADMINS_ONLY)
    with services_of(request).sessions() as session:
        try:
            after = _plan(session, playbook, new or "deployed")
            before, label = change.baseline_plan(session, playbook, old or "deployed")
        except StoreError as exc:
            return error_page(request, viewer, 404, str(exc))
        customer = change.example_customer(session, playbook)
        context = change.store_context(session, customer, playbook) if customer else None
        review = change.review_change(
            session,
            before,
            after,
            against=label,
            context=context,
            example=f"{customer.name} ({customer.id})" if customer else None,
        )
    return render(
        request, "deployment_diff.html", viewer, review=review, duration=change.show_value
    )


def _plan(session: Session, playbook: str, version: str) -> CompiledPlan:
    plan, _ = change.baseline_plan(session, playbook, version)
    return plan
