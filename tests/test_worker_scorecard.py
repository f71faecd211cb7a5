"""`playbook worker --root`: the worker scores `update` steps with the project's
``health.yaml``, and says so when that file does not validate (docs/deploy.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.language.health import Scorecard
from tests.helpers.paths import PLAYBOOKS


@pytest.fixture
def scorecards(monkeypatch: pytest.MonkeyPatch) -> list[Scorecard | None]:
    """The scorecard each `playbook worker` would have run with (no worker is started)."""
    import worker

    given: list[Scorecard | None] = []

    async def run_worker(settings: object = None, scorecard: Scorecard | None = None) -> None:
        given.append(scorecard)

    monkeypatch.setattr(worker, "run_worker", run_worker)
    # The command leaves with os._exit once its worker has stopped: not from inside pytest.
    monkeypatch.setattr("engine.cli.stack._exit_after_clean_shutdown", lambda: None)
    return given


def test_the_worker_scores_with_the_projects_scorecard(
    scorecards: list[Scorecard | None],
) -> None:
    result = CliRunner().invoke(main, ["worker", "--root", str(PLAYBOOKS)])
    assert result.exit_code == 0, result.output
    (card,) = scorecards
    assert card is not None and "nps" in card.measures


def test_a_scorecard_that_does_not_validate_is_reported_and_left_out(
    scorecards: list[Scorecard | None], tmp_path: Path
) -> None:
    (tmp_path / "health.yaml").write_text("measures:\n  nps: {field: attributes.nps}\n")
    result = CliRunner().invoke(main, ["worker", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "health.yaml:" in result.output and "not valid" in result.output, result.output
    assert scorecards == [None]


def test_without_a_scorecard_the_worker_runs_without_one(
    scorecards: list[Scorecard | None], tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, ["worker", "--root", str(tmp_path)])
    assert (result.exit_code, result.output) == (0, "")
    assert scorecards == [None]
