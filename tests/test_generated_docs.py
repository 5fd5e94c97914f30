"""The reference pages derived from the code are up to date (docs/generate.py, `make generated`)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.repository import REPO


def test_generated_reference_pages_are_up_to_date():
    # docs/metrics.md from the metric catalogue, docs/status.schema.json from the document's model.
    result = subprocess.run(
        [sys.executable, str(REPO / "docs" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
