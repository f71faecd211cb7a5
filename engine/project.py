"""A playbook project: a directory of playbooks with its milestones and templates.

Layout::

    playbooks/
      milestones.yaml        # milestone definitions shared by every playbook
      policies.yaml          # the delivery policy: contact budget, priorities, days off
      health.yaml            # the health scorecard (engine.language.health)
      templates/             # email templates (onboarding/welcome.html, _layout.html, ...)
      examples/              # example customers for simulation (not playbooks)
      onboarding.yaml        # one playbook per file
      renewal.yaml

`load_project` loads and compiles every playbook at once, so cross-playbook references
(``enroll:``) and duplicate ids are checked too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import PlaybookError
from engine.language.compiler import ProjectContext, compile_loaded
from engine.language.diagnostics import Diagnostic
from engine.language.health import HEALTH_FILE, Scorecard, load_scorecard
from engine.language.health import check_references as check_scorecard
from engine.language.loader import LoadedFile, load_milestones, load_playbook
from engine.language.plan import CompiledPlan, MilestonePlan
from engine.language.policy import POLICY_FILE, check_references, delivery_for, load_policy
from engine.language.schema import MilestoneDefinition
from engine.language.templates import TemplateLibrary

MILESTONES_FILE = "milestones.yaml"
TEMPLATES_DIR = "templates"
NOT_PLAYBOOKS = {MILESTONES_FILE, POLICY_FILE, HEALTH_FILE}


@dataclass
class Project:
    """Every playbook under a root, compiled, with all diagnostics."""

    root: Path
    plans: dict[str, CompiledPlan] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    milestones: dict[str, MilestonePlan] = field(default_factory=dict)
    scorecard: Scorecard | None = None

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def plan(self, playbook_id: str) -> CompiledPlan:
        """The compiled plan for ``playbook_id``; raise `PlaybookError` if it has errors."""
        if playbook_id in self.plans:
            return self.plans[playbook_id]
        if self.errors:
            raise PlaybookError(self.errors)
        known = ", ".join(sorted(self.plans)) or "none"
        raise KeyError(f"no playbook '{playbook_id}' in {self.root} (known: {known})")


def display_path(path: Path) -> str:
    """A path as users typed it: relative to the working directory when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def project_root_for(path: Path) -> Path:
    """The project a file belongs to: the nearest folder with a milestones.yaml."""
    start = path if path.is_dir() else path.parent
    for folder in (start, *start.resolve().parents):
        if (folder / MILESTONES_FILE).is_file():
            return folder
    return start


def playbook_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.glob("*.y*ml")
        if p.suffix in (".yaml", ".yml") and p.name not in NOT_PLAYBOOKS
    )


def load_context(
    root: Path,
) -> tuple[dict[str, MilestoneDefinition], TemplateLibrary, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    milestones: dict[str, MilestoneDefinition] = {}
    ms_path = root / MILESTONES_FILE
    if ms_path.is_file():
        loaded = load_milestones(ms_path, display_path(ms_path))
        diags += loaded.diagnostics
        if loaded.model is not None:
            milestones = dict(loaded.model.milestones)
    templates = TemplateLibrary(root / TEMPLATES_DIR, display_path(root / TEMPLATES_DIR))
    return milestones, templates, diags


def milestones_only(root: Path) -> Project:
    """A project with only its milestone definitions and scorecard, playbooks not compiled:
    what event routing needs besides the deployed plans (a broken playbook file does not
    matter)."""
    project = Project(root=root)
    if (root / MILESTONES_FILE).is_file():
        path = root / MILESTONES_FILE
        loaded = load_milestones(path, display_path(path))
        project.diagnostics = list(loaded.diagnostics)
        if loaded.model is not None:
            project.milestones = {
                name: MilestonePlan(name=name, **m.model_dump(exclude={"description"}))
                for name, m in loaded.model.milestones.items()
            }
    project.scorecard = scorecard_only(root)
    return project


def load_project(root: Path, only: list[Path] | None = None) -> Project:
    """Load and compile the playbooks under ``root`` (or just the files in ``only``)."""
    milestones, templates, diags = load_context(root)
    project = Project(root=root, diagnostics=list(diags))
    project.milestones = {
        name: MilestonePlan(name=name, **m.model_dump(exclude={"description"}))
        for name, m in milestones.items()
    }
    all_files = playbook_files(root)
    loaded: list[LoadedFile] = [load_playbook(p, display_path(p)) for p in all_files]
    # A file with other errors still declares its id: enroll steps naming it are not wrong.
    ids = {f.playbook_id for f in loaded if f.playbook_id is not None}
    chosen = {p.resolve() for p in only} if only else None
    if chosen is not None:
        outside = [p for p in only or [] if p.resolve() not in {f.resolve() for f in all_files}]
        loaded = [f for f, p in zip(loaded, all_files, strict=True) if p.resolve() in chosen]
        loaded += [load_playbook(p, display_path(p)) for p in outside]
    context = ProjectContext(milestones, templates, ids)
    seen: dict[str, str] = {}
    for file in loaded:
        plan, file_diags = compile_loaded(file, context)
        project.diagnostics += file_diags
        pid = file.playbook_id
        if pid is not None:
            if pid in seen:
                assert file.document is not None
                project.diagnostics.append(
                    file.document.diagnostic(
                        ("playbook",), f"playbook id '{pid}' is already used by {seen[pid]}"
                    )
                )
                continue
            seen[pid] = file.path
        if plan is not None:
            project.plans[plan.playbook] = plan
            project.files[plan.playbook] = file.path
            project.sources[plan.playbook] = file.document.text if file.document else ""
    _apply_policy(project)
    _load_scorecard(project)
    # de-duplicate template diagnostics reported once per playbook that uses the template
    project.diagnostics = sorted(set(project.diagnostics))
    return project


def _apply_policy(project: Project) -> None:
    """Check ``policies.yaml`` and give every plan the delivery policy that applies to it."""
    path = project.root / POLICY_FILE
    if not path.is_file():
        return
    loaded = load_policy(path, display_path(path))
    project.diagnostics += loaded.diagnostics + check_references(loaded, project.plans)
    if loaded.model is None:
        return
    project.plans = {
        pid: plan.model_copy(update={"delivery": delivery_for(loaded.model, plan)}).with_version()
        for pid, plan in project.plans.items()
    }


def _load_scorecard(project: Project) -> None:
    """Check ``health.yaml`` against the events the playbooks and milestones name."""
    path = project.root / HEALTH_FILE
    if not path.is_file():
        return
    loaded = load_scorecard(path, display_path(path))
    project.diagnostics += loaded.diagnostics + check_scorecard(loaded, named_events(project))
    project.scorecard = loaded.model


def scorecard_only(root: Path) -> Scorecard | None:
    """The project's scorecard, or None when it has none or it does not validate."""
    path = root / HEALTH_FILE
    return load_scorecard(path, display_path(path)).model if path.is_file() else None


def named_events(project: Project) -> set[str]:
    """Every event name the project's milestones and playbooks mention."""
    names: set[str] = set()
    for milestone in project.milestones.values():
        names |= {n for n in (milestone.event, milestone.metric) if n}
    for plan in project.plans.values():
        if plan.trigger is not None and plan.trigger.event:
            names.add(plan.trigger.event)
        if plan.exit is not None:
            names |= set(plan.exit.on_events)
        if plan.goal is not None and plan.goal.event:
            names.add(plan.goal.event)
        names |= {s.wait_for.event for s in plan.steps if s.wait_for and s.wait_for.event}
    return names


def load_paths(paths: list[Path]) -> list[Project]:
    """Projects for what the user named: folders as projects, files within their project."""
    by_root: dict[Path, list[Path] | None] = {}
    for path in paths:
        if path.is_dir():
            by_root[path] = None
        else:
            root = project_root_for(path)
            files = by_root.setdefault(root, [])
            if files is not None:
                files.append(path)
    return [load_project(root, files) for root, files in by_root.items()]


def load_plan(ref: str, default_root: Path = Path("playbooks")) -> tuple[Project, CompiledPlan]:
    """A plan by playbook id (in ``default_root``) or by file path."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.exists():
            raise FileNotFoundError(f"no such file: {ref}")
        project = load_project(project_root_for(path), [path])
        if project.errors:
            raise PlaybookError(project.errors)
        return project, next(iter(project.plans.values()))
    project = load_project(default_root)
    return project, project.plan(ref)
