"""The repository and the binaries the tests drive."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def require_binary(name: str, package: str) -> str:
    """Return the path of ``name``; fail (never skip) when missing, naming the Debian package."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {package} (make test does this)")
    return path
