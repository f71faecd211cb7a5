"""Format widths cannot be used to allocate huge strings inside the sandbox."""

from __future__ import annotations

import pytest

from engine.errors import ExpressionError
from engine.expressions import evaluate


@pytest.mark.parametrize(
    "source",
    [
        "'%1000000000s' % 'x'",
        "'%.*f' % (10, 1.0)",
        "'{:>1000000000}'.format('x')",
        "'{:>100000000}'.format_map({})",
        "'{:{}}'.format('x', 10**9)",
        "'%1000000000s' | format('a')",
    ],
)
def test_huge_format_widths_are_blocked(source: str) -> None:
    with pytest.raises(ExpressionError, match=r"format width|computed format widths"):
        evaluate(source, {})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'%5.2f' % 3.14159", " 3.14"),
        ("'{:>4}'.format('x')", "   x"),
        ("10 % 3", 1),
        ("'%s day(s)' | format(3)", "3 day(s)"),
    ],
)
def test_ordinary_formatting_still_works(source: str, expected: object) -> None:
    assert evaluate(source, {}) == expected
