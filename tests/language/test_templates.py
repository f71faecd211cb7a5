"""Email templates: front matter, layouts and partials, compile-time checks, sandboxed and
escaped rendering, and the plain-text part derived from HTML."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import TemplateRenderError
from engine.templates import (
    TemplateLibrary,
    html_to_text,
    render,
    render_text,
    split_front_matter,
    strip_front_matter,
)

REPO = Path(__file__).resolve().parents[2]
VALID_TEMPLATES = REPO / "tests" / "fixtures" / "valid" / "templates"
INVALID_TEMPLATES = REPO / "tests" / "fixtures" / "invalid" / "templates"
HOSTILE = {
    "customer": {"name": "<script>alert('x')</script>", "segment": "smb"},
    "contact": {"first_name": "Ann & Bob"},
    "owner": {"name": "Olga <olga@example.com>"},
    "unsubscribe_url": "https://example.com/u?a=1&b=2",
}

SOURCE = """\
---
subject: Welcome, {{ contact.first_name }}
preheader: "Three steps: connect, invite, share"
# a comment line is ignored
---
<p>Hello</p>
<p>{{ customer.name }}</p>
"""


# -- front matter ---------------------------------------------------------------------------


def test_front_matter_keys_lines_and_body() -> None:
    keys, body, body_line = split_front_matter(SOURCE)
    assert keys == {
        "subject": ("Welcome, {{ contact.first_name }}", 2),
        "preheader": ("Three steps: connect, invite, share", 3),
    }
    assert body == "<p>Hello</p>\n<p>{{ customer.name }}</p>\n"
    assert body_line == 6
    assert SOURCE.splitlines()[body_line - 1] == "<p>Hello</p>"


def test_no_front_matter_means_the_whole_file_is_the_body() -> None:
    assert split_front_matter("<p>Hi</p>\n") == ({}, "<p>Hi</p>\n", 1)
    assert strip_front_matter("<p>Hi</p>\n") == "<p>Hi</p>\n"


def test_stripping_front_matter_keeps_line_numbers() -> None:
    stripped = strip_front_matter(SOURCE)
    assert stripped.splitlines()[6] == "<p>{{ customer.name }}</p>"
    assert stripped.startswith("\n" * 5)
    assert "subject" not in stripped


# -- the library ----------------------------------------------------------------------------


def test_loads_a_template_with_its_layout_and_text_part() -> None:
    library = TemplateLibrary(VALID_TEMPLATES, "t")
    template, diags = library.load("onboarding/welcome")
    assert diags == []
    assert template is not None
    assert template.subject == "Welcome to Acme, {{ contact.first_name }}"
    assert template.preheader == "Three steps to your first dashboard"
    assert (template.html_file, template.text_file) == (
        "onboarding/welcome.html",
        "onboarding/welcome.txt",
    )
    # every file rendering needs is in the plan: the template, its layout, its text part
    assert set(template.sources) == {
        "onboarding/welcome.html",
        "_layout.html",
        "onboarding/welcome.txt",
    }
    assert "onboarding/connect_your_data" in library.available()
    assert "_layout" not in library.available()


def test_missing_template_and_escape_from_the_folder_are_not_found(tmp_path: Path) -> None:
    (tmp_path / "secret.html").write_text("---\nsubject: secret\n---\n<p>secret</p>\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "ok.html").write_text("---\nsubject: ok\n---\n<p>ok</p>\n")
    library = TemplateLibrary(tmp_path / "templates", "t")
    assert library.load("ok")[0] is not None
    assert library.load("nope") == (None, [])
    assert library.load("../secret") == (None, [])
    assert library.load(str(tmp_path / "secret")) == (None, [])


def test_syntax_error_is_reported_at_the_template_line() -> None:
    library = TemplateLibrary(INVALID_TEMPLATES, "tpl")
    template, diags = library.load("broken/syntax_error")
    assert template is not None
    assert [(d.path, d.line) for d in diags] == [("tpl/broken/syntax_error.html", 7)]
    assert diags[0].message.startswith("template does not parse: Encountered unknown tag 'endfor'")


def test_undefined_variable_is_reported_at_the_template_line() -> None:
    library = TemplateLibrary(INVALID_TEMPLATES, "tpl")
    _, diags = library.load("broken/undefined_variable")
    assert [(d.path, d.line, d.column) for d in diags] == [
        ("tpl/broken/undefined_variable.html", 6, 1)
    ]
    assert diags[0].message.startswith("undefined variable 'coupon_code'")


def _library(tmp_path: Path, files: dict[str, str]) -> TemplateLibrary:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return TemplateLibrary(tmp_path, "tpl")


def test_front_matter_problems_are_located(tmp_path: Path) -> None:
    library = _library(
        tmp_path,
        {
            "a.html": "---\nsubject: Hi {{ contact.frist_name }}\nsubjet: typo\n---\n<p>x</p>\n",
            "b.html": "<p>no front matter</p>\n",
        },
    )
    _, diags = library.load("a")
    found = {(d.line, d.message.split(";")[0]) for d in diags}
    assert (3, "unknown front matter key 'subjet'") in found
    assert (2, "'contact' has no field 'frist_name' (did you mean 'first_name'?)") in found
    _, diags = library.load("b")
    assert [d.message for d in diags] == [
        "template has no subject: start it with '---', 'subject: ...', '---'"
    ]


def test_missing_partial_is_reported(tmp_path: Path) -> None:
    library = _library(
        tmp_path, {"a.html": '---\nsubject: Hi\n---\n{% include "_footer.html" %}\n'}
    )
    _, diags = library.load("a")
    assert [(d.path, d.message) for d in diags] == [
        ("tpl/_footer.html", "template file '_footer.html' not found")
    ]


# -- rendering ------------------------------------------------------------------------------


def test_html_escapes_customer_data_and_text_does_not() -> None:
    template, _ = TemplateLibrary(VALID_TEMPLATES).load("onboarding/welcome")
    assert template is not None
    html = render(template.sources, "onboarding/welcome.html", HOSTILE)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "Olga &lt;olga@example.com&gt;" in html
    assert 'href="https://example.com/u?a=1&amp;b=2"' in html
    assert html.startswith("<html>")  # the front matter's blank lines are gone
    text = render(template.sources, "onboarding/welcome.txt", HOSTILE)
    assert "Welcome, <script>alert('x')</script>." in text
    assert render_text(template.subject, HOSTILE) == "Welcome to Acme, Ann & Bob"


def test_rendering_an_undefined_value_fails_clearly() -> None:
    sources = {"a.html": "<p>{{ customer.segmnt }}</p>"}
    with pytest.raises(TemplateRenderError, match=r"a\.html: .*segmnt"):
        render(sources, "a.html", HOSTILE)
    with pytest.raises(TemplateRenderError, match="segmnt"):
        render_text("Hi {{ customer.segmnt }}", HOSTILE)


def test_rendering_is_sandboxed_and_capped() -> None:
    with pytest.raises(TemplateRenderError, match="unsafe"):
        render({"a.html": "{{ ''.__class__.__mro__ }}"}, "a.html", {})
    with pytest.raises(TemplateRenderError, match="longer than"):
        render({"a.html": "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}"}, "a.html", {})
    with pytest.raises(TemplateRenderError, match="longer than"):
        render({"a.txt": "{{ 'x' | indent(10**9) }}"}, "a.txt", {})


def test_html_to_text() -> None:
    html = (
        "<html><head><title>T</title><style>p { color: red }</style></head><body>"
        "<h1>Hi   there</h1><p>Read <a href='https://a.example/c'>the guide</a> or "
        "<a href='mailto:x@example.com'>write</a>.</p>"
        "<ul><li>one</li><li>two</li></ul><script>alert(1)</script>"
        "<p>&amp; &lt;ok&gt;</p></body></html>"
    )
    assert html_to_text(html) == (
        "Hi there\n\nRead the guide (https://a.example/c) or write.\n\n- one\n\n- two\n\n& <ok>\n"
    )
