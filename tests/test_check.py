"""`akv-exporter check` as a process: monitoring-plugin exit codes, first line, table and JSON."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import jsonschema
import pytest
from aiohttp import web

from akv_exporter.assessment_json import to_json
from tests.helpers.configs import config_for
from tests.helpers.exporter import Clock, check, closed_port_url, exporter_with_clock
from tests.helpers.exposition import SCHEMA, perfdata
from tests.helpers.fake_ontap import InFlight
from tests.helpers.ontap import akv_record, event

pytestmark = pytest.mark.slow  # processes, fleets, real time: not in make check


async def test_healthy_fleet_exits_0(make_ontap, tmp_path):
    a, b = await make_ontap(), await make_ontap()
    b.records = [akv_record(), akv_record("u2", "vs2", enabled=False)]
    code, out, _ = await check(config_for(tmp_path, a.url, b.url))
    first, *rest = out.splitlines()
    assert code == 0
    assert first.startswith("AKV OK - 2 configurations healthy on 2 clusters, 1 inactive | ")
    assert perfdata(first) == {
        "configurations": "3",
        "unreachable": "0",
        "ekmip_down": "0",
        "kek_unavailable": "0",
        "clusters_down": "0",
        "clusters": "2",
        "unknown": "0",
        "inactive": "1",
        "akv_errors": "0",
        "volumes_at_stake": "0",
        "volumes_offline": "0",
        "volumes_offline_other": "0",
        "key_expired": "0",
        "no_key_server": "0",
        "key_stores_blocked": "0",
        "key_servers_down": "0",
        "action_needed": "0",
    }
    assert rest[0].split() == ["CLUSTER", "CONFIGURATION", "STATE", "AZURE", "KEK", "EKMIP"]
    assert "c1 svm vs2 INACTIVE unknown unknown unknown" in [" ".join(r.split()) for r in rest]


async def test_kek_unavailable_is_a_warning(fake_ontap, tmp_path):
    fake_ontap.records = [akv_record(kek=False)]
    code, out, _ = await check(config_for(tmp_path, fake_ontap.url))
    assert code == 1
    assert out.startswith("AKV WARNING - 1 of 1 KEKs unavailable | ")
    assert "c0: svm vs1: KEK unavailable (code 65537551): Top-level" in out


async def test_a_key_expired_event_of_the_last_24_hours_is_a_warning(make_ontap, tmp_path):
    # As the alert OntapAkvKeyExpired: ONTAP's event time within 24 hours; an older one is history.
    recent, old = await make_ontap(), await make_ontap()
    recent.events = [event("n1", 5, time.time() - 3600, "ekmip.akv.keyExpired")]
    old.events = [event("n1", 5, time.time() - 25 * 3600, "ekmip.akv.keyExpired")]
    code, out, _ = await check(config_for(tmp_path, recent.url, old.url))
    first, *rest = out.splitlines()
    assert code == 1, out
    assert first.startswith(
        "AKV WARNING - 1 cluster logged ekmip.akv.keyExpired in the last 24 h | "
    )
    assert perfdata(first)["key_expired"] == "1"
    assert any(line.startswith("c0: ONTAP logged ekmip.akv.keyExpired at ") for line in rest)
    assert not any(line.startswith("c1: ") and "keyExpired" in line for line in rest)


async def test_unreachable_vault_is_critical_even_while_another_cluster_is_down(
    make_ontap, tmp_path
):
    broken, ekmip = await make_ontap(), await make_ontap()
    broken.records = [akv_record(reachable=False)]
    broken.records[0]["azure_reachability"]["message"] = "proxy | DNS failure"
    ekmip.records = [akv_record(ekmip_down=("n2",))]
    code, out, _ = await check(config_for(tmp_path, broken.url, ekmip.url, closed_port_url()))
    first, *rest = out.splitlines()
    assert code == 2
    assert first.startswith(
        "AKV CRITICAL - 1 of 2 configurations unreachable, 1 node with EKMIP down, "
        "1 of 3 clusters not answering | "
    )
    assert perfdata(first)["unreachable"] == "1"
    assert [" ".join(r.split()) for r in rest[1:4]] == [
        "c2 - DOWN - - -",
        "c0 svm vs1 AZURE_UNREACHABLE UNREACHABLE available 2/2 reachable",
        "c1 svm vs1 EKMIP_UNREACHABLE reachable available 1/2 UNREACHABLE",
    ]
    # Nagios reads the text after a '|' as performance data, in every line.
    assert all("|" not in line for line in rest)
    assert "c0: svm vs1: Azure Key Vault unreachable (code 65537549): proxy / DNS failure" in rest
    assert any("offline at about" in line and line.startswith("c0: svm vs1") for line in rest)


async def test_a_cluster_that_does_not_answer_is_unknown(tmp_path):
    code, out, stderr = await check(config_for(tmp_path, closed_port_url()))
    assert code == 3
    assert out.startswith("AKV UNKNOWN - 1 of 1 clusters not answering | ")
    assert "c0: cluster not answering (connect)" in out
    assert "poll failed" in stderr  # warnings go to stderr, stdout stays the plugin's


async def test_format_json_is_the_status_document(make_ontap, tmp_path):
    a, b = await make_ontap(), await make_ontap()
    b.records = [akv_record(reachable=False)]
    code, out, _ = await check(config_for(tmp_path, a.url, b.url), "--format", "json")
    assert code == 2
    document = json.loads(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert document["summary"]["status"] == "critical"
    assert [c["name"] for c in document["clusters"]] == ["c0", "c1"]


async def test_cluster_option_polls_only_the_named_clusters(make_ontap, tmp_path):
    a, b = await make_ontap(), await make_ontap()
    b.records = [akv_record(reachable=False)]
    code, out, _ = await check(config_for(tmp_path, a.url, b.url), "--cluster", "c0")
    assert code == 0
    assert out.startswith("AKV OK - 1 configuration healthy on 1 cluster | ")
    assert b.requests == []


async def test_unknown_cluster_name_is_unknown_and_named(fake_ontap, tmp_path):
    config = config_for(tmp_path, fake_ontap.url)
    code, out, _ = await check(config, "--cluster", "c0", "--cluster", "nope")
    assert code == 3
    assert out == 'AKV UNKNOWN - unknown cluster "nope": not a configured cluster name or address\n'
    assert fake_ontap.requests == []


async def test_check_reads_the_exporters_unreachable_streaks_and_never_writes_them(
    fake_ontap, tmp_path
):
    fake_ontap.records = [akv_record("u1", reachable=False)]
    config = config_for(tmp_path, fake_ontap.url)
    started = time.time() - 20 * 60
    state = {"version": 1, "azure_unreachable_since": {"c0": {"u1": started}}}
    config.state_file.write_text(json.dumps(state))
    before = config.state_file.read_bytes()
    code, out, _ = await check(config, "--format", "json")
    assert code == 2
    (akv,) = json.loads(out)["clusters"][0]["akvs"]
    assert akv["azure_unreachable_since"] == started
    assert akv["volumes_offline_deadline"] == started + 3600
    assert config.state_file.read_bytes() == before
    config.state_file.unlink()
    code, out, _ = await check(config)
    assert code == 2
    assert "(in about 60 min)" in out
    assert not config.state_file.exists()


async def test_bad_configuration_is_unknown_not_critical(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("clusters:\n  - address: a\n    usernme: u\n    password: p\n")
    config = type("Bad", (), {"path": path})
    code, out, err = await check(config)
    assert code == 3
    assert out.startswith("AKV UNKNOWN - bad configuration: ")
    assert "clusters[0].usernme: unknown key (did you mean 'username'?)" in out
    assert len(out.splitlines()) == 1
    assert "usernme" in err


async def test_timeout_option_bounds_a_hung_cluster(fake_ontap, tmp_path):
    async def hang(request):
        await asyncio.sleep(60)

    fake_ontap.handler = hang
    code, out, _ = await check(config_for(tmp_path, fake_ontap.url), "--timeout", "500ms")
    assert code == 3
    assert "c0: cluster not answering (timeout)" in out


async def test_timeout_option_must_be_a_duration(fake_ontap, tmp_path):
    code, _, stderr = await check(config_for(tmp_path, fake_ontap.url), "--timeout", "soon")
    assert code == 2  # argparse's usage error
    assert "'soon' is not a duration" in stderr


async def test_check_polls_like_run_within_the_global_concurrency_cap(make_ontap, tmp_path):
    fakes = [await make_ontap() for _ in range(3)]
    slow = InFlight()
    for fake in fakes:
        fake.handler = slow
    config = config_for(tmp_path, *(f.url for f in fakes), poll="  concurrency: 1\n")
    code, out, _ = await check(config)
    assert code == 0, out
    assert slow.most == 1


async def _with_closed_stdout(*args: str) -> tuple[int, str]:
    """Run the CLI with its stdout a pipe whose reader has already gone; (exit code, stderr)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "akv_exporter.cli",
            *args,
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, stderr.decode()


async def test_every_printing_command_exits_quietly_when_its_reader_goes(make_ontap, tmp_path):
    clusters = [await make_ontap() for _ in range(3)]
    config = config_for(tmp_path, *(cluster.url for cluster in clusters))
    for args in (
        ("check", "--config", str(config.path)),
        ("check", "--config", str(config.path), "--format", "json"),
        ("check-config", str(config.path)),
        ("--version",),
    ):
        code, stderr = await _with_closed_stdout(*args)
        assert "Traceback" not in stderr and "BrokenPipe" not in stderr, (args, stderr)
        assert "Exception ignored" not in stderr, (args, stderr)
        assert code == (0 if args == ("--version",) else 141), args


async def test_check_writes_no_file_in_a_read_only_pod(fake_ontap, tmp_path):
    # The shipped pod: a read-only root filesystem and no writable /tmp. A private mount namespace
    # makes every temporary directory Python would fall back to (TMPDIR, /tmp, /var/tmp, the
    # working directory) and the state file's directory read-only, for the check process alone.
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("this test needs root and unshare (util-linux) to mount read-only")
        pytest.skip("needs root and unshare (util-linux) to make a read-only mount namespace")
    fake_ontap.records = [akv_record("u1", reachable=False)]
    config = config_for(tmp_path, fake_ontap.url)
    started = time.time() - 20 * 60
    state = {"version": 1, "azure_unreachable_since": {"c0": {"u1": started}}}
    config.state_file.write_text(json.dumps(state))
    before = sorted(tmp_path.iterdir())
    read_only = ["/tmp", "/var/tmp", str(tmp_path)]
    mounts = " && ".join(f"mount --bind -o ro {shlex.quote(d)} {shlex.quote(d)}" for d in read_only)
    command = [sys.executable, "-m", "akv_exporter.cli", "check", "--config", str(config.path)]
    script = f"{mounts} && cd {shlex.quote(str(tmp_path))} && exec {shlex.join(command)}"
    process = await asyncio.create_subprocess_exec(
        unshare,
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    out, err = stdout.decode(), stderr.decode()
    assert "Traceback" not in err, err
    assert process.returncode == 2, (out, err)
    assert out.startswith("AKV CRITICAL - "), out
    assert "(in about 40 min)" in out  # the exporter's streak, read from its state file
    assert sorted(tmp_path.iterdir()) == before


def test_check_that_cannot_run_at_all_is_one_unknown_line(tmp_path):
    # Five open files: not even an event loop can be made (its wake-up socket pair is refused).
    path = tmp_path / "akv.yml"
    path.write_text("clusters:\n  - {name: a, address: 127.0.0.1, username: u, password: p}\n")
    result = subprocess.run(
        [sys.executable, "-m", "akv_exporter.cli", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (5, 5)),
    )
    assert result.returncode == 3, result
    assert result.stdout == "AKV UNKNOWN - check failed: OSError: [Errno 24] Too many open files\n"
    assert result.stderr == ""


async def refuse_the_akv_query(request):
    """ONTAP's answer when the AKV query itself fails (65537549, NetApp's REST reference)."""
    if request.path == "/api/cluster":
        return web.json_response(
            {"name": "c1", "uuid": "cccc", "version": {"generation": 9, "major": 14, "minor": 1}}
        )
    body = {"error": {"code": "65537549", "message": "unreachable from one or more nodes."}}
    return web.json_response(body, status=500)


async def test_an_akv_query_error_is_named_so_and_check_counts_as_the_page(fake_ontap, tmp_path):
    fake_ontap.records = [akv_record("u1"), akv_record("u2", "vs2")]
    config = config_for(tmp_path, fake_ontap.url)
    clock = Clock()
    exporter = exporter_with_clock(config, clock)
    await exporter.poll_all()
    fake_ontap.handler = refuse_the_akv_query
    clock.now += 60
    await exporter.poll_all()
    page = exporter.status()  # what the page and /api/v1/status show: two configurations last known
    await exporter.stop()
    assert [len(c.key_managers) for c in page.clusters] == [2]

    code, out, _ = await check(config)  # one poll, nothing known from before
    first, *rest = out.splitlines()
    assert code == 2
    counted = perfdata(first)
    summary = to_json(page)["summary"]
    for perf, key in [
        ("configurations", "configurations"),
        ("unreachable", "configurations_unreachable"),
        ("akv_errors", "clusters_akv_error"),
        ("volumes_at_stake", "volumes_at_stake"),
    ]:
        assert counted[perf] == str(summary[key]), (perf, counted[perf], summary[key])
    rows = [" ".join(line.split()) for line in rest]
    assert "c0 AKV QUERY ERROR AZURE_UNREACHABLE - - -" in rows
    assert not [row for row in rows if "NO AKV CONFIGURATION" in row]
    assert (
        "c0: ONTAP answered the AKV query with an error (code 65537549): unreachable from one or"
        " more nodes. (no configuration known)"
    ) in rows


async def test_a_cluster_without_akv_configurations_is_still_named_so(fake_ontap, tmp_path):
    fake_ontap.records = []
    code, out, _ = await check(config_for(tmp_path, fake_ontap.url))
    assert code == 0
    rows = [" ".join(line.split()) for line in out.splitlines()]
    assert "c0 NO AKV CONFIGURATION HEALTHY - - -" in rows


def fleet_file(
    tmp_path, url: str, team_url: str, *, broken: str, poll: str = "60s"
) -> SimpleNamespace:
    """c0 (answering at ``url``), c1 whose entry has the problem ``broken``, and a team file's
    t0 (answering at ``team_url``)."""
    (tmp_path / "teams").mkdir(exist_ok=True)
    (tmp_path / "teams" / "storage.yml").write_text(
        f"- name: t0\n  address: {team_url}\n  username: admin\n  password: p\n"
    )
    path = tmp_path / "akv.yml"
    path.write_text(
        f"state_file: {tmp_path / 'state.json'}\n"
        f"poll: {{interval: {poll}, timeout: 2s}}\n"
        f"inventory: {{clusters_dir: {tmp_path / 'teams'}}}\n"
        "defaults: {username: admin}\n"
        "clusters:\n"
        f"  - {{name: c0, address: {url}, password: p}}\n"
        f"  - {{name: c1, address: 127.0.0.1:9, {broken}}}\n"
    )
    return SimpleNamespace(path=path)


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ("password_env: AKV_TEST_UNSET_VARIABLE", "environment variable AKV_TEST_UNSET_VARIABLE"),
        ("pasword: p", "clusters[1].pasword: unknown key"),
    ],
    ids=["unset-variable", "typo"],
)
async def test_check_cluster_is_decided_only_by_the_clusters_asked_about(
    make_ontap, tmp_path, monkeypatch, broken, problem
):
    monkeypatch.delenv("AKV_TEST_UNSET_VARIABLE", raising=False)
    a, b = await make_ontap(), await make_ontap()
    fleet = fleet_file(tmp_path, a.url, b.url, broken=broken)
    code, out, err = await check(fleet, "--cluster", "c0", "--cluster", "t0")
    assert code == 0, out
    assert out.startswith("AKV OK - 2 configurations healthy on 2 clusters | ")
    assert problem in err  # still named, where the runner logs it
    # The cluster with the problem, or the whole fleet, is still UNKNOWN, naming it.
    for asked in (["--cluster", "c1"], ["--cluster", "c0", "--cluster", "c1"], []):
        code, out, _ = await check(fleet, *asked)
        assert code == 3, (asked, out)
        assert out.startswith("AKV UNKNOWN - bad configuration: ") and problem in out, out


async def test_check_cluster_is_unknown_for_a_problem_of_the_whole_file(make_ontap, tmp_path):
    a, b = await make_ontap(), await make_ontap()
    fleet = fleet_file(tmp_path, a.url, b.url, broken="password: p", poll="soon")
    code, out, _ = await check(fleet, "--cluster", "c0")
    assert code == 3
    assert out.startswith("AKV UNKNOWN - bad configuration: ") and "poll.interval" in out
