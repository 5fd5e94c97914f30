"""--web.config.file (Prometheus exporter-toolkit's format) and Prometheus' flag names.

Mutual TLS with real certificates (trustme): the clients' CA signs the one client that gets in;
a certificate from another CA, or none, is refused at the handshake. Basic auth and the extra
response headers come from the same file, and a reload reads it again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import bcrypt
import jsonschema
import pytest
import trustme
import yaml

from akv_exporter.config import ConfigError
from akv_exporter.inventory import load
from tests.helpers.configs import write_config
from tests.helpers.exporter import closed_port_url, started
from tests.helpers.repository import REPO

PASSWORD = "s3cret-scrape"
DIGEST = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
AUTH = {"Authorization": "Basic " + base64.b64encode(f"prom:{PASSWORD}".encode()).decode()}
HSTS = "max-age=31536000"


class Authorities:
    """The server's CA, the clients' CA and a stranger CA, with certificates in ``directory``."""

    def __init__(self, directory: Path):
        self.server, self.clients, self.stranger = trustme.CA(), trustme.CA(), trustme.CA()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        issued = self.server.issue_cert("127.0.0.1")
        issued.cert_chain_pems[0].write_to_path(str(directory / "tls.crt"))
        issued.private_key_pem.write_to_path(str(directory / "tls.key"))
        self.clients.cert_pem.write_to_path(str(directory / "clients-ca.pem"))

    def web_file(self, users: str = f"  prom: '{DIGEST}'\n", ca: str = "clients-ca.pem") -> Path:
        path = self.directory / "web.yml"
        path.write_text(
            "tls_server_config:\n"
            f"  cert_file: {self.directory / 'tls.crt'}\n"
            f"  key_file: {self.directory / 'tls.key'}\n"
            "  client_auth_type: RequireAndVerifyClientCert\n"
            f"  client_ca_file: {self.directory / ca}\n"
            "  min_version: TLS12\n"
            "http_server_config:\n"
            f"  headers:\n    Strict-Transport-Security: {HSTS}\n"
            f"basic_auth_users:\n{users}"
        )
        return path

    def client(self, ca: trustme.CA | None) -> ssl.SSLContext:
        """Return a client context trusting the server, presenting a certificate of ``ca``."""
        context = ssl.create_default_context()
        self.server.configure_trust(context)
        if ca is not None:
            ca.issue_cert("prometheus@example.com").configure_cert(context)
        return context


async def get(url: str, context: ssl.SSLContext, headers: dict | None = None):
    """Return (status, headers) of GET ``url``, or "refused" when the TLS handshake fails."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, ssl=context, headers=headers or {}) as response,
        ):
            return response.status, response.headers
    except (aiohttp.ClientConnectionError, ssl.SSLError):
        return "refused", {}


def cluster_config(tmp_path: Path, web: str = "") -> Path:
    return write_config(
        tmp_path,
        f"state_file: {tmp_path / 'state.json'}\n{web}"
        f"clusters:\n  - {{name: a, address: '{closed_port_url()}', username: u, password: p}}\n",
    )


@pytest.mark.slow
async def test_run_with_prometheus_flags_serves_mutual_tls_and_basic_auth(tmp_path):
    tls = Authorities(tmp_path / "tls")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "akv_exporter.cli",
        "run",
        "--web.config.file",
        str(tls.web_file()),
        "--web.listen-address",
        "127.0.0.1:0",
        "--config.file",
        str(cluster_config(tmp_path)),
        "--log.format",
        "logfmt",
        stderr=subprocess.PIPE,
    )
    try:
        port = None
        while port is None:
            line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
            assert line, "the exporter ended before it listened"
            assert "level=" in line and "msg=" in line, line  # logfmt
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        base = f"https://127.0.0.1:{port}"
        good = tls.client(tls.clients)
        status, headers = await get(f"{base}/metrics", good, AUTH)
        assert status == 200 and headers["Strict-Transport-Security"] == HSTS
        assert (await get(f"{base}/metrics", good))[0] == 401  # the certificate alone
        assert (await get(f"{base}/-/healthy", good))[0] == 200  # open, as before
        assert (await get(f"{base}/metrics", tls.client(tls.stranger), AUTH))[0] == "refused"
        assert (await get(f"{base}/metrics", tls.client(None), AUTH))[0] == "refused"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


@pytest.mark.slow
async def test_a_reload_reads_the_web_config_file_again(tmp_path):
    tls = Authorities(tmp_path / "tls")
    web_file = tls.web_file()
    exporter, runner, base = await started(load(cluster_config(tmp_path), web_file).config)
    base = base.replace("http://", "https://")
    other = {"Authorization": "Basic " + base64.b64encode(b"grafana:other").decode()}
    try:
        assert (await get(f"{base}/metrics", tls.client(tls.clients), other))[0] == 401
        grafana = bcrypt.hashpw(b"other", bcrypt.gensalt(4)).decode()
        tls.stranger.cert_pem.write_to_path(str(tls.directory / "stranger-ca.pem"))
        tls.web_file(users=f"  grafana: '{grafana}'\n", ca="stranger-ca.pem")
        assert await exporter.reload() is None
        assert (await get(f"{base}/metrics", tls.client(tls.stranger), other))[0] == 200
        assert (await get(f"{base}/metrics", tls.client(tls.clients), other))[0] == "refused"
        web_file.write_text("basic_auth_users: {grafana: plaintext}\n")
        problems = await exporter.reload()
        assert problems.startswith(f"{web_file}:1: basic_auth_users.grafana: must be a bcrypt")
        assert (await get(f"{base}/metrics", tls.client(tls.stranger), other))[0] == 200
    finally:
        await runner.cleanup()
        await exporter.stop()


def _check_config(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "akv_exporter.cli", "check-config", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_the_web_section_and_the_web_config_file_securing_both_is_one_line(tmp_path):
    tls = Authorities(tmp_path / "tls")
    path = cluster_config(
        tmp_path, f"web:\n  listen: 127.0.0.1:9\n  basic_auth_users:\n    prom: '{DIGEST}'\n"
    )
    web_file = tls.web_file()
    result = _check_config(str(path), "--web.config.file", str(web_file))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}:4: web.basic_auth_users: --web.config.file {web_file} secures the exporter;"
        " remove web.basic_auth_users here"
    ]
    fine = cluster_config(tmp_path, "web:\n  listen: 127.0.0.1:9\n")  # listen stays the file's
    assert _check_config(str(fine), "--web.config.file", str(web_file)).returncode == 0
    assert load(fine, web_file).config.web.listen == "127.0.0.1:9"


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("rate_limit: {interval: 1s, burst: 20}\n", ":1: rate_limit: is not supported"),
        (
            "tls_server_config: {cert_file: CERT, key_file: KEY,"
            " client_auth_type: RequireAnyClientCert, client_ca_file: CA}\n",
            ":1: tls_server_config.client_auth_type: is not supported: it accepts a certificate",
        ),
        (
            "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n"
            "  client_auth_type: RequireAndVerifyClientCert\n",
            ":4: tls_server_config.client_auth_type: RequireAndVerifyClientCert needs"
            " client_ca_file",
        ),
        ("tls_server_config:\n  cert_file: CERT\n", ":1: tls_server_config.key_file: is missing"),
        (
            "tls_server_config: {cert_file: CERT, key_file: KEY, min_version: TLS14}\n",
            ":1: tls_server_config.min_version: Input should be",
        ),
        (
            "http_server_config:\n  headers:\n    X-Powered-By: me\n",
            ":3: http_server_config.headers.X-Powered-By: Input should be",
        ),
        ("basic_auth_users:\n  prom: plain\n", ":2: basic_auth_users.prom: must be a bcrypt hash"),
        ("tls_server_config:\n  cert_fil: CERT\n", "(did you mean 'cert_file'?)"),
    ],
)
def test_each_web_config_file_problem_is_one_line_naming_its_key(tmp_path, body, line):
    tls = Authorities(tmp_path / "tls")
    web_file = tls.directory / "web.yml"
    web_file.write_text(
        body.replace("CERT", str(tls.directory / "tls.crt"))
        .replace("KEY", str(tls.directory / "tls.key"))
        .replace("CA", str(tls.directory / "clients-ca.pem"))
    )
    with pytest.raises(ConfigError) as caught:
        load(cluster_config(tmp_path), web_file)
    (problem,) = caught.value.problems
    assert problem.startswith(str(web_file)) and line in problem, problem


def test_help_names_prometheus_flags_and_marks_the_old_ones_deprecated():
    result = subprocess.run(
        [sys.executable, "-m", "akv_exporter.cli", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = " ".join(result.stdout.split())
    for flag in ("--config.file", "--web.listen-address", "--web.config.file", "--log.level"):
        assert flag in text, flag
    for old, new in (
        ("--config", "--config.file"),
        ("--listen", "--web.listen-address"),
        ("--log-level", "--log.level"),
        ("--log-format", "--log.format"),
    ):
        assert re.search(rf"{old} \S+ deprecated: {re.escape(new)}", text), (old, text)


@pytest.mark.slow
def test_old_and_new_flag_names_are_one_flag(tmp_path):
    path = cluster_config(tmp_path, "web:\n  listen: 'nowhere'\n")
    both = _check_config(str(path))  # a bad file: both runs report it, the same way
    for flags in (["--config", str(path)], ["--config.file", str(path)]):
        run = subprocess.run(
            [sys.executable, "-m", "akv_exporter.cli", "run", *flags],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 2 and run.stderr == both.stderr, (flags, run.stderr)
    given_twice = subprocess.run(
        [sys.executable, "-m", "akv_exporter.cli", "run", "--config", "a", "--config.file", "b"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert given_twice.returncode == 2 and "not allowed with argument" in given_twice.stderr


def test_relative_paths_in_the_web_config_file_are_taken_from_its_directory(tmp_path):
    tls = Authorities(tmp_path / "tls")
    web_file = tls.directory / "web.yml"
    web_file.write_text(
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients-ca.pem\n"
    )
    result = _check_config(str(cluster_config(tmp_path)), "--web.config.file", str(web_file))
    assert result.returncode == 0, result.stderr  # started elsewhere: the test's directory
    web = load(cluster_config(tmp_path), web_file).config.web
    assert web.tls_cert_file == tls.directory / "tls.crt"
    assert web.client_ca_file == tls.directory / "clients-ca.pem"


def test_the_documented_web_config_file_is_valid_against_its_published_schema():
    schema = json.loads((REPO / "docs" / "web-config.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    blocks = [
        yaml.safe_load(body)
        for body in re.findall(r"^```yaml\n(.*?)^```", page, re.S | re.M)
        if body.startswith("tls_server_config:")
    ]
    assert blocks
    for block in blocks:
        assert not list(validator.iter_errors(block)), block
        refused = list(validator.iter_errors({**block, "rate_limit": {"burst": 20}}))
        assert refused and "rate_limit" in str(refused[0].absolute_path)
