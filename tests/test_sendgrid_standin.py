"""Tests for the SendGrid stand-in: it must hold the real ``sendgrid`` client to SendGrid's
published contract and answer the way SendGrid does, including the failures reliability tests
inject (429 with rate-limit headers, 500, slow answers)."""

from __future__ import annotations

import copy
import gzip
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sendgrid
from python_http_client.exceptions import (
    BadRequestsError,
    InternalServerError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid.helpers.mail import (
    Attachment,
    Category,
    Content,
    CustomArg,
    From,
    Header,
    Mail,
    Personalization,
    To,
)

from tests.helpers.sendgrid_contract import (
    CONTRACT_PATH,
    OFFICIAL_ENV_VAR,
    REGENERATE_COMMAND,
    extract_contract,
    extract_from_file,
    find_official_spec,
    load_committed,
)
from tests.helpers.sendgrid_standin import (
    DEFAULT_MAX_BODY_BYTES,
    SendGridStandIn,
)

UNSUBSCRIBE = (
    "<https://cs.example.com/u/abc123>, <mailto:unsubscribe@cs.example.com?subject=abc123>"
)

# A minimal body the schema accepts; the rejection cases below each break exactly one thing.
VALID_BODY: dict[str, Any] = {
    "personalizations": [{"to": [{"email": "ada@customer.example"}], "custom_args": {"k": "v"}}],
    "from": {"email": "csm@vendor.example", "name": "Your CSM"},
    "subject": "Welcome aboard",
    "content": [{"type": "text/plain", "value": "Hello"}],
}


@pytest.fixture
def standin() -> Iterator[SendGridStandIn]:
    with SendGridStandIn() as server:
        yield server


@pytest.fixture
def client(standin: SendGridStandIn) -> sendgrid.SendGridAPIClient:
    """The real SendGrid client, pointed at the stand-in instead of api.sendgrid.com."""
    return sendgrid.SendGridAPIClient(api_key=standin.api_key, host=standin.url)


def build_playbook_mail() -> Mail:
    """A mail as the engine would build it: two recipients, tagged, unsubscribable."""
    mail = Mail()
    mail.from_email = From("csm@vendor.example", "Your CSM")
    mail.subject = "Your onboarding checklist"
    for index, (email, name) in enumerate(
        [("ada@customer.example", "Ada"), ("bob@customer.example", "Bob")]
    ):
        personalization = Personalization()
        personalization.add_to(To(email, name))
        personalization.add_custom_arg(CustomArg("run_id", f"run-{index}"))
        personalization.add_custom_arg(CustomArg("step_id", "welcome"))
        mail.add_personalization(personalization, index=index)  # the default index 0 prepends
    mail.header = Header("List-Unsubscribe", UNSUBSCRIBE)
    mail.header = Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    mail.category = [Category("onboarding"), Category("playbook")]
    mail.content = Content("text/plain", "Hi, here is your checklist.")
    mail.content = Content("text/html", "<p>Hi, here is your <b>checklist</b>.</p>")
    return mail


def post_raw(
    standin: SendGridStandIn,
    body: bytes,
    headers: dict[str, str] | None = None,
    path: str = "/v3/mail/send",
    method: str = "POST",
) -> httpx.Response:
    """Send bytes the sendgrid client would never produce (bad JSON, gzip, odd auth)."""
    sent = {"Authorization": f"Bearer {standin.api_key}", "Content-Type": "application/json"}
    sent.update(headers or {})
    return httpx.request(method, standin.url + path, content=body, headers=sent, timeout=10)


def assert_error_response(standin: SendGridStandIn, raw: bytes | str) -> dict[str, Any]:
    """Parse an error body and check it has the spec's ErrorResponse shape."""
    payload = json.loads(raw)
    assert payload["errors"], payload
    assert standin.contract.error_response_problems(payload) == []
    return payload


# -- the contract ------------------------------------------------------------------------------


def test_contract_is_the_mail_send_operation_of_the_spec(standin: SendGridStandIn) -> None:
    assert standin.contract.operation_id == "SendMail"
    assert set(standin.contract.mail_send_schema["required"]) == {"personalizations", "from"}
    # $refs into #/components/schemas resolve: a bad address inside MailTo is found.
    bad = copy.deepcopy(VALID_BODY)
    bad["personalizations"][0]["to"][0]["email"] = "not-an-address"
    fields = [e["field"] for e in standin.contract.mail_send_errors(bad)]
    assert fields == ["personalizations.0.to.0.email"]


def test_standin_enforces_the_contract_carried_in_the_project(standin: SendGridStandIn) -> None:
    assert standin.contract.uri == CONTRACT_PATH.as_uri()


def test_committed_contract_is_a_complete_extract_and_nothing_more() -> None:
    # Extracting again from the extract itself changes nothing: every $ref resolves inside it
    # (a missing component raises) and no component is carried that the operation never uses.
    committed = load_committed()
    notice = "\n".join(committed["x-extract"]["license"])
    assert extract_contract(committed, notice) == committed
    assert notice.startswith("MIT License")


def test_committed_contract_agrees_with_the_official_description() -> None:
    official = find_official_spec()
    if official is None:
        pytest.skip(
            "SendGrid's official OpenAPI file is not on this machine (no "
            "shared/specs/sendgrid/tsg_mail_v3.json beside the repository or above it, and "
            f"{OFFICIAL_ENV_VAR} is unset); the committed contract is used unchecked"
        )
    assert extract_from_file(official) == load_committed(), (
        f"{CONTRACT_PATH.name} differs from {official}; regenerate it: {REGENERATE_COMMAND}"
    )


def test_spec_examples_are_accepted(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    examples = standin.contract.examples
    assert examples, "the spec ships request examples; they must load"
    for name, body in examples.items():
        response = client.send(body)
        assert response.status_code == 202, name
    assert [m.body for m in standin.requests] == list(examples.values())


# -- accepted mail -----------------------------------------------------------------------------


def test_valid_mail_is_accepted_with_message_id_and_recorded(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    mail = build_playbook_mail()

    first = client.send(mail)
    second = client.send(mail)

    assert first.status_code == 202
    assert first.body == b""
    first_id = first.headers["X-Message-Id"]
    assert first_id and first_id != second.headers["X-Message-Id"]
    recorded = standin.requests
    assert [m.message_id for m in recorded] == [first_id, second.headers["X-Message-Id"]]
    message = recorded[0]
    assert message.body == mail.get()
    assert message.headers["authorization"] == f"Bearer {standin.api_key}"
    assert message.body["headers"]["List-Unsubscribe"] == UNSUBSCRIBE
    assert sorted(message.body["categories"]) == ["onboarding", "playbook"]
    assert [c["type"] for c in message.body["content"]] == ["text/plain", "text/html"]
    assert message.recipients == ["ada@customer.example", "bob@customer.example"]
    assert message.subject == "Your onboarding checklist"
    assert standin.rejected == []


def test_messages_for_filters_on_personalization_custom_args(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    client.send(build_playbook_mail())
    other = copy.deepcopy(VALID_BODY)
    other["personalizations"][0]["custom_args"] = {"run_id": "run-9"}
    client.send(other)

    assert [m.recipients for m in standin.messages_for("run_id", "run-1")] == [
        ["ada@customer.example", "bob@customer.example"]
    ]
    assert [m.body["personalizations"][1]["custom_args"] for m in standin.requests[:1]] == [
        {"run_id": "run-1", "step_id": "welcome"}
    ]
    assert [m.recipients for m in standin.messages_for("run_id", "run-9")] == [
        ["ada@customer.example"]
    ]
    assert len(standin.messages_for("step_id", "welcome")) == 1
    assert standin.messages_for("run_id", "run-404") == []


def test_gzip_compressed_body_is_accepted(standin: SendGridStandIn) -> None:
    body = gzip.compress(json.dumps(VALID_BODY).encode())
    response = post_raw(standin, body, {"Content-Encoding": "gzip"})
    assert response.status_code == 202, response.text
    assert standin.requests[0].body == VALID_BODY


def test_unknown_top_level_field_is_accepted_because_the_schema_allows_it(
    client: sendgrid.SendGridAPIClient, standin: SendGridStandIn
) -> None:
    # The spec sets no additionalProperties: false anywhere, so the stand-in may not invent it.
    assert "additionalProperties" not in standin.contract.mail_send_schema
    body = {**VALID_BODY, "x_unknown": 1}
    assert client.send(body).status_code == 202


# -- rejected bodies ---------------------------------------------------------------------------


def _without(key: str) -> dict[str, Any]:
    body = copy.deepcopy(VALID_BODY)
    del body[key]
    return body


def _with(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(VALID_BODY)
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return body


INVALID_BODIES = [
    pytest.param(_without("from"), "from", id="missing-from"),
    pytest.param(_without("personalizations"), "personalizations", id="missing-personalizations"),
    pytest.param(_with("content", "Hello"), "content", id="content-not-an-array"),
    pytest.param(_with("content.0", {"type": "text/plain"}), "content.0.value", id="no-value"),
    pytest.param(_with("personalizations.0", {}), "personalizations.0.to", id="no-to"),
    pytest.param(_with("from.email", "nobody"), "from.email", id="bad-from-address"),
    pytest.param(_with("subject", ""), "subject", id="empty-subject"),
    pytest.param(_with("categories", [str(i) for i in range(11)]), "categories", id="11-cats"),
    pytest.param(
        _with("attachments", [{"content": "aGk="}]), "attachments.0.filename", id="no-filename"
    ),
    # The spec types the message-level custom_args as a string (object in personalizations).
    pytest.param(_with("custom_args", {"run_id": "r"}), "custom_args", id="global-custom-args"),
]


def test_the_base_body_of_the_rejection_cases_is_valid(standin: SendGridStandIn) -> None:
    assert standin.contract.mail_send_errors(VALID_BODY) == []


@pytest.mark.parametrize(("body", "field"), INVALID_BODIES)
def test_invalid_body_is_rejected_naming_the_field(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadRequestsError) as caught:
        client.send(body)

    assert caught.value.status_code == 400
    payload = assert_error_response(standin, caught.value.body)
    assert [e["field"] for e in payload["errors"]] == [field]
    assert field in payload["errors"][0]["message"]
    assert standin.requests == []
    [rejected] = standin.rejected
    assert (rejected.status, rejected.fields, rejected.body) == (400, [field], body)


def test_global_custom_arg_from_the_helpers_is_rejected_as_the_spec_says(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    mail = build_playbook_mail()
    mail.custom_arg = CustomArg("tenant", "acme")  # no p=: goes to the message level

    with pytest.raises(BadRequestsError) as caught:
        client.send(mail)

    assert caught.value.to_dict["errors"][0]["field"] == "custom_args"


def test_body_that_is_not_json_is_rejected(standin: SendGridStandIn) -> None:
    response = post_raw(standin, b"{not json")
    assert response.status_code == 400
    payload = assert_error_response(standin, response.content)
    assert payload["errors"][0]["field"] is None
    assert "JSON" in payload["errors"][0]["message"]
    assert standin.requests == []


def test_body_over_30_mb_gets_413(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    mail = build_playbook_mail()
    mail.attachment = Attachment(
        file_content="A" * DEFAULT_MAX_BODY_BYTES, file_name="big.txt", file_type="text/plain"
    )

    with pytest.raises(PayloadTooLargeError) as caught:
        client.send(mail)

    assert_error_response(standin, caught.value.body)
    assert standin.requests == []
    assert [r.status for r in standin.rejected] == [413]
    # The limit is on the body, not on the attachment: just under it still goes through.
    mail.attachments[0].file_content = "A"
    assert client.send(mail).status_code == 202


def test_unknown_path_and_wrong_method(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    with pytest.raises(NotFoundError):
        client.client.mail.sendx.post(request_body=VALID_BODY)
    with pytest.raises(MethodNotAllowedError):
        client.client.mail.send.get()
    assert [r.status for r in standin.rejected] == [404, 405]


# -- authentication ----------------------------------------------------------------------------


def test_missing_authorization_gets_401(standin: SendGridStandIn) -> None:
    response = httpx.post(standin.url + "/v3/mail/send", json=VALID_BODY, timeout=10)
    assert response.status_code == 401
    payload = assert_error_response(standin, response.content)
    assert payload["errors"][0]["message"] == "authorization required"
    assert standin.requests == []


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Token SG.abc"])
def test_malformed_authorization_gets_401(standin: SendGridStandIn, authorization: str) -> None:
    response = post_raw(standin, json.dumps(VALID_BODY).encode(), {"Authorization": authorization})
    assert response.status_code == 401
    assert standin.requests == []


def test_wrong_api_key_gets_401_from_the_real_client(standin: SendGridStandIn) -> None:
    wrong = sendgrid.SendGridAPIClient(api_key="SG.not-the-key", host=standin.url)
    with pytest.raises(UnauthorizedError) as caught:
        wrong.send(build_playbook_mail())
    assert_error_response(standin, caught.value.body)
    assert standin.requests == []
    assert [r.status for r in standin.rejected] == [401]


# -- injected failures -------------------------------------------------------------------------


def test_injected_429_carries_rate_limit_headers(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    standin.fail_next(1, status=429, reset_after_seconds=30, rate_limit=100)
    before = time.time()

    with pytest.raises(TooManyRequestsError) as caught:
        client.send(build_playbook_mail())

    headers = caught.value.headers
    assert headers["X-RateLimit-Limit"] == "100"
    assert headers["X-RateLimit-Remaining"] == "0"
    reset = int(headers["X-RateLimit-Reset"])
    assert int(before) + 29 <= reset <= int(time.time()) + 31
    assert caught.value.to_dict["errors"][0]["message"] == "too many requests"
    assert_error_response(standin, caught.value.body)
    assert standin.requests == []
    [injected] = standin.injected
    assert (injected.status, injected.body) == (429, build_playbook_mail().get())
    # Only one failure was queued: the retry goes through.
    assert client.send(build_playbook_mail()).status_code == 202
    assert len(standin.requests) == 1


def test_injected_500s_are_used_in_order_then_service_recovers(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    standin.fail_next(2, status=500, message="boom")
    assert standin.pending_faults == 2

    for _ in range(2):
        with pytest.raises(InternalServerError) as caught:
            client.send(VALID_BODY)
        assert caught.value.to_dict["errors"][0]["message"] == "boom"

    assert client.send(VALID_BODY).status_code == 202
    assert standin.pending_faults == 0
    assert [f.status for f in standin.injected] == [500, 500]
    assert len(standin.requests) == 1


def test_injected_failure_applies_even_to_an_invalid_body(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    standin.fail_next(1, status=400, message="injected")
    with pytest.raises(BadRequestsError) as caught:
        client.send(VALID_BODY)
    assert caught.value.to_dict["errors"][0]["message"] == "injected"
    assert standin.rejected == []
    assert standin.requests == []


def test_fail_next_refuses_non_error_status(standin: SendGridStandIn) -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        standin.fail_next(1, status=202)
    with pytest.raises(ValueError, match="at least 1"):
        standin.hang_next(0, 1.0)


def test_hang_makes_the_client_time_out_and_the_mail_still_lands(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    standin.hang_next(1, seconds=1.5)
    client.client.timeout = 0.2  # python_http_client passes this to urllib

    # urllib raises the socket timeout itself while waiting for the answer.
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        client.send(VALID_BODY)
    assert standin.requests == []

    # SendGrid may still deliver what the client gave up on: retries must be idempotent.
    [delivered] = standin.wait_for_requests(1, timeout=10)
    assert delivered.body == VALID_BODY
    assert client.send(VALID_BODY).status_code == 202


def test_stop_ends_a_pending_hang_without_recording_it() -> None:
    standin = SendGridStandIn().start()
    standin.hang_next(1, seconds=60)
    client = sendgrid.SendGridAPIClient(api_key=standin.api_key, host=standin.url)
    client.client.timeout = 0.2
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        client.send(VALID_BODY)

    started = time.monotonic()
    standin.stop()

    assert time.monotonic() - started < 30, "stop() must not wait out the hang"
    assert standin.requests == []
    standin.stop()  # idempotent


def test_wait_for_requests_explains_a_timeout(standin: SendGridStandIn) -> None:
    with pytest.raises(TimeoutError, match="expected 1 accepted"):
        standin.wait_for_requests(1, timeout=0.05)


# -- lifecycle and extras ----------------------------------------------------------------------


def test_context_manager_serves_then_releases_the_port() -> None:
    with SendGridStandIn(api_key="SG.fixed") as standin:
        url = standin.url
        assert standin.api_key == "SG.fixed"
        assert url.startswith("http://127.0.0.1:")
        response = post_raw(standin, json.dumps(VALID_BODY).encode())
        assert response.status_code == 202

    with pytest.raises(httpx.ConnectError):
        httpx.post(url + "/v3/mail/send", json=VALID_BODY, timeout=2)
    with pytest.raises(RuntimeError, match="not running"):
        _ = standin.url


def test_batch_ids_can_be_created_and_validated(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    created = client.client.mail.batch.post()
    assert created.status_code == 201
    batch_id = json.loads(created.body)["batch_id"]
    assert standin.batch_ids == [batch_id]

    assert client.client.mail.batch._(batch_id).get().status_code == 200
    with pytest.raises(BadRequestsError):
        client.client.mail.batch._("unknown").get()


def test_reset_forgets_records_and_faults(
    standin: SendGridStandIn, client: sendgrid.SendGridAPIClient
) -> None:
    client.send(VALID_BODY)
    standin.fail_next(3, status=500)
    standin.reset()
    assert (standin.requests, standin.rejected, standin.pending_faults) == ([], [], 0)
    assert client.send(VALID_BODY).status_code == 202


def test_urllib_and_keep_alive_clients_both_work(standin: SendGridStandIn) -> None:
    request = urllib.request.Request(
        standin.url + "/v3/mail/send",
        data=json.dumps(VALID_BODY).encode(),
        headers={"Authorization": f"Bearer {standin.api_key}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
    with httpx.Client(headers={"Authorization": f"Bearer {standin.api_key}"}) as keep_alive:
        statuses = [
            keep_alive.post(standin.url + "/v3/mail/send", json=VALID_BODY).status_code
            for _ in range(3)
        ]
    assert statuses == [202, 202, 202]
    assert len(standin.requests) == 4


async def test_usable_from_async_tests(standin: SendGridStandIn) -> None:
    headers = {"Authorization": f"Bearer {standin.api_key}"}
    async with httpx.AsyncClient(base_url=standin.url, headers=headers) as http:
        response = await http.post("/v3/mail/send", json=VALID_BODY)
        bad = await http.post("/v3/mail/send", json=_without("from"))
    assert response.status_code == 202
    assert response.headers["X-Message-Id"] == standin.requests[0].message_id
    assert bad.status_code == 400
