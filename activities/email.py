"""The `send_email` activity: render an email step and send it to each recipient at most once.

Every recipient gets an outbox row keyed by enrollment, step, iteration and address, written
before the provider is called: a retry finds it and reports it instead of sending again.
Unsubscribed and suppressed addresses are recorded and skipped. An email to one of the
customer's contacts carries a signed one-click unsubscribe link (``List-Unsubscribe`` and
``unsubscribe_url``); one to the team (owner, manager, a role or a fixed address that is no
contact of the customer) carries neither, since the unsubscribe endpoint only knows contacts.

For enrollments started since respectful delivery (`SendEmailInput.per_recipient`), each
recipient gets the send window in their own zone and calendar (public holidays of their
country, the company's days off), and the delivery policy's caps (docs/delivery.md): an email
that may not go yet is recorded `postponed` with its reason and `not_before`, and the
workflow calls again then; one over a cap with `on_cap: skip` is recorded `skipped`.
"""

from __future__ import annotations

import functools
import time
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, TypedDict

import holidays
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import StoreActivities, require_customer
from activities.heartbeat import heartbeating
from activities.mailer import CaptureMailer, Mailer, OutgoingEmail
from engine.addresses import one_line
from engine.errors import (
    ErrorType,
    ExpressionError,
    ProviderRejected,
    ProviderRetryable,
    ProviderUnconfirmed,
    TemplateRenderError,
)
from engine.language.compliance import DEFAULT_POSTAL_ADDRESS, compliant
from engine.language.delivery import (
    DayOff,
    cap_reached,
    day_start,
    describe_cap,
    first_day_under_caps,
    holiday_language,
    local_day,
    localized,
    next_send_moment,
    pick_variant,
)
from engine.language.expressions import evaluate
from engine.language.formatting import DEFAULT_LOCALE
from engine.language.plan import ContentPlan, DeliveryPlan, EmailPlan
from engine.language.sendwindow import local_datetime
from engine.language.templates import html_to_text, render, render_text
from engine.messages import ActivityName, EmailDelivery, SendEmailInput, SendEmailResult
from engine.signing import Keyring, unsubscribe_token
from engine.statuses import OutboxStatus
from engine.store import repository
from engine.store.context import (
    contact_dict,
    customer_snapshot,
    evaluation_context,
    member_with_role,
    team_member,
)
from engine.store.models import Customer, OutboxMessage

CONTENT = {"subject", "preheader", "html_template", "text_template"}
# Seconds between tries to record an accepted email as 'sent' while the database is away.
SENT_WRITE_PAUSES = (1, 2, 4, 8, 10, 10, 10)
NO_PROVIDER = "no mail provider configured"
# A row in any status but these two is final: a retry reports it and sends nothing.
IN_FLIGHT = {OutboxStatus.PENDING, OutboxStatus.SENDING}
# A postponed email is decided again when the workflow calls back at its `not_before`.
DONE = frozenset(OutboxStatus) - IN_FLIGHT - {OutboxStatus.POSTPONED}
WINDOW_REASON = "outside the send window"  # workflows/interpreter.py words the wait after it
LOCAL_TIME_REASON = "waiting for the recipient's local time"  # ...and this one too
# A lower-priority email yields this long to a higher-priority one due for the same slot...
PRIORITY_YIELD = timedelta(minutes=1)
# ...unless that one has been due this long (its enrollment ended or paused): then it goes.
STALE_CLAIM = timedelta(minutes=15)


class Recipient(NamedTuple):
    """One address an email step goes to, with what its templates see."""

    person: dict[str, Any]  # the template's ``contact``
    context: dict[str, Any]
    # One of the customer's contacts: gets unsubscribe headers and link (the team does not).
    customer_contact: bool
    # The recipient's zone, country and locale (the contact's own, else the customer's).
    timezone: str | None = None
    country: str | None = None
    locale: str | None = None


class EmailOptions(TypedDict, total=False):
    """`EmailActivities`' keyword options, for whoever builds it on a caller's behalf."""

    signing_secret: str
    public_base_url: str
    default_from_email: str
    default_from_name: str | None
    postal_address: str


class EmailActivities(StoreActivities):
    """Email steps, sent through ``mailer`` (captured in the outbox when there is none)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        mailer: Mailer | None = None,
        *,
        signing_secret: str = "dev-secret",
        public_base_url: str = "http://localhost:8000",
        default_from_email: str = "success@example.com",
        default_from_name: str | None = "Customer Success",
        postal_address: str = DEFAULT_POSTAL_ADDRESS,
    ) -> None:
        super().__init__(sessions)
        self.mailer = mailer or CaptureMailer()
        self.signing_secret = signing_secret
        self.public_base_url = public_base_url.rstrip("/")
        self.default_from_email = default_from_email
        self.default_from_name = default_from_name
        self.postal_address = postal_address

    @activity.defn(name=ActivityName.SEND_EMAIL)
    @heartbeating
    def send_email(self, input: SendEmailInput) -> SendEmailResult:
        """Render and send one email step to its recipients, at most once each.

        The outbox row is written before the provider is called and marked 'sending'; a
        retry that finds 'sending' cannot know whether the provider accepted it, so it
        marks the row 'unconfirmed' instead of sending a second copy.
        """
        with self.sessions() as session:
            customer = require_customer(session, input.customer_id)
            snapshot = customer_snapshot(session, customer)
            recipients = self._recipients(session, customer, snapshot, input)
        result = SendEmailResult()
        for recipient in recipients:
            result.deliveries.append(self._deliver(input, recipient))
        return result

    def _recipients(
        self, session: Session, customer: Customer, snapshot: dict[str, Any], input: SendEmailInput
    ) -> list[Recipient]:
        email = input.email
        base = evaluation_context(
            snapshot, input.now, input.playbook, input.event, step=input.step_id
        )
        people: list[dict[str, Any]] = []
        contacts = {c.email.lower(): c for c in customer.contacts}
        if email.recipient == "contacts":
            for contact in customer.contacts:
                data = contact_dict(contact)
                if email.to:
                    try:
                        if not evaluate(email.to, {**base, "contact": data}):
                            continue
                    except ExpressionError as exc:
                        activity.logger.warning("to: expression failed: %s", exc)
                        continue
                people.append(data)
        else:
            address = self._internal_address(session, customer, email)
            if address and address.lower() in contacts:
                # A fixed address that is one of this customer's contacts is that contact.
                people.append(contact_dict(contacts[address.lower()]))
            elif address:
                member = team_member(session, address)
                name = member.name if member else address
                people.append(
                    {
                        "email": address,
                        "first_name": name.split(" ")[0],
                        "last_name": "",
                        "name": name,
                        "role": "team",
                        "unsubscribed": False,
                    }
                )
        return [
            Recipient(
                p,
                {**base, "contact": p},
                p["email"].lower() in contacts,
                p.get("timezone") or customer.timezone,
                p.get("country") or customer.country,
                p.get("locale") or customer.locale,
            )
            for p in people
        ]

    @staticmethod
    def _internal_address(session: Session, customer: Customer, email: EmailPlan) -> str | None:
        if email.recipient == "owner":
            return customer.owner_email
        if email.recipient == "manager":
            owner = team_member(session, customer.owner_email)
            return owner.manager_email if owner else None
        if email.recipient == "role":
            member = member_with_role(session, email.recipient_value or "")
            return member.email if member else None
        return email.recipient_value

    def _deliver(self, input: SendEmailInput, recipient: Recipient) -> EmailDelivery:
        contact = recipient.person
        address = contact["email"]
        # The enrollment's own key: its workflow ID repeats when the customer is enrolled
        # again (no key: an enrollment started before keys, which keeps its old keys).
        enrollment = input.enrollment_key or input.enrollment_id
        key = f"{enrollment}:{input.step_id}:{input.iteration}:{address.lower()}"
        variant = pick_variant(
            input.email.variants,
            f"{input.customer_id}:{address.lower()}:{input.playbook}:{input.step_id}",
        )
        locale, content = localized(
            ContentPlan.model_validate((variant or input.email).model_dump(include=CONTENT)),
            variant.locales if variant else input.email.locales,
            recipient.locale,
        )
        common: dict[str, Any] = {
            "variant": variant.name if variant else None,
            "enrollment_id": input.enrollment_id,
            "run_key": enrollment,
            "playbook_id": input.playbook,
            "step_id": input.step_id,
            "customer_id": input.customer_id,
            "to_name": _header_text(contact.get("name")),
        }
        with self.sessions.begin() as session:
            row = repository.get_outbox(session, key)
            if row is not None and row.status in DONE:
                return _delivery(
                    address,
                    OutboxStatus(row.status),
                    row.subject,
                    row.reason,
                    row.provider_message_id,
                )
            if row is not None and row.status == OutboxStatus.SENDING:
                reason = (
                    "the previous attempt stopped after handing the email to the "
                    "provider; not sent again to avoid a duplicate"
                )
                repository.update_outbox_status(
                    session, key, OutboxStatus.UNCONFIRMED, reason=reason
                )
                return _delivery(address, OutboxStatus.UNCONFIRMED, row.subject, reason)
            suppressed = self._suppression_reason(session, contact)
        # The team gets no unsubscribe link: empty, so a layout shared with customer emails
        # renders (and hides the link behind `{% if unsubscribe_url %}`).
        unsubscribe_url = ""
        headers: dict[str, str] = {}
        if recipient.customer_contact:
            token = unsubscribe_token(Keyring(self.signing_secret), input.customer_id, address)
            unsubscribe_url = f"{self.public_base_url}/unsubscribe/{token}"
            headers = {
                "List-Unsubscribe": f"<{unsubscribe_url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        context = {
            **recipient.context,
            "unsubscribe_url": unsubscribe_url,
            "locale": locale or recipient.locale or DEFAULT_LOCALE,
        }
        if suppressed:
            # A row postponed earlier (the contact unsubscribed while it waited) is rewritten,
            # so it ends `suppressed` with why it waited and why it never went.
            unsent = _Content(_safe_subject(input.email, context), None, None, {})
            with self.sessions.begin() as session:
                _write(session, key, recipient, unsent, common, OutboxStatus.SUPPRESSED, suppressed)
            return _delivery(address, OutboxStatus.SUPPRESSED, None, suppressed)
        try:
            subject = one_line(render_text(content.subject, context))
            context["preheader"] = (
                render_text(content.preheader, context) if content.preheader else ""
            )
            html = render(input.templates, content.html_template, context)
            text = (
                render(input.templates, content.text_template, context)
                if content.text_template
                else html_to_text(html)
            )
            if recipient.customer_contact:
                html, text = compliant(html, text, unsubscribe_url, self.postal_address)
        except TemplateRenderError as exc:
            reason = f"template failed to render: {exc}"
            unsent = _Content(input.email.subject, None, None, {})
            with self.sessions.begin() as session:  # a postponed row, too, ends `failed`
                _write(session, key, recipient, unsent, common, OutboxStatus.FAILED, reason)
            return _delivery(address, OutboxStatus.FAILED, None, reason)
        sender_email = input.sender.email if input.sender else self.default_from_email
        sender_name = _header_text(input.sender.name if input.sender else self.default_from_name)
        # Without a provider the email is captured in the same transaction that writes it:
        # there is no send that could fail in between.
        capture = isinstance(self.mailer, CaptureMailer)
        rendered = _Content(subject, html, text, headers)
        budgeted = self._budgeted(input, recipient)
        with self.sessions.begin() as session:
            held = self._apply_policy(session, input, recipient, key, rendered, common)
            if held is not None:
                return held
            row, created = repository.insert_outbox(
                session,
                key,
                address,
                subject,
                html=html,
                text=text,
                headers=headers,
                status=OutboxStatus.CAPTURED if capture else OutboxStatus.PENDING,
                reason=NO_PROVIDER if capture else None,
                budget_at=input.now if budgeted else None,
                **common,
            )
            if not created:  # a pending or postponed row left by an earlier attempt
                _rewrite(
                    row,
                    rendered,
                    OutboxStatus.CAPTURED if capture else OutboxStatus.PENDING,
                    NO_PROVIDER if capture else None,
                )
                row.budget_at = input.now if budgeted else None
        if capture:
            return _delivery(address, OutboxStatus.CAPTURED, subject)
        with self.sessions.begin() as session:
            repository.update_outbox_status(session, key, OutboxStatus.SENDING, count_attempt=True)
        outgoing = OutgoingEmail(
            to_email=address,
            to_name=common["to_name"],
            from_email=sender_email,
            from_name=sender_name,
            subject=subject,
            html=html,
            text=text,
            reply_to=input.reply_to,
            headers=headers,
            custom_args={
                "enrollment_id": input.enrollment_id,
                "step_id": input.step_id,
                "outbox_key": key,
                "playbook": input.playbook,
            },
            categories=[input.playbook],
        )
        try:
            message_id = self.mailer.send(outgoing)
        except ProviderRetryable as exc:
            with self.sessions.begin() as session:
                repository.update_outbox_status(session, key, OutboxStatus.PENDING, reason=str(exc))
            delay = timedelta(seconds=exc.delay_seconds) if exc.delay_seconds else None
            raise ApplicationError(
                str(exc), type=ErrorType.PROVIDER_RETRYABLE, next_retry_delay=delay
            ) from None
        except ProviderRejected as exc:
            with self.sessions.begin() as session:
                repository.update_outbox_status(session, key, OutboxStatus.FAILED, reason=str(exc))
            return _delivery(address, OutboxStatus.FAILED, subject, str(exc))
        except ProviderUnconfirmed as exc:
            # The request went out and its answer was lost (client timeout): recorded as
            # such now, with the cause, rather than by the retry, and never sent again.
            reason = f"{exc}; not sent again to avoid a duplicate"
            with self.sessions.begin() as session:
                repository.update_outbox_status(
                    session, key, OutboxStatus.UNCONFIRMED, reason=reason
                )
            return _delivery(address, OutboxStatus.UNCONFIRMED, subject, reason)
        self._record_sent(key, message_id)
        return _delivery(address, OutboxStatus.SENT, subject, None, message_id)

    def _record_sent(self, key: str, message_id: str | None) -> None:
        """Write 'sent', retrying while the database is away: SendGrid accepted the email,
        and an attempt that gave up here would leave the row 'sending' for the activity's
        retry to call 'unconfirmed' (reliability suite: a PostgreSQL outage mid-send)."""
        for pause in (*SENT_WRITE_PAUSES, None):
            try:
                with self.sessions.begin() as session:
                    repository.update_outbox_status(
                        session,
                        key,
                        OutboxStatus.SENT,
                        provider_message_id=message_id,
                        sent_at=datetime.now().astimezone(),
                    )
                return
            except DBAPIError:
                if pause is None:
                    raise
                time.sleep(pause)

    # -- respectful delivery ---------------------------------------------------------------
    @staticmethod
    def _budgeted(input: SendEmailInput, recipient: Recipient) -> bool:
        """Whether this email counts against the contact's budget (customer mail, not exempt)."""
        delivery = input.delivery
        return (
            input.per_recipient
            and delivery is not None
            and bool(delivery.caps)
            and recipient.customer_contact
            and not delivery.for_step(input.step_id).exempt
        )

    def _apply_policy(
        self,
        session: Session,
        input: SendEmailInput,
        recipient: Recipient,
        key: str,
        content: _Content,
        common: dict[str, Any],
    ) -> EmailDelivery | None:
        """Postpone or skip the email under the recipient's window, days off and caps.

        Returns None when it may go now (the caller writes and sends it in this same
        transaction, so the slot it takes is charged before the contact's lock is released).
        """
        if not input.per_recipient:
            return None
        delivery = input.delivery
        if input.local_at is not None:  # after `wait: until ... at:`: their own local time
            own = local_datetime(input.local_at.day, input.local_at.minute, recipient.timezone)
            if own > input.now:
                at = f"{input.local_at.minute // 60:02d}:{input.local_at.minute % 60:02d}"
                why = f"{LOCAL_TIME_REASON}, {at} in {recipient.timezone or 'UTC'}"
                return _hold(session, key, recipient, content, common, own, why, None)
        day_off = _days_off(delivery, recipient.country, recipient.locale)
        moment = next_send_moment(input.now, recipient.timezone, input.email.window, day_off)
        if moment.at > input.now:
            why = "; ".join(moment.moves) or f"{WINDOW_REASON} ({recipient.timezone})"
            return _hold(session, key, recipient, content, common, moment.at, why, None)
        if delivery is None or not self._budgeted(input, recipient):
            return None
        rule = delivery.for_step(input.step_id)
        address = recipient.person["email"]
        zone_name = recipient.timezone
        repository.lock_contact_budget(session, address)  # before reading any count
        today = local_day(input.now, zone_name)
        longest = max(cap.days for cap in delivery.caps)
        since = day_start(today - timedelta(days=longest - 1), zone_name)
        entries = repository.contact_budget(session, address, since)
        sent = [
            local_day(e.budget_at, zone_name)
            for e in entries
            if e.budget_at is not None and e.budget_at >= since
        ]
        cap = cap_reached(delivery.caps, today, sent)
        if cap is None:
            ahead = _waiting_ahead(entries, rule.priority, input.now, key)
            if ahead is None:
                return None
            why = (
                f"waiting: {ahead.playbook_id}.{ahead.step_id} (priority {ahead.priority}) "
                f"goes first"
            )
            until = input.now + PRIORITY_YIELD
            return _hold(session, key, recipient, content, common, until, why, rule.priority)
        limit = f"cap of {describe_cap(cap)} reached for {address}"
        if rule.on_cap == "skip":
            _write(session, key, recipient, content, common, OutboxStatus.SKIPPED, limit)
            return _delivery(address, OutboxStatus.SKIPPED, content.subject, f"skipped: {limit}")
        day = first_day_under_caps(delivery.caps, today, sent)
        opens = next_send_moment(day_start(day, zone_name), zone_name, input.email.window, day_off)
        why = "; ".join([f"deferred: {limit}", *opens.moves])
        return _hold(session, key, recipient, content, common, opens.at, why, rule.priority)

    @staticmethod
    def _suppression_reason(session: Session, contact: dict[str, Any]) -> str | None:
        if contact.get("unsubscribed"):
            return "contact unsubscribed"
        if repository.is_suppressed(session, contact["email"]):
            return "address is on the suppression list (bounce, spam report or unsubscribe)"
        return None


class _Content(NamedTuple):
    """A rendered email, as the outbox row keeps it."""

    subject: str
    html: str | None
    text: str | None
    headers: dict[str, str]


def _write(
    session: Session,
    key: str,
    recipient: Recipient,
    content: _Content,
    common: dict[str, Any],
    status: OutboxStatus,
    reason: str,
) -> OutboxMessage:
    """Insert the outbox row, or rewrite the postponed row an earlier call left."""
    row, created = repository.insert_outbox(
        session,
        key,
        recipient.person["email"],
        content.subject,
        html=content.html,
        text=content.text,
        headers=content.headers,
        status=status,
        reason=reason,
        **common,
    )
    if not created:
        _rewrite(row, content, status, reason)
    return row


def _rewrite(
    row: OutboxMessage | None, content: _Content, status: OutboxStatus, reason: str | None
) -> None:
    assert row is not None
    was_postponed = row.status == OutboxStatus.POSTPONED
    row.subject, row.html, row.text = content.subject, content.html, content.text
    row.headers = dict(content.headers)
    row.status = status.value
    if was_postponed and row.reason and status != OutboxStatus.POSTPONED:
        # An email that waited and now goes keeps why it waited.
        row.reason = f"{row.reason}; then {reason}" if reason else row.reason
    else:
        row.reason = reason


def _hold(
    session: Session,
    key: str,
    recipient: Recipient,
    content: _Content,
    common: dict[str, Any],
    until: datetime,
    why: str,
    priority: int | None,
) -> EmailDelivery:
    """Record the email as postponed until ``until`` because of ``why``."""
    row = _write(session, key, recipient, content, common, OutboxStatus.POSTPONED, why)
    row.not_before, row.priority = until, priority
    return EmailDelivery(
        contact=recipient.person["email"],
        status=OutboxStatus.POSTPONED,
        subject=content.subject,
        reason=why,
        not_before=until,
    )


def _waiting_ahead(
    entries: list[repository.BudgetEntry], priority: int, now: datetime, key: str
) -> repository.BudgetEntry | None:
    """A postponed email of higher priority to the same contact, due now and not stale."""
    due = [
        e
        for e in entries
        if e.status == OutboxStatus.POSTPONED
        and e.idempotency_key != key
        and (e.priority or 0) > priority
        and e.not_before is not None
        and now - STALE_CLAIM < e.not_before <= now
    ]
    return max(due, key=lambda e: e.priority or 0, default=None)


@functools.lru_cache(maxsize=256)
def _public_holidays(country: str, locale: str | None) -> holidays.HolidayBase | None:
    """A country's public holidays, named in ``locale`` where the library can (else English).

    Cached: the library builds its calendar per year on first use, which a send should not
    repeat for every recipient.
    """
    try:
        calendar = holidays.country_holidays(country)
    except NotImplementedError:  # a country the library does not know
        return None
    language = holiday_language(locale, calendar.supported_languages)
    return holidays.country_holidays(country, language=language)


def _days_off(
    delivery: DeliveryPlan | None, country: str | None, locale: str | None = None
) -> DayOff:
    """The recipient's days off: the company's, and their country's public holidays (named
    in the recipient's locale where the holidays library knows it)."""
    company = dict(delivery.company_days) if delivery else {}
    public = None
    if delivery is not None and delivery.holidays and country:
        public = _public_holidays(country.upper(), locale)

    def day_off(day: date) -> str | None:
        name = company.get(day.isoformat())
        if name is None and public is not None:
            name = public.get(day)
        return name

    return day_off


def _delivery(
    contact: str,
    status: OutboxStatus,
    subject: str | None,
    reason: str | None = None,
    message_id: str | None = None,
) -> EmailDelivery:
    return EmailDelivery(
        contact=contact,
        status=status,
        subject=subject,
        reason=reason,
        message_id=message_id,
    )


def _header_text(value: str | None) -> str | None:
    """A name for a ``To:`` or ``From:`` header: one line, whatever the store held."""
    return None if value is None else one_line(value)


def _safe_subject(email: EmailPlan, context: dict[str, Any]) -> str:
    try:
        return one_line(render_text(email.subject, context))
    except TemplateRenderError:
        return one_line(email.subject)
