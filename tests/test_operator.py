"""What an operator's hands do to a running exporter (issue 16): reloads racing probes, hung
credential commands, certificate rotation, basic-auth edge cases, YAML surprises, start-up
failures and shutdown. Real processes and sockets throughout."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import trustme
from aiohttp import web

from akv_exporter.config import Config, load_config
from akv_exporter.exporter import Exporter
from tests.helpers.configs import CANARY, write_config
from tests.helpers.exporter import started
from tests.helpers.exposition import find
from tests.helpers.loopback import fetch, free_port, wait_until
from tests.helpers.prometheus import start_prometheus


def named_config(
    tmp_path: Path, clusters: dict[str, str], extra: str = "", poll: str = ""
) -> Config:
    """Write (or rewrite) akv.yml with ``clusters`` (name -> address); return it loaded.

    ``extra`` is added to ``defaults``, ``poll`` to ``poll`` (indented lines).
    """
    listed = "".join(f"  - name: {name}\n    address: {url}\n" for name, url in clusters.items())
    body = (
        f"state_file: {tmp_path / 'state.json'}\n"
        f"poll:\n  interval: 60s\n  timeout: 3s\n{poll}"
        f"defaults:\n  username: admin\n  password: {CANARY}\n{extra}"
        f"clusters:\n{listed}"
    )
    return load_config(write_config(tmp_path, body))


@pytest.mark.slow
async def test_a_probe_in_flight_when_its_cluster_is_removed_does_not_bring_it_back(
    make_ontap, tmp_path
):
    a, b = await make_ontap(), await make_ontap()
    # min_interval 0s: the probe polls now rather than returning the first round's poll.
    config = named_config(tmp_path, {"a": a.url, "b": b.url}, poll="  min_interval: 0s\n")
    exporter, runner, base = await started(config)
    asked = asyncio.Event()

    async def answer_late(request: web.Request) -> web.Response:
        asked.set()
        await asyncio.sleep(1.0)  # within poll.timeout: the late answer is a good one
        return web.json_response({"records": [], "num_records": 0})

    try:
        await asyncio.wait_for(exporter.poller.ready.wait(), 10)
        a.handler = answer_late
        async with aiohttp.ClientSession() as http:
            probe = asyncio.create_task(http.get(f"{base}/probe", params={"target": "a"}))
            await asyncio.wait_for(asked.wait(), 10)
            named_config(tmp_path, {"b": b.url})
            assert await exporter.reload() is None
            async with await asyncio.wait_for(probe, 10) as response:
                await response.read()
            async with http.get(f"{base}/metrics") as response:
                body = await response.read()
    finally:
        await runner.cleanup()
        await exporter.stop()
    assert find(body, "akv_exporter_cluster_up", cluster="b") == [1.0]
    assert find(body, "akv_exporter_cluster_up", cluster="a") == []
    assert exporter.state.of("a") == {}


async def _start_cli(*arguments: str, **options) -> asyncio.subprocess.Process:
    """Start `akv-exporter ARGUMENTS...` as its own process."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "akv_exporter.cli", *arguments, **options
    )


def _check_config(path: Path, **options) -> subprocess.CompletedProcess:
    """Return the finished `akv-exporter check-config PATH`, its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "akv_exporter.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        **options,
    )


def _alive(pid: int) -> bool:
    """Return whether ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _command_exporter(tmp_path: Path, url: str, command: str, timeout: str, interval="60s"):
    """Return an Exporter (not started) of cluster ``a`` whose password ``command`` prints."""
    body = (
        f"state_file: {tmp_path / 'state.json'}\n"
        f"poll:\n  interval: {interval}\n  timeout: {timeout}\n"
        f"clusters:\n  - name: a\n    address: {url}\n    username: admin\n"
        f"    credentials_command: {command}\n"
    )
    return Exporter(load_config(write_config(tmp_path, body)), process_metrics=False)


async def _poll_with_command(tmp_path: Path, url: str, command: str, timeout: str):
    """Return the snapshot of one poll of cluster ``a`` whose password ``command`` prints."""
    exporter = _command_exporter(tmp_path, url, command, timeout)
    try:
        return await asyncio.wait_for(exporter.poller.poll("a"), 30)
    finally:
        await exporter.stop()


async def test_a_hung_credentials_command_is_stopped_with_its_children_and_named(
    fake_ontap, tmp_path
):
    pids = tmp_path / "pids"
    script = tmp_path / "creds.sh"
    # The shell and the child it waits on, as a vault CLI stuck on a network call would be.
    script.write_text(f'#!/bin/sh\necho $$ > "{pids}"\nsleep 1000 &\necho $! >> "{pids}"\nwait\n')
    script.chmod(0o755)
    snapshot = await _poll_with_command(tmp_path, fake_ontap.url, str(script), "1s")
    started_pids = [int(line) for line in pids.read_text().split()]
    assert len(started_pids) == 2
    assert not snapshot.up
    # The command's own timeout ("auth") normally; on a loaded machine the poll's may come first,
    # and that one names what it was waiting for too. Never ONTAP's endpoint.
    assert snapshot.last.error.startswith(
        (f"{fake_ontap.url}: credentials_command timed out", "credentials_command: no answer")
    ), snapshot.last.error
    assert fake_ontap.requests == []
    try:
        await asyncio.to_thread(
            wait_until, lambda: not any(map(_alive, started_pids)), "the command's processes", 10
        )
    finally:
        for pid in filter(_alive, started_pids):  # the machine is shared: leave nothing behind
            os.kill(pid, signal.SIGKILL)


async def test_stopping_the_exporter_stops_a_credentials_command_in_flight(fake_ontap, tmp_path):
    pids = tmp_path / "pids"
    script = tmp_path / "creds.sh"
    script.write_text(f'#!/bin/sh\nsleep 1000 &\necho $! > "{pids}"\necho $$ >> "{pids}"\nwait\n')
    script.chmod(0o755)
    exporter = _command_exporter(tmp_path, fake_ontap.url, str(script), "10m", interval="20m")
    poll = asyncio.create_task(exporter.poller.poll("a"))
    try:
        await asyncio.to_thread(
            wait_until, lambda: len(pids.read_text().split()) == 2, "the command to start", 30
        )
    finally:
        await exporter.stop()  # a shutdown: the poll in flight is cancelled with its command
    started_pids = [int(line) for line in pids.read_text().split()]
    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(poll, 30)  # a hang guard: it used to wait on the command
        await asyncio.to_thread(
            wait_until, lambda: not any(map(_alive, started_pids)), "the command's processes", 10
        )
    finally:
        for pid in filter(_alive, started_pids):
            os.kill(pid, signal.SIGKILL)


async def test_a_credentials_command_printing_megabytes_is_refused_not_sent(fake_ontap, tmp_path):
    # 3 MB and no newline: the whole of it would otherwise become the password.
    command = "head -c 3000000 /dev/zero | tr '\\\\0' a"
    snapshot = await _poll_with_command(tmp_path, fake_ontap.url, f'"{command}"', "10s")
    assert snapshot.last.reason == "auth"
    assert "credentials_command printed more than 64 KiB" in snapshot.last.error
    assert fake_ontap.requests == []


async def test_a_failing_credentials_command_runs_once_per_poll_not_once_per_request(
    fake_ontap, tmp_path
):
    # A first poll asks /api/cluster and the key-manager endpoints at once; they share one
    # resolution, its failure included. Run again for each request, a failing command (slow,
    # as any is on a loaded machine) multiplied its time within the poll's one budget.
    runs = tmp_path / "runs"
    command = f"echo run >> {runs}; head -c 3000000 /dev/zero | tr '\\\\0' a"
    exporter = _command_exporter(tmp_path, fake_ontap.url, f'"{command}"', "10s")
    try:
        for poll in (1, 2):  # the next poll tries again: a failure is shared within its poll
            snapshot = await asyncio.wait_for(exporter.poller.poll("a"), 30)
            assert snapshot.last.reason == "auth"
            assert "credentials_command printed more than 64 KiB" in snapshot.last.error
            assert runs.read_text().split() == ["run"] * poll
    finally:
        await exporter.stop()
    assert fake_ontap.requests == []


def _issue_certificate(tmp_path: Path, ca) -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1 issued by ``ca`` to tls.crt/tls.key (replacing them)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


async def _https_status(base: str, ca) -> int | str:
    """Return the status of GET /-/healthy over HTTPS trusting only ``ca``, or the TLS failure."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    url = base.replace("http://", "https://") + "/-/healthy"
    try:
        async with aiohttp.ClientSession() as http, http.get(url, ssl=context) as response:
            return response.status
    except aiohttp.ClientConnectorCertificateError:
        return "untrusted"


async def test_reload_serves_the_replaced_certificate_and_can_switch_to_https(fake_ontap, tmp_path):
    old_ca, new_ca = trustme.CA(), trustme.CA()
    cert, key = _issue_certificate(tmp_path, old_ca)
    web_tls = f"web:\n  tls_cert_file: {cert}\n  tls_key_file: {key}\n"
    exporter, runner, base = await started(named_config(tmp_path, {"a": fake_ontap.url}, web_tls))
    try:
        assert await _https_status(base, old_ca) == 200
        _issue_certificate(tmp_path, new_ca)  # as cert-manager does: same paths, new files
        assert await exporter.reload() is None
        assert await _https_status(base, new_ca) == 200
        assert await _https_status(base, old_ca) == "untrusted"
        named_config(tmp_path, {"a": fake_ontap.url})  # back to plain HTTP
        assert await exporter.reload() is None
        port = runner.addresses[0][1]
        plain = f"http://127.0.0.1:{port}/-/healthy"
        async with aiohttp.ClientSession() as http, http.get(plain) as response:
            assert response.status == 200
        named_config(tmp_path, {"a": fake_ontap.url}, web_tls)  # and HTTPS again
        assert await exporter.reload() is None
        assert runner.addresses[0][1] == port
        assert await _https_status(f"http://127.0.0.1:{port}", new_ca) == 200
    finally:
        await runner.cleanup()
        await exporter.stop()


async def test_reload_refuses_a_key_that_does_not_match_and_keeps_serving(fake_ontap, tmp_path):
    ca = trustme.CA()
    cert, key = _issue_certificate(tmp_path, ca)
    web_tls = f"web:\n  tls_cert_file: {cert}\n  tls_key_file: {key}\n"
    exporter, runner, base = await started(named_config(tmp_path, {"a": fake_ontap.url}, web_tls))
    try:
        ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(key))  # another key
        problems = await exporter.reload()
        where = f"{tmp_path / 'akv.yml'}:10: web.tls_key_file"
        assert problems == f"{where}: {key} is not the private key of {cert}"
        assert exporter.last_reload_error == problems
        assert await _https_status(base, ca) == 200
    finally:
        await runner.cleanup()
        await exporter.stop()


async def test_reload_moves_the_state_file_and_warns_once_that_listen_needs_a_restart(
    fake_ontap, tmp_path, caplog
):
    exporter, runner, _ = await started(named_config(tmp_path, {"a": fake_ontap.url}))
    moved = tmp_path / "elsewhere" / "state.json"
    try:
        body = exporter.config.path.read_text().replace(str(tmp_path / "state.json"), str(moved))
        exporter.config.path.write_text(body + "web:\n  listen: 127.0.0.1:1\n")
        with caplog.at_level(logging.WARNING):
            assert await exporter.reload() is None
            assert await exporter.reload() is None
    finally:
        await runner.cleanup()
        await exporter.stop()
    assert json.loads(moved.read_text())["azure_unreachable_since"] == {}
    warnings = [r.getMessage() for r in caplog.records if "web.listen" in r.getMessage()]
    assert len(warnings) == 1 and "restart without --listen" in warnings[0], warnings


async def test_basic_auth_takes_utf8_passwords_and_answers_401_never_500(fake_ontap, tmp_path):
    utf8 = bcrypt.hashpw("pässwörd".encode(), bcrypt.gensalt(4)).decode()
    users = f"web:\n  basic_auth_users:\n    utf: '{utf8}'\n"
    exporter, runner, base = await started(named_config(tmp_path, {"a": fake_ontap.url}, users))

    async def status(login: str, password: str, encoding: str = "utf-8") -> int:
        pair = base64.b64encode(f"{login}:{password}".encode(encoding)).decode()
        headers = {"Authorization": f"Basic {pair}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base}/metrics", headers=headers) as r,
        ):
            return r.status

    try:
        assert await status("utf", "pässwörd") == 200  # as curl -u and Prometheus send it
        assert await status("utf", "pässwörd", "latin-1") == 401
        assert await status("utf", "x" * 73) == 401  # bcrypt would raise past 72 bytes
        assert await status("utf", "ü" * 40) == 401
        assert await status("nobody", "y" * 100) == 401
    finally:
        await runner.cleanup()
        await exporter.stop()


@pytest.mark.prometheus
async def test_a_real_prometheus_scrapes_with_a_utf8_password(fake_ontap, tmp_path):
    digest = bcrypt.hashpw("pässwörd".encode(), bcrypt.gensalt(4)).decode()
    users = f"web:\n  basic_auth_users:\n    prometheus: '{digest}'\n"
    exporter, runner, base = await started(named_config(tmp_path, {"a": fake_ontap.url}, users))
    scrape = {
        "job_name": "akv",
        "scrape_interval": "1s",
        "static_configs": [{"targets": [base.removeprefix("http://")]}],
        "basic_auth": {"username": "prometheus", "password": "pässwörd"},
    }
    prometheus = await asyncio.to_thread(
        start_prometheus, tmp_path / "prometheus", {"scrape_configs": [scrape]}
    )
    try:
        # up is 1 only once a scrape passed basic auth: a 401 is a failed scrape (up 0).
        def scraped() -> bool:
            return [value for _, value in prometheus.values('up{job="akv"}')] == [1.0]

        await asyncio.to_thread(wait_until, scraped, "Prometheus to scrape with UTF-8", 60)
    finally:
        await asyncio.to_thread(prometheus.stop)
        await runner.cleanup()
        await exporter.stop()


def test_unknown_user_names_are_checked_at_the_configured_cost():
    from akv_exporter.web.app import BasicAuthGuard, bcrypt_cost

    digest = bcrypt.hashpw(b"secret", bcrypt.gensalt(6)).decode()
    users = {"prometheus": digest}
    guard = BasicAuthGuard(None)
    assert bcrypt_cost(guard.decoy(users).decode()) == 6
    assert not bcrypt.checkpw(b"secret", guard.decoy(users))


@pytest.mark.slow
def test_check_config_refuses_bcrypt_hashes_bcrypt_cannot_use(tmp_path):
    good = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    bad = {
        "cost99": good.replace("$04$", "$99$"),
        "cost03": good.replace("$04$", "$03$"),
        "noletter": good.replace("$2b$", "$2$"),
        "salt": good[:28] + "z" + good[29:],  # the salt's last character is not canonical
    }
    users = "".join(f"    {user}: '{digest}'\n" for user, digest in bad.items())
    path = write_config(
        tmp_path,
        f"web:\n  basic_auth_users:\n    good: '{good}'\n{users}"
        "clusters:\n  - address: 127.0.0.1\n    username: u\n    password: p\n",
    )
    result = _check_config(path)
    assert result.returncode == 2, result.stdout
    lines = result.stderr.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        f"web.basic_auth_users.{user}" for user in bad
    ], lines
    assert all("bcrypt can verify" in line and "$2b$" + "99" not in line for line in lines)


@pytest.mark.slow
async def test_unquoted_numbers_reach_ontap_and_labels_exactly_as_written(fake_ontap, tmp_path):
    seen: list[str] = []

    async def remember(request: web.Request) -> web.Response:
        seen.append(base64.b64decode(request.headers["Authorization"][6:]).decode())
        return web.json_response({"records": [], "num_records": 0})

    fake_ontap.handler = remember
    body = (
        f"state_file: {tmp_path / 'state.json'}\n"
        "clusters:\n"
        f"  - name: a\n    address: {fake_ontap.url}\n    username: 0755\n"
        "    password: 01234567\n"  # YAML 1.1 reads an octal 342391 here
        "    labels: {rack: 010, ratio: 1.50, count: 12_000, ok: yes}\n"
    )
    exporter, runner, base = await started(load_config(write_config(tmp_path, body)))
    try:
        await asyncio.wait_for(exporter.poller.ready.wait(), 10)
        async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as response:
            metrics = await response.read()
    finally:
        await runner.cleanup()
        await exporter.stop()
    assert seen == ["0755:01234567"]
    labels = {"rack": "010", "ratio": "1.50", "count": "12_000", "ok": "yes"}
    assert find(metrics, "akv_exporter_cluster_up", cluster="a", **labels) == [1.0]


SECRET = "Hunter2Secret"
LEAKY = {
    "tag": f"    password: !{SECRET}\n",
    "alias": f"    password: *{SECRET}\n",
    "flow": f"    password: p\n  - {{address: h2, password: !{SECRET}}}\n",
}


def _leaky_config(tmp_path: Path, form: str, address: str = "127.0.0.1") -> Path:
    return write_config(
        tmp_path,
        f"state_file: {tmp_path / 'state.json'}\n"
        f"clusters:\n  - address: {address}\n    username: u\n{LEAKY[form]}",
    )


@pytest.mark.slow
def test_check_config_never_repeats_a_secret_it_cannot_read(tmp_path):
    paths = [_leaky_config(tmp_path, form).rename(tmp_path / f"{form}.yml") for form in LEAKY]
    addresses = write_config(
        tmp_path,
        f"clusters:\n  - address: 'https://admin:{SECRET}@:443'\n"
        "    username: u\n    password: x\n",
        "address.yml",
    )
    for path in [*paths, addresses]:
        result = _check_config(path)
        assert result.returncode == 2, (path, result.stdout)
        assert SECRET not in result.stdout + result.stderr
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"{path}:"), line
        assert line.split(": ")[1] in ("password", "clusters[0].address"), line


async def test_a_refused_reload_never_repeats_a_secret_anywhere(fake_ontap, tmp_path, caplog):
    exporter, runner, base = await started(named_config(tmp_path, {"a": fake_ontap.url}))
    try:
        _leaky_config(tmp_path, "tag", fake_ontap.url)
        with caplog.at_level(logging.DEBUG):
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/-/reload") as response:
                    answer = await response.text()
                    assert response.status == 500
                async with http.get(f"{base}/api/v1/status") as response:
                    status = await response.text()
                async with http.get(f"{base}/") as response:
                    page = await response.text()
    finally:
        await runner.cleanup()
        await exporter.stop()
    assert "password: is not valid YAML" in answer
    assert "password: is not valid YAML" in json.loads(status)["exporter"]["last_reload_error"]
    for shown in (answer, status, page, caplog.text):
        assert SECRET not in shown


async def _run_exporter(*arguments: str, timeout: float = 60) -> tuple[int, list[str]]:
    """Run `akv-exporter run ...` to its end; return its exit code and stderr lines."""
    process = await _start_cli(
        "run",
        *arguments,
        stdin=subprocess.DEVNULL,  # an encrypted key must not wait for a passphrase
        stderr=subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, stderr.decode().splitlines()


@pytest.mark.slow
async def test_a_busy_port_is_one_json_line_and_exit_2_before_any_poll(fake_ontap, tmp_path):
    config = named_config(tmp_path, {"a": fake_ontap.url})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, lines = await _run_exporter(
            "--config", str(config.path), "--listen", f"127.0.0.1:{port}", "--log-format", "json"
        )
    assert code == 2, lines
    entries = [json.loads(line) for line in lines]  # every line is JSON: no traceback
    (entry,) = [entry for entry in entries if entry["level"] == "error"]
    assert (
        entry["msg"] == f"cannot start: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert fake_ontap.requests == []  # polling had not started


@pytest.mark.slow
async def test_an_address_not_on_this_host_is_one_line_and_exit_2(fake_ontap, tmp_path):
    config = named_config(tmp_path, {"a": fake_ontap.url})
    # TEST-NET-1 (RFC 5737): binding fails locally, nothing is sent anywhere.
    code, lines = await _run_exporter("--config", str(config.path), "--listen", "192.0.2.1:0")
    assert code == 2, lines
    assert not any("Traceback" in line for line in lines), lines
    (line,) = [line for line in lines if " ERROR " in line]
    assert line.endswith(
        "cannot start: cannot listen on 192.0.2.1:0: Cannot assign requested address"
    )


def _encrypted_key(tmp_path: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate and its key, encrypted with a passphrase."""
    from cryptography.hazmat.primitives import serialization

    ca = trustme.CA()
    cert, key = _issue_certificate(tmp_path, ca)
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    return cert, key


@pytest.mark.slow
async def test_web_key_problems_are_caught_by_check_config_and_at_start(fake_ontap, tmp_path):
    cert, _ = _issue_certificate(tmp_path / "a", trustme.CA())
    _, other_key = _issue_certificate(tmp_path / "b", trustme.CA())
    encrypted_cert, encrypted_key = _encrypted_key(tmp_path / "c")
    cases = {
        "mismatch": (cert, other_key, f"{other_key} is not the private key of {cert}"),
        "encrypted": (encrypted_cert, encrypted_key, "the key is encrypted (passphrase-protected)"),
        "not PEM": (cert, cert, f"{cert} is not a PEM private key"),
    }
    for name, (cert_file, key_file, reason) in cases.items():
        web_tls = f"web:\n  tls_cert_file: {cert_file}\n  tls_key_file: {key_file}\n"
        path = write_config(
            tmp_path,
            f"state_file: {tmp_path / 'state.json'}\n{web_tls}"
            f"clusters:\n  - address: {fake_ontap.url}\n    username: u\n    password: p\n",
            f"{name}.yml",
        )
        checked = _check_config(path, stdin=subprocess.DEVNULL)
        assert checked.returncode == 2, (name, checked.stdout)
        (line,) = checked.stderr.splitlines()
        assert line.startswith(f"{path}:4: web.tls_key_file: {reason}"), (name, line)
        code, lines = await _run_exporter("--config", str(path), "--listen", "127.0.0.1:0")
        assert code == 2, (name, lines)
        (line,) = lines  # exactly check-config's line
        assert line.startswith(f"{path}:4: web.tls_key_file: {reason}"), (name, line)
        code, lines = await _run_exporter(
            "--config", str(path), "--listen", "127.0.0.1:0", "--log-format", "json"
        )
        assert code == 2, (name, lines)
        (line,) = lines
        assert json.loads(line)["msg"].startswith(f"cannot start: {path}:4: web.tls_key_file: ")
    assert fake_ontap.requests == []


def _hang_on(ontap) -> asyncio.Event:
    """Make ``ontap``'s AKV endpoint hang until the returned event is set."""
    released = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await released.wait()
        return web.json_response({})

    ontap.handler = hang
    return released


def _hung_config(tmp_path: Path, url: str) -> Path:
    """Write a configuration whose one cluster ``a`` a poll or probe would wait 10 minutes on."""
    return write_config(
        tmp_path,
        f"state_file: {tmp_path / 'state.json'}\n"
        "poll:\n  interval: 20m\n  timeout: 10m\n"
        f"clusters:\n  - name: a\n    address: {url}\n    username: u\n    password: p\n",
    )


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_shutdown_cancels_a_probe_of_a_hung_cluster(make_ontap, tmp_path, signum):
    hung = await make_ontap()
    released = _hang_on(hung)
    path = _hung_config(tmp_path, hung.url)
    port = free_port()
    process = await _start_cli(
        "run",
        "--config",
        str(path),
        "--listen",
        f"127.0.0.1:{port}",
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_until, lambda: fetch(f"{base}/-/healthy"), "the exporter", 30)
        async with aiohttp.ClientSession() as http:
            probe = asyncio.create_task(http.get(f"{base}/probe", params={"target": "a"}))
            await asyncio.sleep(1.0)  # the probe has reached the exporter and waits on the cluster
            assert not probe.done()
            process.send_signal(signum)
            # A hang guard, not a speed limit: before the fix this took the probe's 10 minutes
            # (or aiohttp's 60-second shutdown timeout).
            code = await asyncio.wait_for(process.wait(), 30)
            # The exporter closed the probe's connection, cancelled with the poll it waited on.
            # The exporter closed the probe's connection, cancelled with the poll it waited on
            # (aiohttp then retries the GET once, on a port no longer listening).
            with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientConnectorError)):
                await probe
        stderr = (await process.stderr.read()).decode()
    finally:
        released.set()
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
async def test_a_reload_parsing_a_large_file_leaves_health_checks_answering(fake_ontap, tmp_path):
    exporter, runner, base = await started(named_config(tmp_path, {"a": fake_ontap.url}))
    path = exporter.config.path
    good = path.read_text()
    # About 1 MB of YAML, under the size limit: seconds of parsing before the unknown key is
    # refused.
    filler = "".join(f"  key{i:06d}: {'value ' * 4}\n" for i in range(25_000))
    path.write_text(good + "filler:\n" + filler)
    try:
        async with aiohttp.ClientSession() as http:
            reload = asyncio.create_task(http.post(f"{base}/-/reload"))
            await asyncio.sleep(0.2)
            async with http.get(f"{base}/-/healthy") as response:
                assert response.status == 200
            assert not reload.done()  # answered while the file was still being parsed
            async with await asyncio.wait_for(reload, 120) as response:
                assert response.status == 500
                assert "filler: unknown key" in await response.text()
            path.write_text(good + "#" * (9 * 1024 * 1024) + "\n")
            async with http.post(f"{base}/-/reload") as response:
                assert response.status == 500
                answer = await response.text()
    finally:
        await runner.cleanup()
        await exporter.stop()
    assert answer == f"Reload refused: {path}: is larger than 8 MiB; is it the right file?\n"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_check_interrupted_says_unknown_and_writes_no_file(make_ontap, tmp_path, signum):
    hung = await make_ontap()
    released = _hang_on(hung)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    path = _hung_config(tmp_path, hung.url)
    process = await _start_cli(
        "check",
        "--config",
        str(path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    try:
        await asyncio.to_thread(
            wait_until, lambda: hung.requests, "check to ask the hung cluster", 30
        )
        assert list(scratch.iterdir()) == []  # check writes nothing, not even a scratch dir
        process.send_signal(signum)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        released.set()
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 3, (stdout, stderr)
    name = signal.Signals(signum).name
    assert stdout.decode() == f"AKV UNKNOWN - interrupted by {name} before the clusters answered\n"
    assert b"Traceback" not in stderr
    assert list(scratch.iterdir()) == []
