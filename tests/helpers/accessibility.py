"""The accessibility check of the browser tests: axe-core run in the page under test.

axe-core is vendored in `tests/helpers/axe/` (pinned, with its license), so the check needs no
network. `serious_violations` returns the rules a page breaks at impact "serious" or
"critical", each with the elements that break it, for an assertion message people can act on.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from selenium.webdriver.remote.webdriver import WebDriver

AXE = Path(__file__).resolve().parent / "axe" / "axe.min.js"
AXE_VERSION = "4.14.1"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
BLOCKING = ("serious", "critical")


@cache
def _axe_source() -> str:
    data = AXE.read_bytes()
    if hashlib.sha256(data).hexdigest() != AXE_SHA256:
        raise RuntimeError(f"{AXE} is not the pinned axe-core {AXE_VERSION}")
    return data.decode("utf-8")


def serious_violations(driver: WebDriver) -> list[str]:
    """Run axe-core (WCAG 2.1 A and AA rules, best practices) on the current page; describe
    each serious or critical violation as 'rule: help (selectors)'."""
    driver.execute_script(_axe_source())
    result: dict[str, Any] = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]})
          .then(r => done({violations: r.violations}))
          .catch(e => done({error: String(e)}));
        """
    )
    if "error" in result:
        raise RuntimeError(f"axe-core failed: {result['error']}")
    found = []
    for violation in result["violations"]:
        if violation.get("impact") in BLOCKING:
            targets = [", ".join(map(str, n.get("target", []))) for n in violation["nodes"][:5]]
            found.append(f"{violation['id']}: {violation['help']} ({'; '.join(targets)})")
    return found
