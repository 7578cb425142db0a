"""scripts/dependency_audit.py: never a clean verdict for packages that were not checked."""

from __future__ import annotations

import json

import pytest

from scripts.dependency_audit import UNREACHABLE, outcome_from_report, verdict


def _report(*dependencies: dict) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


SKIPPED = {"name": "django", "skip_reason": "Dependency not found on PyPI and could not be audited: django (5.2)"}
CLEAN = {"name": "celery", "version": "5.5.3", "vulns": []}
VULNERABLE = {
    "name": "django",
    "version": "5.2.0",
    "vulns": [{"id": "PYSEC-2025-1", "fix_versions": ["5.2.1"], "aliases": [], "description": ""}],
}


def test_a_report_that_skipped_every_package_is_not_a_clean_result():
    # pip-audit itself says "No known vulnerabilities found" and exits 0 in this case.
    outcome = outcome_from_report("pypi", 0, _report(SKIPPED, {**SKIPPED, "name": "celery"}), "")

    code, lines = verdict([outcome])

    assert outcome.reachable is False
    assert code == 0
    assert lines[0] == UNREACHABLE
    assert "2 of 2 skipped" in lines[1]
    assert not any("no known vulnerabilities" in line for line in lines)


def test_a_connection_error_reads_as_unreachable():
    stderr = "Traceback ...\nrequests.exceptions.ConnectionError: Max retries exceeded with url: /v1/query\n"

    outcome = outcome_from_report("osv", 1, "", stderr)

    assert outcome.reachable is False
    assert verdict([outcome])[1][0] == UNREACHABLE


def test_any_other_pip_audit_failure_is_an_error():
    with pytest.raises(RuntimeError, match="without a report"):
        outcome_from_report("pypi", 2, "", "error: unrecognized arguments\n")


def test_a_known_vulnerability_fails_the_build():
    outcome = outcome_from_report("pypi", 1, _report(VULNERABLE, CLEAN), "")

    code, lines = verdict([outcome])

    assert code == 1
    assert "2 dependencies audited" in lines[0]
    assert lines[1] == "  django 5.2.0: PYSEC-2025-1 (fixed in: 5.2.1)"


def test_a_clean_audit_names_the_packages_it_could_not_check():
    outcome = outcome_from_report("pypi", 0, _report(CLEAN, {**SKIPPED, "name": "local-weights"}), "")

    code, lines = verdict([outcome])

    assert code == 0
    assert lines == [
        "pip-audit (pypi): 1 dependencies audited; 1 NOT audited (unknown to the service): local-weights; "
        "no known vulnerabilities"
    ]


def test_the_last_service_tried_decides():
    down = outcome_from_report("pypi", 0, _report(SKIPPED), "")
    up = outcome_from_report("osv", 0, _report(CLEAN), "")

    assert verdict([down, up]) == (0, ["pip-audit (osv): 1 dependencies audited; no known vulnerabilities"])
