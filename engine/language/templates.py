"""Email templates: files under ``playbooks/templates/``, checked at compile time.

A template ``onboarding/welcome`` is the file ``onboarding/welcome.html``, which starts
with a front matter block giving the subject (and optionally a preheader)::

    ---
    subject: Welcome to Acme, {{ contact.first_name }}
    preheader: Three steps to your first dashboard
    ---
    {% extends "_layout.html" %}
    ...

An optional ``onboarding/welcome.txt`` next to it is the plain-text part; without one, the
text part is derived from the rendered HTML. ``onboarding/welcome.ko.html`` (and ``.ko.txt``)
beside it is the Korean version, with its own front matter, chosen for contacts whose locale
is Korean (docs/delivery.md); every locale version is checked like the template itself.
Layouts and partials (``{% extends %}``, ``{% include %}``) are followed, and every file
used is copied into the compiled plan, so rendering never reads the disk and an edited
template means a new plan version.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, Environment, Template, TemplateNotFound, meta
from jinja2.exceptions import TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SecurityError

from engine.errors import RenderBudgetExceeded, TemplateRenderError
from engine.language.diagnostics import Diagnostic
from engine.language.expressions import SourceTree, check_names, check_names_located
from engine.language.jinja_env import (
    failing_line,
    make_environment,
    render_capped,
    shared_environment,
)
from engine.language.unbounded import unbounded_constructs, unbounded_in_text

FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<body>.*?)\n---[ \t]*\n", re.DOTALL)
FRONT_KEYS = ("subject", "preheader")
# A locale version's tag in its file name: welcome.ko.html, welcome.pt-BR.html.
LOCALE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
EMAIL_NAMES = (
    "locale",
    "customer",
    "contact",
    "owner",
    "milestones",
    "health",
    "now",
    "today",
    "playbook",
    "step",
    "unsubscribe_url",
    "preheader",
    "event",
    "days",
    "hours",
    "weeks",
    "days_until",
    "days_since",
    "date",
)


@dataclass
class EmailTemplate:
    """A loaded email template: its front matter and the files it needs."""

    name: str
    subject: str
    preheader: str | None
    html_file: str
    text_file: str | None
    sources: dict[str, str] = field(default_factory=dict)
    locales: dict[str, EmailTemplate] = field(default_factory=dict)


def split_front_matter(source: str) -> tuple[dict[str, tuple[str, int]], str, int]:
    """(keys with their line numbers, body, line number where the body starts)."""
    match = FRONT_MATTER.match(source)
    if not match:
        return {}, source, 1
    keys: dict[str, tuple[str, int]] = {}
    for offset, line in enumerate(match["body"].splitlines(), start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        keys[key.strip() if sep else line.strip()] = (value if sep else "", offset)
    body = source[match.end() :]
    return keys, body, match["body"].count("\n") + 4


def strip_front_matter(source: str) -> str:
    """The template body with its front matter replaced by blank lines (keeps line numbers)."""
    match = FRONT_MATTER.match(source)
    if not match:
        return source
    return "\n" * match.group(0).count("\n") + source[match.end() :]


class TemplateLibrary:
    """Reads and checks templates under one directory, caching what it has read."""

    def __init__(self, root: Path, display_root: str | None = None) -> None:
        self.root = root
        self.display_root = display_root or str(root)
        self._cache: dict[str, tuple[EmailTemplate | None, list[Diagnostic]]] = {}

    def display(self, file: str) -> str:
        return f"{self.display_root.rstrip('/')}/{file}"

    def available(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root).with_suffix(""))
            for p in self.root.rglob("*.html")
            if not p.name.startswith("_") and "." not in p.stem  # not a locale version
        )

    def load(self, name: str) -> tuple[EmailTemplate | None, list[Diagnostic]]:
        if name not in self._cache:
            template, diags = self._load(name)
            if template is not None:
                for locale in self.locales_of(name):
                    version, more = self._load(f"{name}.{locale}")
                    diags = [*diags, *more]
                    if version is not None:
                        template.locales[locale] = version
                        template.sources.update(version.sources)
            self._cache[name] = (template, diags)
        return self._cache[name]

    def locales_of(self, name: str) -> list[str]:
        """The locale tags of the versions of template ``name`` (welcome.ko.html: 'ko')."""
        base = self.root / name
        if not base.parent.is_dir():
            return []
        prefix = f"{base.name}."
        tags = (
            p.name[len(prefix) : -len(".html")]
            for p in base.parent.glob(f"{base.name}.*.html")
            if p.name.startswith(prefix)
        )
        return sorted(tag for tag in tags if LOCALE_TAG.match(tag))

    def _read(self, file: str) -> str | None:
        path = self.root / file
        try:
            resolved = path.resolve()
            if self.root.resolve() not in resolved.parents:
                return None
            return resolved.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def _load(self, name: str) -> tuple[EmailTemplate | None, list[Diagnostic]]:
        html_file = f"{name}.html"
        source = self._read(html_file)
        if source is None:
            return None, []
        diags: list[Diagnostic] = []
        front, _, _ = split_front_matter(source)
        for key, (_, line) in front.items():
            if key not in FRONT_KEYS:
                diags.append(
                    Diagnostic(
                        self.display(html_file),
                        line,
                        1,
                        f"unknown front matter key '{key}'; expected {', '.join(FRONT_KEYS)}",
                    )
                )
        subject = front.get("subject", ("", 1))
        if not subject[0]:
            diags.append(
                Diagnostic(
                    self.display(html_file),
                    1,
                    1,
                    "template has no subject: start it with '---', 'subject: ...', '---'",
                )
            )
        preheader = front.get("preheader")
        text_file = f"{name}.txt" if self._read(f"{name}.txt") is not None else None
        template = EmailTemplate(
            name, subject[0], preheader[0] if preheader else None, html_file, text_file
        )
        for file in filter(None, (html_file, text_file)):
            diags += self._collect(file, template.sources)
        for text, line in (subject, preheader or ("", 1)):
            diags += [
                Diagnostic(self.display(html_file), line, 1, msg)
                for msg in check_text(text, EMAIL_NAMES)
            ]
            diags += [
                Diagnostic(self.display(html_file), line, 1, msg, severity="warning")
                for _, msg in unbounded_in_text(text)
            ]
        return template, diags

    def _collect(self, file: str, sources: dict[str, str]) -> list[Diagnostic]:
        """Load ``file`` and everything it extends or includes into ``sources``."""
        if file in sources:
            return []
        source = self._read(file)
        if source is None:
            return [Diagnostic(self.display(file), 1, 1, f"template file '{file}' not found")]
        body = strip_front_matter(source)
        sources[file] = body
        env = shared_environment(autoescape=file.endswith(".html"))
        try:
            tree = SourceTree.walk(env.parse(body), body)
        except TemplateSyntaxError as exc:
            return [
                Diagnostic(
                    self.display(file),
                    exc.lineno or 1,
                    1,
                    f"template does not parse: {exc.message}",
                )
            ]
        # Before the name checks: Jinja's analysis there may fold constants in the tree.
        diags = [
            Diagnostic(self.display(file), line, 1, msg, severity="warning")
            for line, msg in unbounded_constructs(tree.tree)
        ]
        diags += [
            Diagnostic(self.display(file), line, 1, msg)
            for line, msg in check_names_located(tree, EMAIL_NAMES)
        ]
        for ref in meta.find_referenced_templates(tree.tree):
            if ref is None:
                diags.append(
                    Diagnostic(
                        self.display(file), 1, 1, "extends/include must name a fixed template file"
                    )
                )
                continue
            diags += self._collect(ref, sources)
        return diags


def check_text(source: str, allowed: tuple[str, ...]) -> list[str]:
    """Problems with a one-line text template such as a subject or a task title.

    The text is parsed once. A plain one (see `SourceTree`) cannot fail to compile, so it
    is not compiled here: rendering compiles it when it is used. Any other text is also
    compiled now, which reports unknown filters and the like as before.
    """
    if "{" not in source:
        return []  # no tag, no placeholder, no comment: plain text, nothing to check
    env = shared_environment()
    try:
        walked = SourceTree.walk(env.parse(source), source)
        if not walked.plain:
            env.from_string(source)
        return check_names(walked, allowed)
    except TemplateSyntaxError as exc:
        return [f"text does not parse: {exc.message}"]
    except TemplateError as exc:  # e.g. an undefined attribute of a constant, found folding
        return [f"text does not compile: {exc.message}"]
    except (RecursionError, SyntaxError):  # Python's limits on very deep nesting
        return [f"text too deeply nested to check ({len(source)} characters)"]


class _NamedDictLoader(BaseLoader):
    """Templates from a dict, like `DictLoader`, each carrying its file name, so a failing
    render's traceback (and so its error message) names the file and line that failed."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template not in self.mapping:
            raise TemplateNotFound(template)
        return self.mapping[template], template, lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.mapping)


# Everything a render in the sandbox can raise that is the template's fault, not the engine's.
RENDER_FAILURES = (
    TemplateError,
    SecurityError,
    RenderBudgetExceeded,
    TypeError,
    ValueError,
    ArithmeticError,
    AttributeError,
    RecursionError,
    MemoryError,
)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "macros or loops call themselves too deep (recursion); render budget"
    if isinstance(exc, MemoryError):
        return "ran out of memory (render budget)"
    return str(exc)


@functools.lru_cache(maxsize=64)
def _library_environment(autoescape: bool, sources: tuple[tuple[str, str], ...]) -> Environment:
    """One sandbox per set of template files, keeping what it compiled.

    Compiling a layout and its template cost more than rendering them, every email; a plan's
    templates never change (an edit is a new version), so their content is the key.
    """
    return make_environment(autoescape=autoescape, loader=_NamedDictLoader(dict(sources)))


@functools.lru_cache(maxsize=1024)
def _text_template(source: str) -> Template:
    """A one-line text compiled once (every subject and task title renders again and again)."""
    return shared_environment().from_string(source)


def render(sources: dict[str, str], file: str, context: dict[str, Any]) -> str:
    """Render ``file`` from ``sources`` (a compiled plan's templates) in the sandbox."""
    env = _library_environment(file.endswith(".html"), tuple(sorted(sources.items())))
    try:
        # Front matter is kept as blank lines (for error line numbers); drop them here.
        return render_capped(env.get_template(file), context).lstrip()
    except (UndefinedError, TemplateNotFound, *RENDER_FAILURES) as exc:
        where = failing_line(exc, sources)
        place = f"{file}: line {where[1]}" if where and where[0] == file else file
        if where and where[0] != file:
            place = f"{file}: {where[0]} line {where[1]}"
        raise TemplateRenderError(f"{place}: {_reason(exc)}") from None


def render_text(source: str, context: dict[str, Any]) -> str:
    """Render a one-line text template (subject, title) in the sandbox, without escaping."""
    try:
        return render_capped(_text_template(source), context).strip()
    except RENDER_FAILURES as exc:
        raise TemplateRenderError(f"{source!r}: {_reason(exc)}") from None


class _TextExtractor(HTMLParser):
    BLOCKS = {"p", "div", "br", "tr", "h1", "h2", "h3", "h4", "li", "table", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head", "title"):
            self.skip += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        if tag == "a":
            self.href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head", "title"):
            self.skip = max(0, self.skip - 1)
        if tag == "a" and self.href and not self.href.startswith("mailto:"):
            self.parts.append(f" ({self.href})")
            self.href = None
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """A readable plain-text part from an HTML body, for templates without a .txt file."""
    parser = _TextExtractor()
    parser.feed(html)
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
