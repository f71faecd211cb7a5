"""``/unsubscribe/{token}``: the link (and ``List-Unsubscribe`` header) in every email.

- GET shows a confirmation page with one button; it changes nothing, because mail
  scanners and link previewers fetch every link in an email.
- POST unsubscribes at once: the button of that page, and RFC 8058 one-click unsubscribe
  (mail clients POST ``List-Unsubscribe=One-Click``, form-encoded, with no cookies).
  The address goes on the suppression list (source "unsubscribe link") and every contact
  with it is marked unsubscribed.
- The token is signed (`engine.signing`) and names one contact of one customer; a forged
  or altered token, or one whose contact does not exist for that customer, gets a 400 page.

No credential is needed beyond the token itself, and the pages load nothing external.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from engine.errors import BadToken
from engine.services import Services
from engine.signing import read_unsubscribe_token
from engine.store import repository

router = APIRouter(tags=["unsubscribe"], include_in_schema=True)
SOURCE = "unsubscribe link"
TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}

_pages = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"], default=True),
    auto_reload=False,
)


def _page(name: str, code: int = status.HTTP_200_OK, **context: object) -> HTMLResponse:
    html = _pages.get_template(name).render(**context)
    return HTMLResponse(html, status_code=code, headers=HEADERS)


def _invalid() -> HTMLResponse:
    return _page("unsubscribe_invalid.html", status.HTTP_400_BAD_REQUEST)


def _contact(svc: Services, token: str) -> tuple[str, str, str, bool] | None:
    """(customer id, customer name, email, already unsubscribed) the token names, or None."""
    try:
        customer_id, email = read_unsubscribe_token(svc.settings.signing_keys(), token)
    except BadToken:
        return None
    with svc.sessions() as session:
        customer = repository.get_customer(session, customer_id)
        if customer is None:
            return None
        contact = next((c for c in customer.contacts if c.email == email.lower()), None)
        if contact is None:
            return None
        done = contact.unsubscribed or repository.is_suppressed(session, contact.email)
        return customer.id, customer.name, contact.email, done


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def confirm(token: str, request: Request) -> HTMLResponse:
    """The confirmation page; changes nothing (link scanners follow every link)."""
    svc: Services = request.app.state.services
    found = _contact(svc, token)
    if found is None:
        return _invalid()
    _, _, email, done = found
    if done:
        return _page("unsubscribe_done.html", email=email, sender=svc.settings.mail_from_name)
    return _page("unsubscribe.html", email=email, sender=svc.settings.mail_from_name)


# Link checkers also send HEAD; it answers like GET and changes nothing either.
router.add_api_route(
    "/unsubscribe/{token}",
    confirm,
    methods=["HEAD"],
    response_class=HTMLResponse,
    include_in_schema=False,
    name="confirm_head",
)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """Unsubscribe now: the page's button, or RFC 8058 one-click from a mail client."""
    svc: Services = request.app.state.services
    found = _contact(svc, token)
    if found is None:
        return _invalid()
    customer_id, _, email, _ = found
    with svc.sessions.begin() as session:
        repository.suppress(
            session, email, f"unsubscribed via link (customer {customer_id})", source=SOURCE
        )
    return _page("unsubscribe_done.html", email=email, sender=svc.settings.mail_from_name)
