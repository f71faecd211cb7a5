"""Scenario 5, compile: validate and compile a large generated playbook."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.report import Metric, median_time
from bench.scenarios.spec import SHIPPED, BenchFailure, Progress, Sizes
from engine.project import load_project


def generated_playbook(steps: int) -> str:
    """A valid playbook of ``steps`` steps using every step kind; gotos only go forward.

    Expressions and texts differ from step to step (thresholds, step numbers), so that a
    compiler caching by source text cannot make the benchmark trivial.
    """
    lines = [
        "playbook: generated",
        "name: Generated benchmark playbook",
        'trigger: {on_event: customer.created, if: customer.segment != "internal"}',
        "exit: {on_events: [customer.churned]}",
        "goal: {milestone: first_value}",
        "defaults:",
        '  send_window: {days: [mon, tue, wed, thu, fri], between: ["09:00", "17:00"]}',
        "steps:",
    ]
    milestones = ["integration_connected", "team_invited", "dashboards_shared", "alerts_configured"]
    for i in range(steps - 1):
        nxt = f"s{i + 2}" if i + 2 < steps else "done"
        kind = i % 8
        lines.append(f"  - id: s{i}")
        if kind == 0:
            lines += [
                "    email:",
                f'      to: contact.role in ["admin", "champion"] or {i} < 0',
                f'      subject: "Step {i} for {{{{ customer.name }}}}"',
                f'      body: "<p>Hi {{{{ contact.first_name }}}}, step {i}: '
                "{{ customer.segment | default('smb') }}.</p>\"",
            ]
        elif kind == 1:
            lines += [
                f"    if: customer.health_score is none or customer.health_score < {30 + i % 60}",
                "    task:",
                f'      title: "Check in with {{{{ customer.name }}}} ({i})"',
                "      due: 3d",
                "      priority: high",
            ]
        elif kind == 2:
            lines += ["    wait: {for: 2d}"]
        elif kind == 3:
            lines += [
                f"    wait_for: {{milestone: {milestones[i % len(milestones)]}, timeout: 7d, "
                f"on_timeout: s{i + 1}}}",
            ]
        elif kind == 4:
            lines += [
                "    branch:",
                "      cases:",
                f'        - {{if: customer.segment == "enterprise" and customer.health_score > '
                f"{i % 90}, goto: {nxt}}}",
                f"      otherwise: s{i + 1}",
            ]
        elif kind == 5:
            lines += [
                "    update:",
                f'      set: {{last_step: "s{i}"}}',
                "      add_tags: [benchmarked]",
            ]
        elif kind == 6:
            lines += [
                "    task:",
                f'      title: "Call {{{{ customer.name }}}} ({i})"',
                "      outcomes: [held, no_response]",
                "      wait: true",
                "      escalate_after: 5d",
                f"      on_outcome: {{no_response: {nxt}}}",
            ]
        else:
            lines += ["    wait: {for: 1d}"]
    lines += ["  - id: done", "    end: {outcome: finished}"]
    return "\n".join(lines) + "\n"


def compile_scenario(sizes: Sizes, progress: Progress) -> list[Metric]:
    """Validate and compile a generated playbook, as `playbook validate` does."""
    tmp = Path(tempfile.mkdtemp(prefix="playbook-bench-compile-"))
    try:
        shutil.copy(SHIPPED / "milestones.yaml", tmp / "milestones.yaml")
        (tmp / "generated.yaml").write_text(generated_playbook(sizes.compile_steps))
        report = progress.phase(f"compile: {sizes.compile_steps} steps", sizes.compile_runs)
        times: list[float] = []
        for index in range(sizes.compile_runs):
            began = time.perf_counter()
            project = load_project(tmp)
            times.append(time.perf_counter() - began)
            report(index + 1)
            if project.errors or len(project.plan("generated").steps) != sizes.compile_steps:
                raise BenchFailure("generated playbook: " + "; ".join(map(str, project.errors[:5])))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    warm = median_time(
        "compile", f"validate + compile {sizes.compile_steps} steps", times, 0.5, f"{len(times)}"
    )
    cold = Metric("compile", "the same, first time in the process", "s", times[0])
    return [warm, cold]
