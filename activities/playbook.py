"""The activities of `PlaybookWorkflow`: every side effect and every read of customer data.

Temporal runs activities at least once, so each one is idempotent, keyed by enrollment,
step and iteration: a retry finds the outbox row, the task or the applied update it made
before and does not repeat it.
"""

from __future__ import annotations

import contextvars
import functools
import json
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.mailer import CaptureMailer, Mailer, OutgoingEmail
from engine.errors import (
    ErrorType,
    ExpressionError,
    ProviderRejected,
    ProviderRetryable,
    ProviderUnconfirmed,
    TemplateRenderError,
)
from engine.language.expressions import evaluate
from engine.language.milestones import matches
from engine.language.plan import EmailPlan, MilestonePlan
from engine.language.templates import html_to_text, render, render_text
from engine.messages import (
    ActivityName,
    CheckMilestoneInput,
    CreateTaskInput,
    DecideInput,
    DecideResult,
    EmailDelivery,
    EnrollCustomerInput,
    EscalateTaskInput,
    RecordEnrollmentInput,
    SendEmailInput,
    SendEmailResult,
    TaskRef,
    UpdateCustomerInput,
)
from engine.signing import unsubscribe_token
from engine.statuses import EnrollmentStatus, EventStatus, OutboxStatus, TaskStatus
from engine.store import repository
from engine.store.context import (
    contact_dict,
    customer_snapshot,
    decide,
    evaluation_context,
    member_with_role,
    team_member,
)
from engine.store.models import Customer, Event, Task

# Seconds between tries to record an accepted email as 'sent' while the database is away.
SENT_WRITE_PAUSES = (1, 2, 4, 8, 10, 10, 10)
NO_PROVIDER = "no mail provider configured"
# A row in any status but these two is final: a retry reports it and sends nothing.
IN_FLIGHT = {OutboxStatus.PENDING, OutboxStatus.SENDING}
DONE = frozenset(OutboxStatus) - IN_FLIGHT

Enroller = Callable[[str, str, str], Awaitable[str]]

# Effect activities heartbeat from a side thread every HEARTBEAT_EVERY seconds; the workflow
# gives them a heartbeat timeout of a few times that. (Reliability suite: a SIGKILLed worker
# sends no failure, so without heartbeats its in-flight emails and tasks were retried only
# when their start-to-close timeout of 1-2 minutes ran out; now within seconds.)
HEARTBEAT_EVERY = 2.0
_F = TypeVar("_F", bound=Callable[..., Any])


def _heartbeating(func: _F) -> _F:
    """Run a sync activity while a side thread heartbeats, however long a call blocks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not activity.in_activity():
            return func(*args, **kwargs)
        stop = threading.Event()
        context = contextvars.copy_context()  # the activity context, for activity.heartbeat

        def beat() -> None:
            while not stop.wait(HEARTBEAT_EVERY):
                try:
                    context.run(activity.heartbeat)
                except Exception:  # the activity is ending; nothing left to keep alive
                    return

        thread = threading.Thread(target=beat, name="activity-heartbeat", daemon=True)
        thread.start()
        try:
            return func(*args, **kwargs)
        finally:
            stop.set()
            thread.join()

    return wrapper  # type: ignore[return-value]


class PlaybookActivities:
    """Activities bound to a store, a mail provider and (for `enroll`) an enroller."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        mailer: Mailer | None = None,
        *,
        signing_secret: str = "dev-secret",
        public_base_url: str = "http://localhost:8000",
        default_from_email: str = "success@example.com",
        default_from_name: str | None = "Customer Success",
        enroller: Enroller | None = None,
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer or CaptureMailer()
        self.signing_secret = signing_secret
        self.public_base_url = public_base_url.rstrip("/")
        self.default_from_email = default_from_email
        self.default_from_name = default_from_name
        self.enroller = enroller

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for `Worker(activities=...)`."""
        return [
            self.decide,
            self.check_milestone,
            self.record_enrollment,
            self.send_email,
            self.create_task,
            self.escalate_task,
            self.update_customer,
            self.enroll_customer,
        ]

    # -- reads ---------------------------------------------------------------------------
    def _customer(self, session: Session, customer_id: str) -> Customer | None:
        return repository.get_customer(session, customer_id)

    @activity.defn(name=ActivityName.DECIDE)
    def decide(self, input: DecideInput) -> DecideResult:
        """Evaluate expressions over the customer's current data, at workflow time."""
        with self.sessions() as session:
            found, timezone, values, errors = decide(
                session,
                input.customer_id,
                input.playbook,
                input.expressions,
                input.now,
                input.event,
            )
        return DecideResult(found=found, timezone=timezone, values=values, errors=errors)

    @activity.defn(name=ActivityName.CHECK_MILESTONE)
    def check_milestone(self, input: CheckMilestoneInput) -> bool:
        """Whether the customer reached a milestone since ``since`` (from stored events)."""
        milestone = MilestonePlan.model_validate({**input.definition, "name": input.milestone})
        names = [n for n in (milestone.event, milestone.metric) if n]
        with self.sessions() as session:
            query = select(Event).where(
                Event.customer_id == input.customer_id, Event.name.in_(names)
            )
            if input.since is not None:
                query = query.where(Event.at >= input.since)
            count = sum(
                1
                for e in session.scalars(query)
                if matches(milestone, e.name, dict(e.properties or {}))
            )
        needed = milestone.count if milestone.event else 1
        return count >= needed

    @activity.defn(name=ActivityName.RECORD_ENROLLMENT)
    def record_enrollment(self, input: RecordEnrollmentInput) -> None:
        """Keep the store's enrollment projection (for reports and the UI) up to date."""
        ended = input.status != EnrollmentStatus.RUNNING
        with self.sessions.begin() as session:
            repository.upsert_enrollment(
                session,
                workflow_id=input.enrollment_id,
                playbook_id=input.playbook,
                version=input.version,
                customer_id=input.customer_id,
                status=input.status,
                cycle_key=input.cycle_key,
                # An ended enrollment stands nowhere: "end" rather than its last wait step.
                current_step="end" if ended else input.current_step,
                outcome=input.outcome,
                ended_at=input.at if ended else None,
            )
            if input.close_open_tasks:
                open_tasks = session.scalars(
                    select(Task).where(
                        Task.enrollment_id == input.enrollment_id, Task.status == TaskStatus.OPEN
                    )
                )
                for task in open_tasks:
                    repository.cancel_task(
                        session, task.id, note=f"enrollment ended: {input.outcome}"
                    )

    # -- email ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.SEND_EMAIL)
    @_heartbeating
    def send_email(self, input: SendEmailInput) -> SendEmailResult:
        """Render and send one email step to its recipients, at most once each.

        The outbox row is written before the provider is called and marked 'sending'; a
        retry that finds 'sending' cannot know whether the provider accepted it, so it
        marks the row 'unconfirmed' instead of sending a second copy.
        """
        with self.sessions() as session:
            customer = self._customer(session, input.customer_id)
            if customer is None:
                raise ApplicationError(
                    f"customer {input.customer_id} not found",
                    type=ErrorType.CUSTOMER_NOT_FOUND,
                    non_retryable=True,
                )
            snapshot = customer_snapshot(session, customer)
            recipients = self._recipients(session, customer, snapshot, input)
        result = SendEmailResult()
        for contact, context in recipients:
            result.deliveries.append(self._deliver(input, contact, context))
        return result

    def _recipients(
        self, session: Session, customer: Customer, snapshot: dict[str, Any], input: SendEmailInput
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        email = input.email
        base = evaluation_context(
            snapshot, input.now, input.playbook, input.event, step=input.step_id
        )
        people: list[dict[str, Any]] = []
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
            if address:
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
        return [(p, {**base, "contact": p}) for p in people]

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

    def _deliver(
        self, input: SendEmailInput, contact: dict[str, Any], context: dict[str, Any]
    ) -> EmailDelivery:
        address = contact["email"]
        key = f"{input.enrollment_id}:{input.step_id}:{input.iteration}:{address.lower()}"
        common: dict[str, Any] = {
            "enrollment_id": input.enrollment_id,
            "playbook_id": input.playbook,
            "step_id": input.step_id,
            "customer_id": input.customer_id,
            "to_name": contact.get("name"),
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
        token = unsubscribe_token(self.signing_secret, input.customer_id, address)
        unsubscribe_url = f"{self.public_base_url}/unsubscribe/{token}"
        context = {**context, "unsubscribe_url": unsubscribe_url}
        if suppressed:
            with self.sessions.begin() as session:
                repository.insert_outbox(
                    session,
                    key,
                    address,
                    _safe_subject(input.email, context),
                    status=OutboxStatus.SUPPRESSED,
                    reason=suppressed,
                    **common,
                )
            return _delivery(address, OutboxStatus.SUPPRESSED, None, suppressed)
        try:
            subject = render_text(input.email.subject, context)
            context["preheader"] = (
                render_text(input.email.preheader, context) if input.email.preheader else ""
            )
            html = render(input.templates, input.email.html_template, context)
            text = (
                render(input.templates, input.email.text_template, context)
                if input.email.text_template
                else html_to_text(html)
            )
        except TemplateRenderError as exc:
            reason = f"template failed to render: {exc}"
            with self.sessions.begin() as session:
                repository.insert_outbox(
                    session,
                    key,
                    address,
                    input.email.subject,
                    status=OutboxStatus.FAILED,
                    reason=reason,
                    **common,
                )
            return _delivery(address, OutboxStatus.FAILED, None, reason)
        sender_email = input.sender.email if input.sender else self.default_from_email
        sender_name = input.sender.name if input.sender else self.default_from_name
        headers = {
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        # Without a provider the email is captured in the same transaction that writes it:
        # there is no send that could fail in between.
        capture = isinstance(self.mailer, CaptureMailer)
        with self.sessions.begin() as session:
            _, created = repository.insert_outbox(
                session,
                key,
                address,
                subject,
                html=html,
                text=text,
                headers=headers,
                status=OutboxStatus.CAPTURED if capture else OutboxStatus.PENDING,
                reason=NO_PROVIDER if capture else None,
                **common,
            )
            if capture and not created:  # a pending row left by an earlier attempt
                repository.update_outbox_status(
                    session, key, OutboxStatus.CAPTURED, reason=NO_PROVIDER
                )
        if capture:
            return _delivery(address, OutboxStatus.CAPTURED, subject)
        with self.sessions.begin() as session:
            repository.update_outbox_status(session, key, OutboxStatus.SENDING, count_attempt=True)
        outgoing = OutgoingEmail(
            to_email=address,
            to_name=contact.get("name"),
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

    @staticmethod
    def _suppression_reason(session: Session, contact: dict[str, Any]) -> str | None:
        if contact.get("unsubscribed"):
            return "contact unsubscribed"
        if repository.is_suppressed(session, contact["email"]):
            return "address is on the suppression list (bounce, spam report or unsubscribe)"
        return None

    # -- tasks ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.CREATE_TASK)
    @_heartbeating
    def create_task(self, input: CreateTaskInput) -> TaskRef:
        """Create the step's task once (keyed by enrollment, step and iteration)."""
        key = f"{input.enrollment_id}:{input.step_id}:{input.iteration}"
        with self.sessions.begin() as session:
            customer = self._customer(session, input.customer_id)
            if customer is None:
                raise ApplicationError(
                    f"customer {input.customer_id} not found",
                    type=ErrorType.CUSTOMER_NOT_FOUND,
                    non_retryable=True,
                )
            context = evaluation_context(
                customer_snapshot(session, customer), input.now, input.playbook, input.event
            )
            task = input.task
            title = _render_or_source(task.title, context)
            description = _render_or_source(task.description, context) if task.description else None
            assignee = self._assignee(session, customer, task.assignee)
            due = input.now + timedelta(seconds=task.due_seconds) if task.due_seconds else None
            row, _ = repository.create_task(
                session,
                key,
                title,
                enrollment_id=input.enrollment_id,
                playbook_id=input.playbook,
                step_id=input.step_id,
                customer_id=customer.id,
                assignee_email=assignee,
                description=description,
                due_at=due,
                priority=task.priority,
                outcomes=task.outcomes,
            )
            return TaskRef.model_validate(row)

    @staticmethod
    def _assignee(session: Session, customer: Customer, assignee: str) -> str | None:
        if assignee == "owner":
            return customer.owner_email
        if assignee == "manager":
            owner = team_member(session, customer.owner_email)
            return owner.manager_email if owner and owner.manager_email else customer.owner_email
        if assignee.startswith("role:"):
            member = member_with_role(session, assignee.removeprefix("role:"))
            return member.email if member else customer.owner_email
        return assignee

    @activity.defn(name=ActivityName.ESCALATE_TASK)
    @_heartbeating
    def escalate_task(self, input: EscalateTaskInput) -> TaskRef:
        """Escalate an overdue task: a linked urgent task for the manager (or whom it names)."""
        with self.sessions.begin() as session:
            original = repository.get_task(session, input.task_id)
            customer = self._customer(session, input.customer_id)
            if original is None or customer is None:
                raise ApplicationError(
                    "task or customer not found", type=ErrorType.INVALID_INPUT, non_retryable=True
                )
            assignee = self._assignee(session, customer, input.escalate_to)
            row, created = repository.create_task(
                session,
                f"{input.task_id}:escalation",
                f"Escalation: {original.title}",
                enrollment_id=input.enrollment_id,
                playbook_id=input.playbook,
                step_id=input.step_id,
                customer_id=customer.id,
                assignee_email=assignee,
                description=(
                    f"The task '{original.title}' assigned to "
                    f"{original.assignee_email or 'nobody'} is still open."
                ),
                due_at=input.now + timedelta(days=1),
                priority="urgent",
                outcomes=["done"],
                escalation_of=original.id,
            )
            if created:
                original.escalated_at = input.now
            return TaskRef.model_validate(row)

    # -- customer data and other playbooks -------------------------------------------------
    @activity.defn(name=ActivityName.UPDATE_CUSTOMER)
    @_heartbeating
    def update_customer(self, input: UpdateCustomerInput) -> None:
        """Set attributes and tags once per (enrollment, step, visit)."""
        info = activity.info()
        marker = (
            f"update:{input.enrollment_id}:{input.step_id}:{info.workflow_run_id}:"
            f"{info.activity_id}"
        )
        with self.sessions.begin() as session:
            customer = self._customer(session, input.customer_id)
            if customer is None:
                raise ApplicationError(
                    f"customer {input.customer_id} not found",
                    type=ErrorType.CUSTOMER_NOT_FOUND,
                    non_retryable=True,
                )
            if not repository.record_event(
                session,
                marker,
                customer.id,
                "customer.updated",
                input.now,
                {"by": input.playbook, "step": input.step_id},
                status=EventStatus.APPLIED,
            ):
                return
            context = evaluation_context(
                customer_snapshot(session, customer), input.now, input.playbook
            )
            attributes = dict(customer.attributes or {})
            for name, value in input.set.items():
                attributes[name] = _rendered_value(value, context)
            tags = [t for t in (customer.tags or []) if t not in input.remove_tags]
            tags += [t for t in input.add_tags if t not in tags]
            customer.attributes = attributes
            customer.tags = tags

    @activity.defn(name=ActivityName.ENROLL_CUSTOMER)
    async def enroll_customer(self, input: EnrollCustomerInput) -> str:
        """Start another playbook for this customer (already enrolled is not an error)."""
        if self.enroller is None:
            return f"would enroll in {input.playbook} (no enroller configured)"
        return await self.enroller(input.playbook, input.customer_id, input.enrollment_id)


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


def _safe_subject(email: EmailPlan, context: dict[str, Any]) -> str:
    try:
        return render_text(email.subject, context)
    except TemplateRenderError:
        return email.subject


def _render_or_source(source: str, context: dict[str, Any]) -> str:
    try:
        return render_text(source, context)
    except TemplateRenderError as exc:
        return f"{source} [render error: {exc}]"


def _rendered_value(value: Any, context: dict[str, Any]) -> Any:
    """Strings are templates; a result that reads as JSON (3, true) becomes that value."""
    if not isinstance(value, str) or "{" not in value:
        return value
    text = render_text(value, context)
    try:
        return json.loads(text)
    except ValueError:
        return text
