"""What ships: a wheel and an image without the simulator (deploy/: test_kubernetes.py)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import zipfile

import aiohttp
import pytest

from tests.helpers.configs import config_for
from tests.helpers.exposition import find
from tests.helpers.loopback import free_port
from tests.helpers.repository import REPO

pytestmark = pytest.mark.slow  # processes, fleets, real time: not in make check

# --- what `pip install .` installs: the exporter only; the simulator is its own distribution ----

# Runs the command line as installed, without the simulator package (a plain `pip install .`, the
# container image), or with a simulator whose `cryptography` is missing (a broken install).
BLOCKED = (
    "import sys; sys.modules.update(dict.fromkeys(sys.argv.pop(1).split(','))); "
    "from akv_exporter.cli import main; sys.exit(main())"
)


def blocked(modules: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", BLOCKED, modules, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_the_wheel_has_no_simulator_needs_no_cryptography_and_ships_the_page(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "akv_exporter", source / "akv_exporter")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp_path / "out"),
            str(source),
        ],  # offline, into tmp_path
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = (tmp_path / "out").glob("akv_exporter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [
            line.removeprefix("Requires-Dist: ")
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist: ")
        ]
    plain = [r for r in requires if "extra ==" not in r]
    assert plain and not [r for r in requires if r.startswith("cryptography")], requires
    assert not [n for n in names if "simulator" in n], sorted(names)
    shipped = {
        "akv_exporter/web/templates/status.html",
        "akv_exporter/web/templates/_parts.html",
        "akv_exporter/web/static/status.css",
        "akv_exporter/web/static/status.js",
    }
    assert shipped <= names


async def test_run_serves_without_cryptography(fake_ontap, tmp_path):
    config = config_for(tmp_path, fake_ontap.url)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BLOCKED,
        "cryptography",
        "run",
        "--config",
        str(config.path),
        "--listen",
        f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"{url}/-/ready") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert process.returncode is None, "akv-exporter run exited"
                await asyncio.sleep(0.1)
            async with http.get(f"{url}/metrics") as response:
                body = await response.read()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    assert process.returncode == 0, stderr.decode()


@pytest.mark.parametrize("command", ["demo", "simulate"])
@pytest.mark.parametrize(
    "blocked_modules",
    [
        "ontap_simulator",  # pip install . alone, and the container image
        "cryptography",  # a simulator installed without its dependency
    ],
)
def test_demo_and_simulate_without_the_extra_say_how_to_get_it(command, blocked_modules):
    process = blocked(blocked_modules, command, "--listen", "127.0.0.1:0")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert out == ""
    [line] = err.splitlines()
    assert line == (
        f"akv-exporter {command} needs the simulator, which this installation lacks:"
        " pip install ./simulator in akv-exporter's source tree (ontap-simulator;"
        " the container image never includes it)"
    )


# `python -m ontap_simulator` with one of the simulator's dependencies missing.
BLOCKED_MODULE = (
    "import runpy, sys; sys.modules.update(dict.fromkeys(sys.argv.pop(1).split(','))); "
    "runpy.run_module('ontap_simulator', run_name='__main__', alter_sys=True)"
)


@pytest.mark.parametrize("missing", ["cryptography", "aiohttp", "yaml", "akv_exporter"])
def test_python_m_ontap_simulator_without_a_dependency_says_so_in_one_line(missing):
    process = subprocess.run(
        [sys.executable, "-c", BLOCKED_MODULE, missing, "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 2, process
    assert process.stdout == ""
    assert process.stderr == (
        f"python -m ontap_simulator needs {missing}, which is not installed: pip install"
        " ./simulator (from akv-exporter's source tree) installs the simulator with its"
        " dependencies\n"
    )


def test_the_container_image_copies_only_the_exporter_and_deletes_nothing():
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    copies = [line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    sources = {source for copy in copies for source in copy if not source.startswith("--")}
    assert "simulator" not in sources, sources
    assert not [line for line in dockerfile.splitlines() if "rm -r" in line and "simulator" in line]


def test_the_simulator_distribution_is_released_with_the_exporter():
    import tomllib

    from akv_exporter import __version__

    simulator = tomllib.loads((REPO / "simulator/pyproject.toml").read_text(encoding="utf-8"))
    assert simulator["project"]["version"] == __version__


def test_the_version_the_changelog_and_the_image_tags_agree():
    import re

    from akv_exporter import __version__

    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    # The top released entry: "## X.Y.Z - date" below "## Unreleased", if there is one.
    released = re.findall(r"^## (\d+\.\d+\.\d+)\b", changelog, flags=re.MULTILINE)
    assert released, "CHANGELOG.md has no released entry (## X.Y.Z - YYYY-MM-DD)"
    assert released[0] == __version__, (released[0], __version__)

    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.findall(r'org\.opencontainers\.image\.version="([^"]+)"', dockerfile) == [__version__]

    # Every image tag a user is told to build or deploy: manifests and documentation.
    tags = {}
    for path in [
        *sorted((REPO / "deploy").rglob("*.yaml")),
        REPO / "README.md",
        *sorted((REPO / "docs").glob("*.md")),
    ]:
        for tag in re.findall(
            r"\bakv-exporter:(\d+\.\d+\.\d+)\b", path.read_text(encoding="utf-8")
        ):
            tags.setdefault(tag, []).append(str(path.relative_to(REPO)))
    assert tags, "no akv-exporter:X.Y.Z image tag found in deploy/, README.md or docs/"
    assert set(tags) == {__version__}, tags
