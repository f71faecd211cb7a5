"""Locale versions and variants of email templates are compiled and checked like the template
itself (docs/delivery.md); Babel's filters write dates and numbers the recipient's way."""

from __future__ import annotations

from datetime import date

from engine.language.delivery import locale_chain, localized, pick_variant
from engine.language.jinja_env import make_environment
from engine.language.plan import ContentPlan, VariantPlan
from engine.project import load_project
from tests.helpers.paths import PLAYBOOKS

PLAYBOOK = """\
playbook: hello
name: Hello
trigger: {manual: true}
steps:
  - id: hello
    email:
      template: greet/hello
      send_window: anytime
      variants:
        - {name: plain, weight: 2}
        - name: short
          template: greet/missing
"""
HELLO = "---\nsubject: Hello {{ contact.first_name }}\n---\n<p>Hello</p>\n"
BROKEN = "---\nsubject: 안녕하세요\n---\n<p>안녕\n{% if %}</p>\n"


def test_a_broken_locale_version_and_a_missing_variant_template_are_reported(tmp_path):
    (tmp_path / "milestones.yaml").write_text((PLAYBOOKS / "milestones.yaml").read_text())
    (tmp_path / "hello.yaml").write_text(PLAYBOOK)
    greet = tmp_path / "templates" / "greet"
    greet.mkdir(parents=True)
    (greet / "hello.html").write_text(HELLO)
    (greet / "hello.ko.html").write_text(BROKEN)
    errors = [str(d) for d in load_project(tmp_path).errors]
    assert any("greet/hello.ko.html:5:" in e and "does not parse" in e for e in errors), errors
    assert any("hello.yaml:12:" in e and "greet/missing" in e for e in errors), errors


def test_the_shipped_welcome_has_a_korean_version():
    step = load_project(PLAYBOOKS).plan("onboarding").step("welcome")
    assert step.email is not None
    assert set(step.email.locales) == {"ko"}
    assert "onboarding/welcome.ko.html" in step.email.files


def test_the_locale_chain_falls_back_to_the_language_then_the_template():
    base = ContentPlan(subject="Hi", html_template="x.html")
    korean = ContentPlan(subject="안녕", html_template="x.ko.html")
    assert locale_chain("ko_KR") == ["ko-kr", "ko"]
    assert localized(base, {"ko": korean}, "ko-KR") == ("ko", korean)
    assert localized(base, {"ko": korean}, "de-AT") == (None, base)
    assert localized(base, {"ko": korean}, None) == (None, base)


def test_a_contact_always_gets_the_same_variant_in_proportion_to_the_weights():
    variants = [
        VariantPlan(name="a", weight=1, subject="A", html_template="a.html"),
        VariantPlan(name="b", weight=3, subject="B", html_template="b.html"),
    ]
    picks = [pick_variant(variants, f"acme:c{i}@acme.example:p:s") for i in range(2000)]
    assert picks == [pick_variant(variants, f"acme:c{i}@acme.example:p:s") for i in range(2000)]
    share = sum(1 for v in picks if v is not None and v.name == "b") / len(picks)
    assert 0.70 < share < 0.80


def test_dates_and_numbers_follow_the_locale():
    env = make_environment()
    source = (
        "{{ d | format_date('long') }} {{ n | format_number }} {{ n | format_currency('EUR') }}"
    )
    template = env.from_string(source)
    values = {"d": date(2027, 3, 29), "n": 1234.5}
    assert template.render(locale="de", **values) == "29. März 2027 1.234,5 1.234,50\xa0€"
    assert template.render(locale="ko", **values).startswith("2027년 3월 29일 1,234.5")
    assert template.render(**values).startswith("March 29, 2027 1,234.5 €1,234.50")
