"""Expressions: every name and field checked at compile time; evaluation sandboxed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.errors import ExpressionError
from engine.expressions import (
    BASE_NAMES,
    check_expression,
    evaluate,
    helpers,
    parse_expression,
    uses_variable,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CUSTOMER = {
    "id": "c1",
    "name": "Acme",
    "segment": "enterprise",
    "health_score": 42,
    "renewal_date": "2026-04-01",
    "tags": ["beta"],
    "attributes": {"plan": "pro"},
}
CONTEXT = {"customer": CUSTOMER, **helpers(NOW)}


# -- compile time -------------------------------------------------------------------------


def test_a_correct_expression_has_no_problems() -> None:
    source = 'customer.segment in ["enterprise", "mid_market"] and customer.health_score < 50'
    assert check_expression(source, BASE_NAMES) == []


def test_undefined_variable_is_named_with_a_suggestion() -> None:
    [problem] = check_expression('custmer.segment == "smb"', BASE_NAMES)
    assert problem.startswith("undefined variable 'custmer' (did you mean 'customer'?)")
    assert "available here: customer, owner" in problem


def test_misspelled_field_is_named_with_the_valid_fields() -> None:
    [problem] = check_expression('customer.segmnt == "smb"', BASE_NAMES)
    assert problem.startswith("'customer' has no field 'segmnt' (did you mean 'segment'?)")
    assert "its fields are: id, name, segment" in problem


def test_subscript_fields_are_checked_too() -> None:
    [problem] = check_expression('customer["helth_score"] < 50', BASE_NAMES)
    assert "'customer' has no field 'helth_score' (did you mean 'health_score'?)" in problem


def test_event_is_only_available_where_allowed() -> None:
    assert check_expression('event.name == "x"', (*BASE_NAMES, "event")) == []
    [problem] = check_expression('event.name == "x"', BASE_NAMES)
    assert problem.startswith("undefined variable 'event'")


def test_contact_fields_are_checked() -> None:
    allowed = (*BASE_NAMES, "contact")
    assert check_expression('contact.role == "admin"', allowed) == []
    [problem] = check_expression('contact.rol == "admin"', allowed)
    assert "'contact' has no field 'rol' (did you mean 'role'?)" in problem


def test_syntax_errors_are_reported_not_raised() -> None:
    [problem] = check_expression("customer.segment ==", BASE_NAMES)
    assert problem.startswith("invalid expression 'customer.segment =='")


def test_braces_inside_an_expression_are_refused_with_the_fix() -> None:
    [problem] = check_expression('{{ customer.segment == "smb" }}', BASE_NAMES)
    assert problem == (
        "write the expression without '{{ }}' (it is already an expression), "
        "e.g. 'customer.segment == \"smb\"'"
    )
    with pytest.raises(ExpressionError):
        parse_expression("{% if x %}")


def test_uses_variable() -> None:
    assert uses_variable('contact.role == "admin"', "contact")
    assert not uses_variable('customer.segment == "smb"', "contact")


# -- evaluation -------------------------------------------------------------------------


def test_evaluates_over_a_snapshot() -> None:
    assert evaluate('customer.segment == "enterprise"', CONTEXT) is True
    assert evaluate("customer.health_score < 50 and 'beta' in customer.tags", CONTEXT) is True
    assert evaluate("customer.attributes.plan", CONTEXT) == "pro"


def test_date_helpers_use_the_given_now() -> None:
    assert evaluate("days_until(customer.renewal_date)", CONTEXT) == 30
    assert evaluate("days_since('2026-02-28')", CONTEXT) == 2
    assert evaluate("(date(customer.renewal_date) - days(120)).isoformat()", CONTEXT) == (
        "2025-12-02"
    )
    assert evaluate("today.isoformat()", CONTEXT) == "2026-03-02"


def test_a_missing_field_fails_at_evaluation_with_the_name() -> None:
    with pytest.raises(ExpressionError, match="segmnt"):
        evaluate('customer.segmnt == "smb"', CONTEXT)


def test_an_undefined_result_is_an_error_not_a_silent_value() -> None:
    with pytest.raises(ExpressionError, match="'nobody' is undefined"):
        evaluate("nobody", CONTEXT)
    with pytest.raises(ExpressionError, match="segmnt"):
        evaluate("customer.segmnt", CONTEXT)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("''.__class__.__mro__", "access to attribute '__class__' of 'str' object is unsafe"),
        ("''.__class__", "access to attribute '__class__' of 'str' object is unsafe"),
        ("cycler.__init__.__globals__", "access to attribute '__init__'"),
        ("customer.tags.append('x')", "access to attribute 'append' of 'list' object is unsafe"),
        ("'x' * 10**8", "repeating a value 100000000 times exceeds"),
        ("[0] * 10**6", "repeating a value"),
        ("2 ** 1000", "exponent 1000 is larger than"),
        ("'x'.center(10**9)", "center(1000000000) would be longer than"),
        ("'x' | center(10**9)", "center(1000000000) would be longer than"),
        ("'x'.ljust(width=10**9)", "ljust(1000000000) would be longer than"),
    ],
)
def test_sandbox_blocks_escapes_and_huge_values(source: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate(source, CONTEXT)
    message = str(info.value)
    assert message.startswith(f"{source!r} was blocked by the sandbox: "), message
    assert reason in message


def test_sandbox_ranges_and_placeholder_text_are_bounded() -> None:
    with pytest.raises(ExpressionError, match="Range too big"):
        evaluate("range(10**9) | list", CONTEXT)
    with pytest.raises(ExpressionError, match="'lipsum' is undefined"):
        evaluate("lipsum(n=10**7)", CONTEXT)


def test_small_values_are_still_fine() -> None:
    assert evaluate("'ab' * 3", CONTEXT) == "ababab"
    assert evaluate("2 ** 10", CONTEXT) == 1024
    assert evaluate("'x'.center(5)", CONTEXT) == "  x  "
    assert evaluate("[1, 2] + [3]", CONTEXT) == [1, 2, 3]


def test_runtime_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="failed"):
        evaluate("customer.health_score / 0", CONTEXT)
    with pytest.raises(ExpressionError, match="failed"):
        evaluate("customer.name + 1", CONTEXT)


@pytest.mark.parametrize(
    "source",
    ["x" + "|abs" * 300, "x" + " + x" * 600],
    ids=["300 filters in a row", "600 operators in a row"],
)
def test_an_expression_too_deep_for_python_is_a_clear_error_not_a_traceback(source: str) -> None:
    problems = check_expression(source, ("x",))
    assert len(problems) == 1
    assert "too deeply nested" in problems[0]


def test_a_text_that_fails_while_jinja_folds_constants_is_reported() -> None:
    from engine.templates import check_text

    problems = check_text("Hi {{ 'a'.b ~ customer.name }}", ("customer",))
    assert problems and "does not compile" in problems[0]
    assert check_text("{{ x" + "|abs" * 300 + " }}", ("x",)) != []
