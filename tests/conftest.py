"""Project-wide test settings.

With SEALOS_NO_SKIP=1 (CI sets it) a skipped test counts as a failure: the root-only and VM tests
must really run there, not quietly step aside. That covers skips while a test runs (a skip in
the test or its fixtures, a skip mark) and skips while a module is collected
(`pytest.importorskip`, `pytest.skip(..., allow_module_level=True)`): the latter become
collection errors, which fail the run. Expected failures (xfail) stay what they are.
"""

from __future__ import annotations

import os

import pytest


def _no_skip() -> bool:
    return os.environ.get("SEALOS_NO_SKIP") == "1"


def _why(longrepr: object) -> str:
    # A skip's longrepr is (path, line, "Skipped: reason").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return f"{longrepr[2]} ({longrepr[0]}:{longrepr[1]})"
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _no_skip() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under SEALOS_NO_SKIP=1: {_why(report.longrepr)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if _no_skip() and report.skipped:
        report.outcome = "failed"
        report.longrepr = (
            f"{collector.nodeid or collector.name} skipped while collected, "
            f"under SEALOS_NO_SKIP=1: {_why(report.longrepr)}"
        )
