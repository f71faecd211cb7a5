"""Unsubscribe links: GET only asks, POST (the button or RFC 8058 one-click) unsubscribes,
and a token works for exactly the contact it was made for."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from engine.services import Services
from engine.signing import Keyring, Purpose, _b64, _unb64, sign, unsubscribe_token
from engine.store import repository
from engine.store.models import Contact, Suppression
from tests.helpers.api import admin_of, champion_of, outbox_rows, seed
from tests.helpers.polling import eventually

ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


def token_for(services: Services, customer_id: str, email: str) -> str:
    return unsubscribe_token(services.settings.signing_keys(), customer_id, email)


def state(services: Services, customer_id: str, email: str) -> tuple[bool, Suppression | None]:
    """(contact marked unsubscribed, suppression row)."""
    with services.sessions() as session:
        customer = repository.get_customer(session, customer_id)
        contact = next(c for c in customer.contacts if c.email == email)
        return contact.unsubscribed, session.get(Suppression, email)


async def test_get_only_asks_and_changes_nothing(
    anon: httpx.AsyncClient, services: Services, customer: str
) -> None:
    address = admin_of(customer)
    url = f"/unsubscribe/{token_for(services, customer, address)}"
    for _ in range(3):  # link scanners, previews, the person reading it twice
        page = await anon.get(url)
        assert page.status_code == 200
        assert (await anon.head(url)).status_code == 200
    assert state(services, customer, address) == (False, None)
    html = page.text
    assert address in html
    assert re.search(r'<form method="post"', html)
    assert "<button" in html
    assert page.headers["cache-control"] == "no-store"
    assert "noindex" in page.headers["x-robots-tag"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in html and "<link" not in html and "src=" not in html


async def test_the_button_unsubscribes(
    anon: httpx.AsyncClient, services: Services, customer: str
) -> None:
    address = admin_of(customer)
    url = f"/unsubscribe/{token_for(services, customer, address)}"
    done = await anon.post(url, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert "unsubscribed" in done.text.lower()
    unsubscribed, suppression = state(services, customer, address)
    assert unsubscribed and suppression is not None
    assert suppression.source == "unsubscribe link"
    # the other contact of the customer is untouched
    assert state(services, customer, champion_of(customer)) == (False, None)
    # the link now says so, and posting again is harmless
    again = await anon.get(url)
    assert again.status_code == 200 and "You are unsubscribed" in again.text
    assert (await anon.post(url)).status_code == 200


async def test_one_click_from_the_list_unsubscribe_header_of_a_sent_email(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, services: Services, customer: str
) -> None:
    """RFC 8058: the mail client POSTs List-Unsubscribe=One-Click to the header's URL."""
    response = await api.post(
        "/api/enrollments", json={"playbook": "probe_open", "customer_id": customer}
    )
    assert response.status_code == 201, response.text
    enrollment = response.json()["id"]
    [row] = await eventually(
        lambda: [r for r in outbox_rows(services, enrollment) if r.status == "sent"]
    )
    assert row.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.fullmatch(r"<http://testserver(/unsubscribe/[^>]+)>", row.headers["List-Unsubscribe"])
    assert url is not None
    assert url[1].split("/")[-1] in (row.html or "")  # the same link is in the body
    done = await anon.post(url[1], content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert done.status_code == 200
    unsubscribed, suppression = state(services, customer, admin_of(customer))
    assert unsubscribed and suppression is not None


def forgeries(services: Services, customer: str, other: str) -> dict[str, str]:
    """Tokens that must not unsubscribe anyone, by how they were made."""
    keys = services.settings.signing_keys()
    good = token_for(services, customer, admin_of(customer))
    version, body, signature = good.split(".")
    moved = _b64(_unb64(body).replace(admin_of(customer).encode(), champion_of(customer).encode()))
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    return {
        "garbage": "not-a-token",
        "empty signature": f"{version}.{body}.",
        "altered signature": f"{version}.{body}.{flipped}",
        "moved to another email": f"{version}.{moved}.{signature}",
        "version removed": f"{body}.{signature}",
        "other version": f"v3.{body}.{signature}",
        "other secret": unsubscribe_token(Keyring("not-our-secret"), customer, admin_of(customer)),
        "other purpose": sign({"c": customer, "e": admin_of(customer)}, keys, Purpose.SESSION),
        "payload not a contact": sign({"c": customer}, keys, Purpose.UNSUBSCRIBE),
        # validly signed, but that address is a contact of another customer
        "contact of another customer": token_for(services, customer, admin_of(other)),
        "unknown customer": token_for(services, "no-such-customer", admin_of(customer)),
        "huge": "A" * 20_000 + "." + "B" * 100,
        "dots": "...",
        "not ascii": f"{version}.{body}\u00e9.{signature}",
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_forged_or_moved_tokens_get_a_400_page_and_change_nothing(
    anon: httpx.AsyncClient, services: Services, customer: str, method: str
) -> None:
    other = seed(services, f"cust-{uuid.uuid4().hex[:10]}")
    for name, token in forgeries(services, customer, other).items():
        response = await anon.request(
            method,
            f"/unsubscribe/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers=ONE_CLICK,
        )
        assert response.status_code == 400, name
        assert "not valid" in response.text, name
        assert response.headers["content-type"].startswith("text/html"), name
    for who, email in (
        (customer, admin_of(customer)),
        (customer, champion_of(customer)),
        (other, admin_of(other)),
    ):
        assert state(services, who, email) == (False, None)


async def test_pages_escape_what_they_show(anon: httpx.AsyncClient, services: Services) -> None:
    customer = f"cust-{uuid.uuid4().hex[:10]}"
    odd = f"o'<i>x</i>.{customer}@example.com"
    with services.sessions.begin() as session:
        repository.upsert_customer(session, repository.CustomerData(id=customer, name="Odd"))
        # The store refuses such an address now; one stored before that is still escaped.
        session.add(Contact(customer_id=customer, email=odd))
    page = await anon.get(f"/unsubscribe/{token_for(services, customer, odd)}")
    assert page.status_code == 200
    assert "<i>x</i>" not in page.text
    assert "&lt;i&gt;x&lt;/i&gt;" in page.text
