"""The web UI's routes, one module per screen; `router` includes them all.

- `static`: the stylesheet.
- `login`: logging in and out.
- `inbox`: the CSM inbox (and ``/``, which leads to it).
- `task`: one task's page, completing it and handing it on.
- `enrollments`: playbook funnels and the latest enrollments.
- `customers`: the customer list and one customer's page.
- `health`: the portfolio's health: customers per band and segment, who moved band.
- `outbox`: the emails sent, and one email as sent.
- `deployments`: (admins) each playbook's deploy history and the diff of a deploy.
- `reports`: funnel, time to value, email, tasks and portfolio, with charts and CSV.

Server-rendered Jinja2 pages (autoescaped, see `engine.web.rendering`), plain CSS, no
JavaScript. Every page needs a login (else a redirect to /login); every form that changes
something carries the session's CSRF token. Who sees which tasks is decided by
`engine.web.security.Viewer`; enrollments, customers and the outbox are visible to every
logged-in team member (see docs/ui.md).
"""

from __future__ import annotations

from fastapi import APIRouter

from engine.web.pages import (
    customers,
    deployments,
    enrollments,
    health,
    inbox,
    login,
    outbox,
    reports,
    static,
    task,
)

router = APIRouter(include_in_schema=False)
router.include_router(static.router)
router.include_router(login.router)
router.include_router(inbox.router)
router.include_router(task.router)
router.include_router(enrollments.router)
router.include_router(customers.router)
router.include_router(health.router)
router.include_router(outbox.router)
router.include_router(reports.router)
router.include_router(deployments.router)
