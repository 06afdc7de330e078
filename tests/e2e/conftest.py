"""The e2e suite runs sluice and the TLS mock upstream with the integration suite's harness."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

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
