"""`akv-exporter healthcheck`, the image's HEALTHCHECK: it asks /-/healthy where the exporter
serves, over HTTPS when web TLS is on (the image itself: tests/test_image.py)."""

from __future__ import annotations

import asyncio
import sys

import pytest
import trustme

from akv_exporter.config import load_config
from akv_exporter.exporter import Exporter
from akv_exporter.healthcheck import HealthcheckError, run_arguments
from akv_exporter.inventory import load
from akv_exporter.web.app import serve
from tests.helpers.configs import write_config
from tests.helpers.loopback import free_port


async def healthcheck(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "akv_exporter.cli", "healthcheck", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.slow
async def test_healthcheck_follows_web_tls_and_the_port_of_the_configuration(fake_ontap, tmp_path):
    issued = trustme.CA().issue_cert("exporter.example.com")  # not for 127.0.0.1: not checked
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    issued.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    port = free_port()
    path = write_config(
        tmp_path,
        f"web:\n  listen: 0.0.0.0:{port}\n"
        f"  tls_cert_file: {tmp_path / 'tls.crt'}\n  tls_key_file: {tmp_path / 'tls.key'}\n"
        f"state_file: {tmp_path / 'state.json'}\n"
        f"clusters:\n  - {{address: {fake_ontap.url}, username: u, password: p}}\n",
    )
    exporter = Exporter(load_config(path), process_metrics=False)
    await exporter.start()
    runner = await serve(exporter, "127.0.0.1", port)
    try:
        assert await healthcheck("--config", str(path)) == (
            0,
            f"healthy: https://127.0.0.1:{port}/-/healthy\n",
            "",
        )
        # --listen as given to `run` wins over web.listen, as it does for `run`.
        other = free_port()
        code, out, err = await healthcheck("--config", str(path), "--listen", f"127.0.0.1:{other}")
    finally:
        await runner.cleanup()
        await exporter.stop()
    assert (code, out) == (1, "")
    [line] = err.splitlines()
    assert line.startswith(f"unhealthy: https://127.0.0.1:{other}/-/healthy: "), line


async def test_healthcheck_of_a_stopped_exporter_is_one_unhealthy_line(tmp_path):
    port = free_port()
    path = write_config(
        tmp_path,
        f"web:\n  listen: 127.0.0.1:{port}\n"
        "clusters:\n  - {address: 127.0.0.1, username: u, password: p}\n",
    )
    code, out, err = await healthcheck("--config", str(path))
    assert (code, out) == (1, "")
    assert err.startswith(f"unhealthy: http://127.0.0.1:{port}/-/healthy: ")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("cmdline", "arguments"),
    [
        # The image: the console script, run by Python.
        (
            b"/usr/local/bin/python\0/usr/local/bin/akv-exporter\0run\0--config\0/etc/a.yml\0",
            ["run", "--config", "/etc/a.yml"],
        ),
        (b"akv-exporter\0run\0--listen\0:9100\0", ["run", "--listen", ":9100"]),
        (b"python3\0-m\0akv_exporter.cli\0run\0--config=x\0", ["run", "--config=x"]),
    ],
)
def test_the_first_process_command_line_gives_runs_flags(cmdline, arguments):
    assert run_arguments(cmdline) == arguments


def test_a_first_process_that_is_not_the_exporter_is_named():
    with pytest.raises(HealthcheckError, match="not an akv-exporter command line: /sbin/init"):
        run_arguments(b"/sbin/init\0")


@pytest.mark.slow
async def test_healthcheck_of_an_exporter_demanding_client_certificates_says_it_answers(
    fake_ontap, tmp_path
):
    # --web.config.file with RequireAndVerifyClientCert: nothing passes the handshake without a
    # client certificate, the health check has none, and the refusal for want of one is the
    # answer. A stopped exporter is still unhealthy.
    server, clients = trustme.CA(), trustme.CA()
    issued = server.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    issued.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    clients.cert_pem.write_to_path(str(tmp_path / "clients-ca.pem"))
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert_file: {tmp_path / 'tls.crt'}\n"
        f"  key_file: {tmp_path / 'tls.key'}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {tmp_path / 'clients-ca.pem'}\n"
    )
    port = free_port()
    path = write_config(
        tmp_path,
        f"web:\n  listen: 127.0.0.1:{port}\nstate_file: {tmp_path / 'state.json'}\n"
        f"clusters:\n  - {{address: {fake_ontap.url}, username: u, password: p}}\n",
    )
    flags = ("--config.file", str(path), "--web.config.file", str(web))
    exporter = Exporter(load(path, web).config, process_metrics=False)
    await exporter.start()
    runner = await serve(exporter, "127.0.0.1", port)
    try:
        answered = await healthcheck(*flags)
    finally:
        await runner.cleanup()
        await exporter.stop()
    assert answered == (
        0,
        f"healthy: https://127.0.0.1:{port}/-/healthy"
        " (client certificates required: the TLS handshake answered)\n",
        "",
    )
    code, out, err = await healthcheck(*flags)
    assert (code, out) == (1, "")
    assert err.startswith(f"unhealthy: https://127.0.0.1:{port}/-/healthy: ")


@pytest.mark.slow
async def test_a_cluster_entrys_problem_does_not_make_a_serving_exporter_unhealthy(
    fake_ontap, tmp_path
):
    """The file as a refused reload leaves it: one team's entry lacks its secret. The exporter
    serves on with the configuration it had; the health check asks it where the file says."""
    port = free_port()
    head = (
        f"web:\n  listen: 127.0.0.1:{port}\nstate_file: {tmp_path / 'state.json'}\n"
        f"clusters:\n  - {{address: {fake_ontap.url}, username: u, password: p}}\n"
    )
    path = write_config(tmp_path, head)
    exporter = Exporter(load_config(path), process_metrics=False)
    await exporter.start()
    runner = await serve(exporter, "127.0.0.1", port)
    try:
        path.write_text(
            head + "  - {address: 127.0.0.9, username: u, password_env: AKV_TEST_UNSET}\n"
        )
        healthy = await healthcheck("--config.file", str(path))
        path.write_text(head.replace("listen:", "lisen:"))  # the web section's own problem
        broken_web = await healthcheck("--config.file", str(path))
    finally:
        await runner.cleanup()
        await exporter.stop()
    assert healthy == (0, f"healthy: http://127.0.0.1:{port}/-/healthy\n", "")
    assert broken_web[0] == 1 and broken_web[2].startswith(f"unhealthy: {path}:2: web.lisen:")
