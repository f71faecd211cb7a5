"""`playbook graph`: a Mermaid flowchart with a node per step and an edge per way out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.language.graph import to_mermaid
from engine.language.plan import CompiledPlan
from engine.project import load_project

REPO = Path(__file__).resolve().parents[2]
VALID = REPO / "tests" / "fixtures" / "valid"
EDGE = re.compile(r'^    (\w+) (?:-->|-- "([^"]*)" -->|-\. "([^"]*)" \.->) (\w+)$')
NODE = re.compile(r"^    (\w+)[\[\(\{]")


def plan(name: str, root: Path = VALID) -> CompiledPlan:
    return load_project(root).plan(name)


def parse(chart: str) -> tuple[set[str], list[tuple[str, str, str]]]:
    """(defined nodes, edges as (source, label, target)); fails on any other line."""
    lines = chart.splitlines()
    assert lines[0] == "flowchart TD"
    nodes: set[str] = set()
    edges: list[tuple[str, str, str]] = []
    for line in lines[1:]:
        if line.startswith("    START((") or line.startswith("    GOAL{{"):
            nodes.add(line.split("(")[0].split("{")[0].strip())
            target = line.rsplit(" ", 1)[-1]
            edges.append((line.strip()[:5], "", target))
            continue
        edge = EDGE.match(line)
        if edge:
            edges.append((edge[1], edge[2] or edge[3] or "", edge[4]))
            continue
        node = NODE.match(line)
        assert node, f"unexpected line {line!r}"
        nodes.add(node[1])
    return nodes, edges


def test_onboarding_chart_has_an_edge_per_way_out() -> None:
    chart = to_mermaid(plan("onboarding"))
    assert chart.startswith("flowchart TD\n")
    nodes, edges = parse(chart)
    assert {f"s_{s.id}" for s in plan("onboarding").steps} <= nodes
    assert ("s_route", "customer.segment == 'enterprise'", "s_kickoff") in edges
    assert ("s_route", "customer.segment == 'mid_market'", "s_kickoff") in edges
    assert ("s_route", "otherwise", "s_await_integration") in edges
    assert ("s_await_integration", "timeout", "s_nudge_integration") in edges
    assert ("s_await_integration", "integration_connected", "s_tag_connected") in edges
    assert ("s_kickoff", "no_response", "s_await_integration") in edges
    assert ("s_kickoff", "", "s_await_integration") in edges  # the other outcomes
    assert ("START", "", "s_welcome") in edges
    assert not any(source == "s_done" for source, _, _ in edges)  # an end step ends
    assert 'GOAL{{"goal: first_value"}} -. "any time" .-> END' in chart
    # every edge leads to a node the chart defines
    assert {target for _, _, target in edges} <= nodes


def test_branch_edges_count_matches_cases(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "playbook: p\nname: P\nsteps:\n"
        "  - id: route\n    branch:\n      cases:\n"
        + "".join(
            f'        - if: customer.segment == "{seg}"\n          goto: {seg}\n'
            for seg in ("smb", "mid", "ent")
        )
        + "      otherwise: end\n"
        + "".join(
            f"  - id: {seg}\n    wait: {{for: 1d}}\n    next: end\n"
            for seg in ("smb", "mid", "ent")
        )
    )
    _, edges = parse(to_mermaid(plan("p", tmp_path)))
    out_of_route = [(label, target) for source, label, target in edges if source == "s_route"]
    assert out_of_route == [
        ("customer.segment == 'smb'", "s_smb"),
        ("customer.segment == 'mid'", "s_mid"),
        ("customer.segment == 'ent'", "s_ent"),
        ("otherwise", "END"),
    ]


def test_conditional_step_has_a_dotted_skip_edge(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "playbook: p\nname: P\nsteps:\n"
        '  - id: call\n    if: customer.segment == "enterprise"\n    task: {title: Call}\n'
        "  - id: done\n    end: {outcome: finished}\n"
    )
    chart = to_mermaid(plan("p", tmp_path))
    _, edges = parse(chart)
    assert ("s_call", "if not customer.segment == 'enterprise'", "s_done") in edges
    assert ("s_call", "", "s_done") in edges
    assert 's_done((("done<br/>end: finished")))' in chart


def test_wait_for_without_timeout_has_no_timeout_edge(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "playbook: p\nname: P\nsteps:\n"
        "  - id: hold\n    wait_for: {event: integration.connected}\n"
        "  - id: call\n    task: {title: Call}\n"
    )
    _, edges = parse(to_mermaid(plan("p", tmp_path)))
    assert [(s, label, t) for s, label, t in edges if s == "s_hold"] == [
        ("s_hold", "integration.connected", "s_call")
    ]


@pytest.mark.parametrize("ref", ["onboarding", "tests/fixtures/valid/onboarding.yaml"])
def test_cli_graph_by_id_or_path(ref: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["graph", ref, "--root", "tests/fixtures/valid"])
    assert result.exit_code == 0, result.output
    assert result.stdout == to_mermaid(plan("onboarding"))


def test_cli_graph_of_an_unknown_id_or_broken_file_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["graph", "nope", "--root", "tests/fixtures/valid"])
    assert result.exit_code == 1
    assert "no playbook 'nope'" in result.stderr
    result = CliRunner().invoke(main, ["graph", "tests/fixtures/invalid/next_missing_step.yaml"])
    assert result.exit_code == 1
    assert "tests/fixtures/invalid/next_missing_step.yaml:10:11: no step 'nudge'" in result.stderr
