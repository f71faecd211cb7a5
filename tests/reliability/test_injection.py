"""Bad input 9: template and expression injection, in playbooks and in customer data.

Playbook text is Jinja2 in a sandbox: escapes to Python internals are refused, and so is
anything that would take unbounded memory or time (`'x' * 10**8`, `range(10**9)`, huge powers,
joins and replaces of shared parts, lipsum...), each with a clear error. Customer-supplied
strings are data: a customer named ``{{ 7*7 }}`` is greeted as ``{{ 7*7 }}``, never 49.

The payloads run in a child process with a 1 GiB address-space limit and a timeout, so a
regression fails this test instead of taking the machine down.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.harness import records, running, seed_customer, write_project

EXPRESSIONS = [
    "''.__class__.__mro__",
    "''.__class__.__mro__[1].__subclasses__()",
    "cycler.__init__.__globals__",
    "joiner.__init__.__globals__.os",
    "namespace.__init__.__globals__",
    "self.__init__",
    "self._TemplateReference__context",
    "customer.__class__",
    "customer.items.__self__",
    "[].append.__self__",
    "lipsum(10**7)",
    "config",
    "'x' * 10**8",
    "[0] * 10**8",
    "['x' * 100000] * 100000",
    "range(10**9)|list",
    "(((10**100)**100)**100)**100",
    "('x' * 100000)|replace('x', 'x' * 100000)",
    "('x' * 100000).replace('x', 'x' * 100000)",
    "'a'.join(['x' * 100000] * 10)",
    "['x' * 100000, 'x' * 100000]|join",
    "range(100000)|join('x' * 1000)",
    "[['x' * 50000] * 2] * 2",
    "('x' * 100000).translate({120: 'y' * 1000})",
    "'%999999999d' % 1",
    "'{:999999999}'.format(1)",
    "'x'|center(10**9)",
    "'x'|indent(10**9)",
    "[range(100000)|list, range(100000)|list]|sum(start=[])",
    "(['x' * 100000] * 1 + ['x' * 100000])|string",
    "('x' * 60000) ~ ('x' * 60000) ~ ('x' * 60000) ~ ('x' * 60000)",
]
TEMPLATES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{% for i in range(100000) %}{{ 'x' * 10 }}{% endfor %}",
    "{% set a = ['x' * 50000] %}{% set b = [a, a, a, a, a] %}{{ b }}",
    "{% set a = ['x' * 50000] %}{% set b = [a, a, a, a, a] %}{{ '' ~ b }}",
    "{% set ns = namespace(x=['x' * 1000]) %}{% for i in range(20) %}"
    "{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x|tojson }}",
    "{{ lipsum(10**7) }}",
]

CHILD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))
from engine.errors import ExpressionError, TemplateRenderError
from engine.language.expressions import evaluate
from engine.language.templates import render_text
cases = json.loads(sys.stdin.read())
out = []
for kind, source in cases:
    started = time.perf_counter()
    try:
        if kind == "expression":
            value = evaluate(source, {"customer": {"name": "Acme"}})
        else:
            value = render_text(source, {"customer": {"name": "Acme"}})
        outcome = ["accepted", repr(value)[:80]]
    except (ExpressionError, TemplateRenderError) as exc:
        outcome = ["refused", str(exc)[:300]]
    except BaseException as exc:
        outcome = ["crashed", f"{type(exc).__name__}: {exc}"[:300]]
    out.append([kind, source, *outcome, round(time.perf_counter() - started, 3)])
print(json.dumps(out))
"""


def test_injection_payloads_are_refused_with_a_clear_error(figures):
    cases = [["expression", e] for e in EXPRESSIONS] + [["template", t] for t in TEMPLATES]
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    outcomes = json.loads(child.stdout)
    problems = [o for o in outcomes if o[2] != "refused"]
    assert not problems, json.dumps(problems, indent=1)
    for kind, source, _, message, seconds in outcomes:
        assert seconds < 5, (source, seconds)
        assert any(
            word in message
            for word in (
                "blocked",
                "sandbox",
                "longer than",
                "larger than",
                "more than",
                "undefined",
                "unsafe",
                "too big",
                "exceeds",
            )
        ), (kind, source, message)
    figures.update(payloads=len(outcomes), refused=len(outcomes), accepted=0)


HOSTILE_NAME = "{{ 7*7 }}"
HOSTILE_FIRST = "{% for i in range(10**9) %}x{% endfor %}"
HOSTILE_NOTE = "{{ ''.__class__.__mro__ }}"

PLAYBOOK = """\
playbook: injected
name: Customer data is data
trigger: {manual: true}
steps:
  - id: hello
    email:
      to: contact.role == "admin"
      subject: "Hello {{ contact.first_name }} at {{ customer.name }}"
      body: >
        <p>Hi {{ contact.first_name }} ({{ customer.attributes.note }}),
        welcome {{ customer.name }}.</p>
        <p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
      send_window: anytime
  - id: call
    task:
      title: "Call {{ customer.name }} about {{ customer.attributes.note }}"
  - id: remember
    update:
      set: {greeting: "{{ customer.name }}", size: "{{ customer.attributes.note | length }}"}
  - id: sneaky
    email:
      to: contact.role == "admin"
      subject: "{{ ''.__class__.__mro__ }}"
      body: "<p>{{ customer.name }}</p>"
      send_window: anytime
  - id: done
    end: {outcome: done}
"""


async def test_customer_strings_are_data_never_template_source(
    temporal_env, sessions, task_queue, tmp_path, figures
):
    plan = write_project(tmp_path / "project", {"injected": PLAYBOOK}).plan("injected")
    customer = f"inj-{task_queue}"
    seed_customer(
        sessions,
        customer,
        contacts=[{"email": "ada@acme.example", "first_name": HOSTILE_FIRST, "role": "admin"}],
        attributes={"note": HOSTILE_NOTE},
    )
    from engine.store.models import Customer

    with sessions.begin() as session:
        session.get(Customer, customer).name = HOSTILE_NAME

    async with running(temporal_env, sessions, task_queue, customer_id=customer) as h:
        handle = await h.start(plan)
        result = await h.result(handle)

    assert result.outcome == "done"
    [hello] = h.outbox("hello")
    assert hello.status == "captured"
    assert hello.subject == f"Hello {HOSTILE_FIRST} at {HOSTILE_NAME}"
    # The body is checked up to its own end: the unsubscribe token after it is random and may
    # hold "49" by chance.
    assert f"welcome {HOSTILE_NAME}." in hello.html
    assert "49" not in hello.html.split('<a href="')[0]
    assert HOSTILE_FIRST in (hello.text or "")
    [task] = h.tasks("call")
    assert task.title == f"Call {HOSTILE_NAME} about {HOSTILE_NOTE}"
    attributes = h.customer(customer).attributes
    assert attributes["greeting"] == HOSTILE_NAME
    assert attributes["size"] == len(HOSTILE_NOTE)
    # An injected template in the playbook itself: refused at render time, recorded with the
    # sandbox's reason, and the playbook went on.
    [sneaky] = h.outbox("sneaky")
    assert sneaky.status == "failed"
    assert "blocked" in (sneaky.reason or "") or "unsafe" in (sneaky.reason or "")
    assert records(result, "end") or result.outcome == "done"
    figures.update(customer_strings_rendered_literally=4, evaluated=0)
