"""`make test` runs on pytest-xdist workers: a module's shared fixture is still built once.

tests/conftest.py puts the tests that share a module-scoped fixture into one xdist_group, and
`--dist loadgroup` (pyproject.toml) sends a group to one worker. That grouping failed silently
once (pytest 9.2 with pytest-xdist 3.8, pytest-dev/pytest-xdist#1386): every worker then built
every fleet and Prometheus again. This runs a small suite the same way and counts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.helpers.repository import REPO

pytestmark = pytest.mark.slow  # two worker processes

SHARING = """
import os
from pathlib import Path

import pytest

OUT = Path(os.environ["SUITE_OUT"])


@pytest.fixture(scope="module")
def shared():
    with (OUT / "{name}.built").open("a") as built:
        built.write("x")


@pytest.mark.parametrize("n", range(6))
def test_reads_the_shared_fixture(shared, n):
    with (OUT / "{name}.workers").open("a") as workers:
        workers.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
"""

ALONE = """
import os
from pathlib import Path

import pytest


@pytest.mark.parametrize("n", range(12))
def test_alone(n):
    out = Path(os.environ["SUITE_OUT"]) / "alone.workers"
    with out.open("a") as workers:
        workers.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
"""


def test_tests_sharing_a_module_fixture_run_on_one_worker_which_builds_it_once(tmp_path):
    suite, out = tmp_path / "suite", tmp_path / "out"
    suite.mkdir()
    out.mkdir()
    shutil.copy(REPO / "tests" / "conftest.py", suite / "conftest.py")
    for name in ("first", "second"):
        (suite / f"test_{name}.py").write_text(textwrap.dedent(SHARING).format(name=name))
    (suite / "test_alone.py").write_text(ALONE)
    # The project's own settings (addopts: --dist loadgroup) on the small suite.
    settings = ("-c", str(REPO / "pyproject.toml"), "--rootdir", str(suite), str(suite))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", *settings],
        env={**os.environ, "SUITE_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("first", "second"):
        assert (out / f"{name}.built").read_text() == "x", f"test_{name}.py built it twice"
        workers = (out / f"{name}.workers").read_text().split()
        assert len(workers) == 6 and len(set(workers)) == 1, workers
    # Both workers took tests: the groups do not put the whole suite on one. (Which worker
    # takes which test is the scheduler's choice, so no finer spread is asserted.)
    used = {
        worker
        for name in ("first", "second", "alone")
        for worker in (out / f"{name}.workers").read_text().split()
    }
    assert len(used) == 2, used
