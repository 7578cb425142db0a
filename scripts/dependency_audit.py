"""`make lint`'s dependency audit: pip-audit over this virtualenv, honest about what it checked.

pip-audit asks a vulnerability service (PyPI's JSON API, then OSV) about every installed
package. Where neither can be reached, pip-audit still prints "No known vulnerabilities
found" and exits 0 after skipping every package; this script reads its JSON report instead
and then says plainly that nothing was audited, without failing the build. Where a service
answers, any known vulnerability fails the build (exit 1).

Run: ``.venv/bin/python scripts/dependency_audit.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

SERVICES = ("pypi", "osv")  # pip-audit's --vulnerability-service values, tried in this order
SOCKET_TIMEOUT = 10  # seconds per request: a blocked host fails fast instead of hanging
RUN_TIMEOUT = 90  # seconds per service: ~200 packages take 10-40 s where the service answers
# What a failed connection looks like in pip-audit's traceback (requests / urllib3 errors).
NETWORK_ERRORS = (
    "ConnectionError",
    "NameResolutionError",
    "Max retries exceeded",
    "Timeout",
    "timed out",
    "SSLError",
    "ProxyError",
)
UNREACHABLE = "pip-audit: vulnerability database unreachable from this machine; dependencies NOT audited"


@dataclass
class Outcome:
    """What one pip-audit run established."""

    service: str
    reachable: bool
    why: str = ""  # for an unreachable service: what happened
    audited: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def vulnerable(self) -> list[dict[str, Any]]:
        return [dep for dep in self.audited if dep.get("vulns")]


def outcome_from_report(service: str, returncode: int, stdout: str, stderr: str) -> Outcome:
    """Classifies one pip-audit run from its exit code and ``--format json`` output.

    A run that skipped every package audited nothing: the service is treated as unreachable
    (PyPI's JSON API answering 404 for everything through a mirror reads this way).
    """
    try:
        report = json.loads(stdout)
    except ValueError:
        if any(marker in stderr for marker in NETWORK_ERRORS):
            last = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
            return Outcome(service, reachable=False, why=last[:200])
        raise RuntimeError(f"pip-audit failed (exit {returncode}) without a report:\n{stderr}") from None
    dependencies = report.get("dependencies", [])
    audited = [dep for dep in dependencies if "skip_reason" not in dep]
    skipped = [dep for dep in dependencies if "skip_reason" in dep]
    if not audited:
        why = skipped[0]["skip_reason"] if skipped else "no dependency was reported"
        return Outcome(service, reachable=False, why=f"{len(skipped)} of {len(dependencies)} skipped, e.g. {why}")
    return Outcome(service, reachable=True, audited=audited, skipped=skipped)


def run_pip_audit(service: str) -> Outcome:
    argv = [
        sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off",
        "--vulnerability-service", service, "--timeout", str(SOCKET_TIMEOUT),
    ]
    try:
        # Fixed argv: this interpreter and constant options, no shell.
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        return Outcome(service, reachable=False, why=f"no answer within {RUN_TIMEOUT} s")
    return outcome_from_report(service, done.returncode, done.stdout, done.stderr)


def verdict(outcomes: list[Outcome]) -> tuple[int, list[str]]:
    """The exit code and the lines to print, from the runs made (the last one decides)."""
    last = outcomes[-1]
    if not last.reachable:
        tried = "; ".join(f"{o.service}: {o.why}" for o in outcomes)
        return 0, [UNREACHABLE, f"  ({tried})"]
    lines = []
    for dep in last.vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
            lines.append(f"  {dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fixes})")
    skipped = ""
    if last.skipped:
        names = ", ".join(sorted(dep["name"] for dep in last.skipped))
        skipped = f"; {len(last.skipped)} NOT audited (unknown to the service): {names}"
    summary = f"pip-audit ({last.service}): {len(last.audited)} dependencies audited{skipped}"
    if lines:
        return 1, [f"{summary}; {len(lines)} known vulnerabilities:", *lines]
    return 0, [f"{summary}; no known vulnerabilities"]


def main() -> int:
    outcomes: list[Outcome] = []
    for service in SERVICES:
        outcomes.append(run_pip_audit(service))
        if outcomes[-1].reachable:
            break
    code, lines = verdict(outcomes)
    print("\n".join(lines))  # noqa: T201 - a command-line report
    return code


if __name__ == "__main__":
    sys.exit(main())
