"""skip_policy.py - a pytest plugin: a skipped test is a failure unless its reason is allowed.

A test that is skipped on a fresh machine is a test that does not exist, and a green run hides
it. scripts/test.sh loads this plugin (-p skip_policy) for every pytest suite, so that a skip
counts as a failure unless its reason starts with one of ALLOWED_REASONS: reasons that truly
hold on CI (a clean clone, as root, every package of scripts/deps.sh installed). A missing
module (importorskip), an async test without its plugin, or a condition that "should not happen
on CI" fails the run, with the skip's reason in the report.

Adding a reason: put its prefix below with why it holds on CI; then `pytest.skip("<prefix>...")`.
"""
import pytest

ALLOWED_REASONS = (
    # Run by hand from a checkout without a meson build tree (the package found elsewhere):
    # scripts/test.sh always runs from a build directory, so CI never takes this skip.
    "not a meson build tree:",
)


def _allowed(reason):
    text = reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    return any(text.startswith(prefix) for prefix in ALLOWED_REASONS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if _allowed(reason):
        return
    report.outcome = "failed"
    report.longrepr = (f"skipped without an allowed reason (tests/pytest_plugins/skip_policy.py): "
                       f"{reason}")
