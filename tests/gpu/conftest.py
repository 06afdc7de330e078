"""ctest integration for the GPU suites: a run in which nothing failed but something was skipped (no CUDA
device, no torch/transformers, a build without the CUDA backend) exits 77, which tests/CMakeLists.txt declares
as SKIP_RETURN_CODE, so ctest reports "skipped" instead of a pass that never touched the GPU."""

SKIPPED_EXIT_CODE = 77


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter is not None else {}
    if exitstatus == 0 and stats.get("skipped") and not stats.get("failed") and not stats.get("error"):
        session.exitstatus = SKIPPED_EXIT_CODE
