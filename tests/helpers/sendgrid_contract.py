"""The SendGrid mail-send contract the tests carry, and how it is cut from the official file.

``sendgrid_contract.json`` beside this module is what the SendGrid stand-in enforces: the parts
of Twilio SendGrid's own OpenAPI 3.1 description of the v3 Mail API (``tsg_mail_v3.json`` from
``github.com/twilio/sendgrid-oai``, file ``spec/json/tsg_mail_v3.json``, MIT licensed) that
describe ``POST /v3/mail/send``: the operation itself (its ``Content-Encoding`` parameter,
request body schema and examples, responses and status codes), the bearer-token security
scheme, and every component those ``$ref``, copied unchanged. Everything else (the batch
endpoints, unreferenced components, tags) is left out. A top-level ``x-extract`` member says
where the file came from, carries the licence notice and names the command that rebuilds it.

Carrying the extract means the suite runs on any machine; ``tests/test_sendgrid_standin.py``
re-extracts it from the official file and compares whenever that file is present (CI keeps it
in ``shared/specs/sendgrid/`` beside the repository, or ``$SENDGRID_OPENAPI_SPEC`` names it),
so the copy cannot drift from SendGrid's description unnoticed.

Regenerate (writes ``sendgrid_contract.json``)::

    python -m tests.helpers.sendgrid_contract --from ../shared/specs/sendgrid/tsg_mail_v3.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

CONTRACT_PATH = Path(__file__).with_name("sendgrid_contract.json")
"""The committed extract the stand-in loads."""

OFFICIAL_ENV_VAR = "SENDGRID_OPENAPI_SPEC"
"""Names the official ``tsg_mail_v3.json``; when set, the file must exist."""

OFFICIAL_RELATIVE_PATH = Path("shared", "specs", "sendgrid", "tsg_mail_v3.json")
"""Where the official file lives relative to the directory holding the repository checkout."""

MAIL_SEND_PATH = "/v3/mail/send"

REGENERATE_COMMAND = (
    "python -m tests.helpers.sendgrid_contract --from ../shared/specs/sendgrid/tsg_mail_v3.json"
)

_COMPONENTS_PREFIX = "#/components/"


def find_official_spec() -> Path | None:
    """Return the official OpenAPI file if this machine has it, else ``None``.

    ``$SENDGRID_OPENAPI_SPEC`` wins (and a missing file there is an error, not a skip: whoever
    set it expects the check to run). Otherwise ``<repo>/../shared/specs/sendgrid/
    tsg_mail_v3.json``, then the same path under any directory further up (a worktree).
    """
    override = os.environ.get(OFFICIAL_ENV_VAR)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{OFFICIAL_ENV_VAR}={override} names no file")
        return path
    repo = Path(__file__).resolve().parents[2]
    for directory in repo.parents:
        candidate = directory / OFFICIAL_RELATIVE_PATH
        if candidate.is_file():
            return candidate
    return None


def extract_contract(document: Mapping[str, Any], license_text: str) -> dict[str, Any]:
    """Cut the mail-send contract out of the official OpenAPI ``document``.

    Keeps ``openapi``, ``info``, the ``POST /v3/mail/send`` operation, the security it needs
    and the transitive closure of ``#/components/...`` references from them, each copied
    unchanged and in the source's order, so every ``$ref`` resolves inside the result exactly as
    it did in the source. ``license_text`` is the notice shipped with the official file.
    """
    operation = document["paths"][MAIL_SEND_PATH]["post"]
    security = operation.get("security", document.get("security", []))
    components: Mapping[str, Mapping[str, Any]] = document.get("components", {})

    needed: set[tuple[str, str]] = {
        ("securitySchemes", name) for requirement in security for name in requirement
    }
    pending = list(_component_refs(operation))
    while pending:
        section, name = pending.pop()
        if (section, name) in needed:
            continue
        if name not in components.get(section, {}):
            raise KeyError(f"#/components/{section}/{name} is referenced but not defined")
        needed.add((section, name))
        pending.extend(_component_refs(components[section][name]))

    kept = {
        section: {name: value for name, value in entries.items() if (section, name) in needed}
        for section, entries in components.items()
    }
    info = document.get("info", {})
    return copy.deepcopy(
        {
            "x-extract": {
                "what": (
                    "POST /v3/mail/send of Twilio SendGrid's official OpenAPI description of "
                    "the v3 Mail API (operation, security, and every component it references), "
                    "copied unchanged; what tests/helpers/sendgrid_standin.py enforces"
                ),
                "source": (
                    "tsg_mail_v3.json from github.com/twilio/sendgrid-oai "
                    "(spec/json/tsg_mail_v3.json), kept beside the repository as "
                    f"{OFFICIAL_RELATIVE_PATH.as_posix()}"
                ),
                "source_version": f"{info.get('title', '?')} {info.get('version', '?')}",
                "regenerate": REGENERATE_COMMAND,
                "checked_by": (
                    "tests/test_sendgrid_standin.py::"
                    "test_committed_contract_agrees_with_the_official_description"
                ),
                "license": license_text.strip().splitlines(),
            },
            "openapi": document["openapi"],
            "info": info,
            "security": security,
            "paths": {MAIL_SEND_PATH: {"post": operation}},
            "components": {section: entries for section, entries in kept.items() if entries},
        }
    )


def extract_from_file(official: Path) -> dict[str, Any]:
    """Extract the contract from ``official``, reading the ``LICENSE`` that sits beside it."""
    document = json.loads(official.read_text(encoding="utf-8"))
    license_text = official.with_name("LICENSE").read_text(encoding="utf-8")
    return extract_contract(document, license_text)


def render(contract: Mapping[str, Any]) -> str:
    """The contract as committed: two-space JSON, non-ASCII kept, trailing newline."""
    return json.dumps(contract, indent=2, ensure_ascii=False) + "\n"


def load_committed() -> dict[str, Any]:
    """The committed contract, parsed."""
    contract: dict[str, Any] = json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))
    return contract


def _component_refs(node: Any) -> Iterator[tuple[str, str]]:
    """Every ``(section, name)`` a ``$ref`` inside ``node`` points into, depth first."""
    if isinstance(node, list):
        for item in node:
            yield from _component_refs(item)
    elif isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith(_COMPONENTS_PREFIX):
                raise ValueError(f"cannot carry {ref!r}: only #/components/ references")
            section, _, rest = ref.removeprefix(_COMPONENTS_PREFIX).partition("/")
            yield section, rest.split("/", 1)[0].replace("~1", "/").replace("~0", "~")
        for value in node.values():
            yield from _component_refs(value)


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.helpers.sendgrid_contract --from PATH [--out PATH]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--from",
        dest="official",
        type=Path,
        default=None,
        help=f"the official tsg_mail_v3.json (default: ${OFFICIAL_ENV_VAR} or ../shared/...)",
    )
    parser.add_argument("--out", type=Path, default=CONTRACT_PATH, help="where to write")
    args = parser.parse_args(argv)
    official = args.official or find_official_spec()
    if official is None:
        parser.error(f"official file not found; pass --from or set {OFFICIAL_ENV_VAR}")
    args.out.write_text(render(extract_from_file(official)), encoding="utf-8")
    print(f"wrote {args.out} from {official}")


if __name__ == "__main__":
    main()
