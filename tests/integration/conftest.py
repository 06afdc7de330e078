"""Fixtures for the integration suite; they live in sluice_harness.py so that tests/e2e shares them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sluice_harness import (  # noqa: E402,F401  (pytest finds fixtures and hooks by name here)
    _watchdog,
    backup,
    certs,
    mock_factory,
    primary,
    pytest_runtest_makereport,
    refused_url,
    sluice_factory,
)
