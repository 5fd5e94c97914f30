"""The systemd unit and docs/systemd.md's install steps, followed as written as far as a machine
without systemd allows: the files' modes, the unit's ExecStartPre and ExecStart as an
unprivileged user with only the environment file's variables (the service answers /-/ready and
exits 0 on SIGTERM), `systemd-analyze verify`, and the documented `systemd-analyze security`
rating.

The steps install into /opt, /etc and /usr/local. They run in a private mount namespace whose
/etc, /opt, /usr/local and /var are overlays with their upper layers in tmp_path, and a network
namespace of their own: the machine's own directories are never written, and the example
configuration's port 9877 is free. `pip install .` runs as written, with pip pointed (PIP_NO_INDEX,
PIP_FIND_LINKS) at a wheelhouse of the project's requirements that this machine keeps, filled
from the package index on the first run: a test of the steps, not of the index.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.helpers.repository import REPO

UNIT = REPO / "deploy/systemd/akv-exporter.service"
DOC = REPO / "docs/systemd.md"
IN_CI = os.environ.get("CI") == "true"
# A user systemd's DynamicUser= could pick (61184-65519), with no file of its own anywhere.
DYNAMIC_UID = 61999
OVERLAID = ("/etc", "/opt", "/usr/local", "/var")
# The PATH systemd gives a service (systemd.exec(5), "Environment Variables in Spawned Processes").
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WHEELHOUSES = Path("/var/cache/akv-exporter-tests/wheels")


def wheelhouse() -> Path:
    """Return a directory of wheels of everything `pip install .` needs, made once per set of
    requirements (pyproject.toml's dependencies and build requirements)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    requirements = sorted(project["project"]["dependencies"] + project["build-system"]["requires"])
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:16]
    directory = WHEELHOUSES / key
    WHEELHOUSES.mkdir(parents=True, exist_ok=True)
    with (WHEELHOUSES / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another checkout's run may be filling it
        if not (directory / ".complete").exists():
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "-q",
                    "--wheel-dir",
                    str(directory),
                    *requirements,
                ],
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert result.returncode == 0, result.stderr[-3000:]
            (directory / ".complete").touch()
    return directory


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is not installed: apt-get install systemd (make test does)")
    return path


def install_steps() -> list[str]:
    """Return the shell block under "## Install" in docs/systemd.md, one command a line."""
    section = DOC.read_text(encoding="utf-8").split("## Install", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "docs/systemd.md has no sh block under ## Install"
    return [line for line in block.group(1).splitlines() if line.strip()]


def unit_values(key: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if line.startswith(f"{key}=")
    ]


@pytest.mark.slow
def test_the_documented_install_steps_give_a_service_that_can_start(tmp_path):
    analyze = systemd_analyze()
    tools = ("unshare", "setpriv", "ip")
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in tools):
        if IN_CI:
            pytest.fail("needs root, unshare and setpriv (util-linux) and ip (iproute2)")
        pytest.skip("needs root, unshare, setpriv and ip for private mount and network namespaces")
    steps = install_steps()
    # No systemd runs here: everything but these two lines runs as written.
    runnable = [step for step in steps if not step.startswith("systemctl ")]
    assert [s for s in steps if s not in runnable] == [
        "systemctl daemon-reload",
        "systemctl enable --now akv-exporter",
    ]
    # "In a copy of akv-exporter's source tree": pip builds in it.
    source = tmp_path / "source"
    source.mkdir()
    for part in ("pyproject.toml", "README.md", "akv_exporter", "config", "deploy", "docs"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy
        copy(REPO / part, source / part)
    out = tmp_path / "out"
    out.mkdir()
    mounts = []
    for index, directory in enumerate(OVERLAID):
        upper, work = tmp_path / f"upper{index}", tmp_path / f"work{index}"
        upper.mkdir()
        work.mkdir()
        mounts.append(
            f"mount -t overlay overlay -o lowerdir={directory},upperdir={upper},workdir={work}"
            f" {directory}"
        )
    unit = "/etc/systemd/system/akv-exporter.service"
    [start_pre] = unit_values("ExecStartPre")
    [start] = unit_values("ExecStart")
    environment = unit_values("Environment")
    [state_directory] = unit_values("StateDirectory")
    [state_mode] = unit_values("StateDirectoryMode")
    [umask] = unit_values("UMask")
    example = yaml.safe_load((REPO / "config/akv-exporter.example.yml").read_text("utf-8"))
    port = int(example["web"]["listen"].rpartition(":")[2])
    documentation = [value.removeprefix("file:") for value in unit_values("Documentation")]
    as_dynamic_user = f"setpriv --reuid={DYNAMIC_UID} --regid={DYNAMIC_UID} --clear-groups"

    def as_service(command: str) -> str:
        """Return ``command`` as systemd runs it: root reads the EnvironmentFile; the dynamic
        user runs with its variables, the unit's Environment=, UMask= and what systemd sets
        (HOME=/ for a dynamic user, systemd.exec(5)), in /."""
        return (
            f"(set -a; . /etc/akv-exporter/env; set +a; cd /; umask {umask};"
            f" exec env -i HOME=/ PATH={SYSTEMD_PATH} {' '.join(map(shlex.quote, environment))}"
            f' ONTAP_PASSWORD="$ONTAP_PASSWORD" {as_dynamic_user} {command})'
        )

    python = "/opt/akv-exporter/bin/python"
    ready = (
        "import time, urllib.request\n"
        "for _ in range(600):\n"
        "    try:\n"
        f"        urllib.request.urlopen('http://127.0.0.1:{port}/-/ready', timeout=2)\n"
        f"        print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(0.1)\n"
        "else:\n"
        "    raise SystemExit('not ready in 60 s')\n"
    )
    o = shlex.quote(str(out))
    script = "\n".join(
        [
            "set -e",
            *mounts,
            f"cd {shlex.quote(str(source))}",
            *runnable,
            "set +e",
            f"stat -c '%a %U:%G %n' /etc/akv-exporter /etc/akv-exporter/akv-exporter.yml"
            f" /etc/akv-exporter/env {unit} > {o}/modes",
            f"for page in {' '.join(map(shlex.quote, documentation))}; do"
            f' test -f "$page" && echo "$page"; done > {o}/documentation',
            f"{as_service(start_pre)} > {o}/start-pre 2>&1; echo $? > {o}/start-pre.rc",
            # ExecStart: StateDirectory= made for the user, in a network namespace of its own
            # (the example's port is free there; its clusters are unreachable).
            "ip link set lo up",
            f"install -d -m {state_mode} -o {DYNAMIC_UID} -g {DYNAMIC_UID}"
            f" /var/lib/{state_directory}",
            f"{as_service(start)} > {o}/run 2>&1 &",
            "service=$!",
            f"{python} -c {shlex.quote(ready)} > {o}/metrics 2>&1; echo $? > {o}/ready.rc",
            f"kill -TERM $service; wait $service; echo $? > {o}/run.rc",
            f"{as_dynamic_user} cat /etc/akv-exporter/env > {o}/env-as-user 2>&1;"
            f" echo $? > {o}/env-as-user.rc",
            f"{analyze} verify {unit} > {o}/verify 2>&1; echo $? > {o}/verify.rc",
        ]
    )
    wheels = wheelhouse()
    result = subprocess.run(
        ["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    def read(name: str) -> str:
        return (out / name).read_text()

    assert read("modes").splitlines() == [
        "755 root:root /etc/akv-exporter",
        "644 root:root /etc/akv-exporter/akv-exporter.yml",
        "600 root:root /etc/akv-exporter/env",
        f"644 root:root {unit}",
    ]
    assert read("documentation").splitlines() == documentation  # every page exists
    assert read("start-pre.rc").strip() == "0", read("start-pre")
    assert read("start-pre").startswith("/etc/akv-exporter/akv-exporter.yml: OK"), read("start-pre")
    assert read("env-as-user.rc").strip() != "0", "the service's user can read the password"
    assert "Permission denied" in read("env-as-user")
    assert read("ready.rc").strip() == "0", read("metrics") + read("run")
    assert "akv_exporter_build_info{" in read("metrics")
    assert read("run.rc").strip() == "0", read("run")  # SIGTERM (systemctl stop): exit 0
    assert read("verify.rc").strip() == "0", read("verify")
    assert read("verify") == "", read("verify")


def test_the_sandbox_has_the_documented_systemd_analyze_security_rating(tmp_path):
    analyze = systemd_analyze()
    documented = re.search(r"rates the unit \*\*(\d+\.\d) (\w+)\*\*", DOC.read_text("utf-8"))
    assert documented, "docs/systemd.md does not give the unit's rating"
    shutil.copy(UNIT, tmp_path / UNIT.name)
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", UNIT.name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    rating = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", result.stdout)
    assert rating, result.stdout[-2000:] + result.stderr
    assert rating.groups() == documented.groups()
    assert float(rating.group(1)) <= 2.0  # "OK": the unit's protections are not a formality


def test_the_units_documentation_links_are_installed_pages_not_a_web_site():
    # The project has no public home: Documentation= names the pages the install steps put on
    # the machine (checked to exist by the install test above).
    values = unit_values("Documentation")
    assert values and all(v.startswith("file:/usr/local/share/doc/akv-exporter/") for v in values)
    installed = next(step for step in install_steps() if "share/doc/akv-exporter" in step)
    for value in values:
        assert f"docs/{Path(value).name}" in installed.split()
