"""Fleet inventory: Harvest's harvest.yml and a clusters directory, merged, checked and watched."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import textwrap
import time
from pathlib import Path

import pytest
from ontap_simulator import SimulatorOptions, start_simulator

from akv_exporter.cli import main
from akv_exporter.config import ConfigError
from akv_exporter.exporter import Exporter
from akv_exporter.inventory import load, load_inventory
from akv_exporter.secrets import HARVEST_FILE, HARVEST_SCRIPT, HarvestCredentials, resolve_login

# A Harvest installation as NetApp documents it: exporters, Defaults shared by every poller,
# ONTAP pollers authenticating four ways, and pollers of other kinds that must be left out.
HARVEST = """
Exporters:
  prometheus1:
    exporter: Prometheus
    port_range: 13000-13100

Defaults:
  collectors:
    - Rest
    - RestPerf
  exporters:
    - prometheus1
  username: harvest
  ca_cert: {ca}
  labels:
    - org: storage

Pollers:
  rtp-01:
    datacenter: rtp
    addr: {addr0}
    username: admin
    credentials_script:
      path: ./get_pass
      schedule: 3h
      timeout: 5s
    labels:
      - org: storage
      - team: san
  rtp-01-perf:
    datacenter: rtp
    addr: {addr0}
    collectors:
      - ZapiPerf: [limited.yaml]
    password: unused
  blr-02:
    datacenter: blr
    addr: {addr1}
    credentials_file: secrets/harvest-creds.yml
  nyc-03:
    datacenter: nyc
    addr: {addr2}
    collectors: [CmPerf, Ems]
    password: "{password2}"
    username: admin
  sgrid-1:
    datacenter: rtp
    addr: 10.9.9.9
    collectors: [StorageGrid]
    password: x
  local-unix:
    datacenter: local
    collectors: [Unix]
  cert-04:
    datacenter: ams
    addr: 10.4.4.4
    auth_style: certificate_auth
    ssl_cert: cert/cert-04.pem
    ssl_key: cert/cert-04.key
    use_insecure_tls: true
"""


PASSWORDS = ["pw-zero-secret", "pw-one-secret", "pw-two-secret"]


def write(path: Path, text: str, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    if mode is not None:
        path.chmod(mode)
    return path


def harvest_install(
    directory: Path, addresses: list[str], passwords: list[str], ca: str = "ca.pem"
) -> Path:
    """Write a Harvest directory: harvest.yml, a credentials script, a credentials file, certs."""
    write(directory / "cert" / "cert-04.pem", "certificate\n")
    write(directory / "cert" / "cert-04.key", "key\n")
    if ca == "ca.pem":
        write(directory / "ca.pem", "ca\n")
    # The script records its arguments, as Harvest documents them (addr, then username).
    write(
        directory / "get_pass",
        f"""\
        #!/bin/sh
        echo "$@" >> "{directory}/script-arguments"
        echo '{passwords[0]}'
        """,
        0o755,
    )
    write(
        directory / "secrets" / "harvest-creds.yml",
        f"""
        Pollers:
          blr-02:
            username: admin
            password: '{passwords[1]}'
        """,
    )
    return write(
        directory / "harvest.yml",
        HARVEST.format(
            ca=ca,
            addr0=addresses[0],
            addr1=addresses[1],
            addr2=addresses[2],
            password2=passwords[2],
        ),
    )


def main_config(directory: Path, body: str) -> Path:
    state = directory / "state.json"
    return write(directory / "akv.yml", f"state_file: {state}\n" + textwrap.dedent(body))


def test_harvest_gives_its_ontap_pollers_with_datacenter_labels_and_credentials(tmp_path):
    harvest = harvest_install(tmp_path / "harvest", ["10.0.0.1", "fd00::2", "10.0.0.3"], PASSWORDS)
    config = load_inventory(main_config(tmp_path, f"inventory:\n  harvest: {harvest}\n"))
    by_address = {cluster.address: cluster for cluster in config.clusters}
    assert list(by_address) == ["10.0.0.1", "fd00::2", "10.0.0.3", "10.4.4.4"]
    rtp, blr, nyc, cert = by_address.values()
    assert rtp.name is None  # the cluster label is ONTAP's own name, as on Harvest's series
    assert dict(rtp.labels) == {"datacenter": "rtp", "org": "storage", "team": "san"}
    # A poller's labels replace Defaults' (Harvest consults Defaults per key).
    assert dict(blr.labels) == {"datacenter": "blr", "org": "storage"}
    assert rtp.secret == HarvestCredentials(
        HARVEST_SCRIPT,
        str(harvest.parent / "get_pass"),
        poller="rtp-01",
        addr="10.0.0.1",
        schedule=3 * 3600,
        timeout=5,
    )
    assert rtp.username == "admin" and rtp.tls.ca_file == harvest.parent / "ca.pem"
    assert blr.url == "https://[fd00::2]:443" and blr.username == "admin"
    assert blr.secret.kind == HARVEST_FILE and blr.secret.poller == "blr-02"
    assert nyc.secret.kind == "password" and nyc.secret.value == PASSWORDS[2]
    assert cert.secret is None and cert.username is None
    assert cert.client_cert_file == harvest.parent / "cert" / "cert-04.pem"
    assert cert.tls.verify is False and rtp.tls.verify is True
    assert PASSWORDS[2] not in repr(config)


def test_pollers_left_out_are_listed_with_the_reason(tmp_path):
    harvest = harvest_install(tmp_path / "harvest", ["10.0.0.1", "10.0.0.2", "10.0.0.3"], PASSWORDS)
    inventory = load(main_config(tmp_path, f"inventory:\n  harvest: {harvest}\n"))
    reasons = {where.rsplit(" ", 1)[1].rstrip(")"): why for where, why in inventory.skipped}
    assert reasons == {
        "rtp-01-perf": f"same cluster as {harvest}:18 (poller rtp-01)",
        "sgrid-1": "not an ONTAP poller (collectors: StorageGrid)",
        "local-unix": "not an ONTAP poller (collectors: Unix)",
    }


def test_poller_name_patterns_select_pollers(tmp_path):
    harvest = harvest_install(tmp_path / "harvest", ["10.0.0.1", "10.0.0.2", "10.0.0.3"], PASSWORDS)
    body = f"inventory:\n  harvest: {harvest}\n  harvest_pollers: ['rtp-*', 'nyc-03']\n"
    inventory = load(main_config(tmp_path, body))
    assert [c.address for c in inventory.config.clusters] == ["10.0.0.1", "10.0.0.3"]
    assert ("not selected by inventory.harvest_pollers") in dict(inventory.skipped).values()


@pytest.mark.parametrize(
    ("poller", "defaults", "expected"),
    [
        # Harvest's order: certificate, password, script, file; the poller before Defaults.
        ("auth_style: certificate_auth\n    password: p", "", "certificate"),
        ("password: p\n    credentials_script: {path: ./get_pass}", "", "password"),
        ("credentials_file: creds.yml\n    credentials_script: {path: ./get_pass}", "", "script"),
        ("credentials_file: creds.yml", "password: d", "file"),
        ("", "auth_style: certificate_auth", "certificate"),
        ("", "credentials_script: {path: ./get_pass}\n  password: d", "password"),
        ("", "credentials_script: {path: ./get_pass}", "script"),
        ("", "credentials_file: creds.yml", "file"),
    ],
)
def test_authentication_follows_harvests_precedence(tmp_path, poller, defaults, expected):
    write(tmp_path / "get_pass", "#!/bin/sh\necho pw\n", 0o755)
    write(tmp_path / "creds.yml", "Defaults:\n  username: u\n  password: f\n")
    write(tmp_path / "cert" / f"{socket.gethostname()}.pem", "c\n")
    write(tmp_path / "cert" / f"{socket.gethostname()}.key", "k\n")
    harvest = write(
        tmp_path / "harvest.yml",
        f"Defaults:\n  collectors: [Rest]\n  username: u\n  {defaults}\n"
        f"Pollers:\n  p1:\n    addr: 10.0.0.1\n    {poller}\n",
    )
    (cluster,) = load_inventory(
        main_config(tmp_path, f"inventory: {{harvest: {harvest}}}\n")
    ).clusters
    kind = {
        None: "certificate",
        "password": "password",
        HARVEST_SCRIPT: "script",
        HARVEST_FILE: "file",
    }[cluster.secret.kind if cluster.secret else None]
    assert kind == expected
    if kind == "certificate":  # Harvest's default: cert/<host name>.pem and .key
        assert cluster.client_cert_file == tmp_path / "cert" / f"{socket.gethostname()}.pem"


def test_a_bare_script_name_is_found_next_to_harvest_yml_or_on_path(tmp_path, monkeypatch):
    bin_directory = tmp_path / "bin"
    write(bin_directory / "vault-credentials", "#!/bin/sh\necho pw\n", 0o755)
    monkeypatch.setenv("PATH", f"{bin_directory}{os.pathsep}{os.environ['PATH']}")
    harvest = write(
        tmp_path / "harvest" / "harvest.yml",
        "Pollers:\n  p:\n    collectors: [Rest]\n    addr: 10.0.0.1\n    username: u\n"
        "    credentials_script: {path: vault-credentials}\n",
    )
    (cluster,) = load_inventory(
        main_config(tmp_path, f"inventory: {{harvest: {harvest}}}\n")
    ).clusters
    assert cluster.secret.value == str(bin_directory / "vault-credentials")


def test_harvest_problems_name_file_line_and_harvests_own_key(tmp_path):
    write(tmp_path / "not-executable", "#!/bin/sh\necho pw\n", 0o644)
    harvest = write(
        tmp_path / "harvest.yml",
        """
        Defaults:
          collectors: [Rest]
          ca_cert: /nowhere/ca.pem
        Pollers:
          no-addr:
            password: p
            username: u
          bad-script:
            addr: 10.0.0.2
            credentials_script:
              path: ./not-executable
              schedule: soon
          no-secret:
            addr: 10.0.0.3
            labels:
              - bad-name: x
          no-entry:
            addr: 10.0.0.4
            credentials_file: creds.yml
        """,
    )
    write(tmp_path / "creds.yml", "Pollers:\n  other:\n    password: x\n")
    with pytest.raises(ConfigError) as caught:
        load(main_config(tmp_path, f"inventory:\n  harvest: {harvest}\n"))
    problems = caught.value.problems
    expected = [
        f"{harvest}:5: Pollers.no-addr.addr: is missing",
        f"{harvest}:3: Defaults.ca_cert: file '/nowhere/ca.pem' does not exist",
        f"{harvest}:11: Pollers.bad-script.credentials_script.path: script",
        f"{harvest}:12: Pollers.bad-script.credentials_script.schedule: 'soon' is not a duration",
        f"{harvest}:15: Pollers.no-secret.labels: bad-name: is not a valid Prometheus label name",
        f"{harvest}:13: Pollers.no-secret.password: no credentials",
        f"{harvest}:19: Pollers.no-entry.credentials_file: '{tmp_path / 'creds.yml'}' has no "
        "password under Pollers.no-entry nor Defaults",
    ]
    for start in expected:
        assert any(problem.startswith(start) for problem in problems), (start, problems)
    assert all(problem.count("\n") == 0 for problem in problems)
    assert len(problems) == len(set(problems)) == len(expected)  # Defaults' problem said once


def test_clusters_dir_merges_every_file_with_the_defaults(tmp_path):
    directory = tmp_path / "clusters.d"
    write(directory / "team-a.yml", "- name: a1\n  address: 10.1.0.1\n- address: 10.1.0.2\n")
    write(directory / "team-b.yml", "- name: b1\n  address: 10.2.0.1\n  labels: {team: b}\n")
    write(directory / "empty.yml", "")
    write(directory / ".team-c.yml.swp", "not yaml: [")
    write(directory / "notes.txt", "not a cluster file")
    body = f"""
    defaults: {{username: u, password: p, labels: {{site: ams}}}}
    clusters:
      - name: main
        address: 10.0.0.1
    inventory:
      clusters_dir: {directory}
    """
    config = load_inventory(main_config(tmp_path, body))
    assert [c.key for c in config.clusters] == ["main", "a1", "10.1.0.2", "b1"]
    b1 = config.clusters[3]
    assert dict(b1.labels) == {"site": "ams", "team": "b"} and b1.username == "u"
    assert b1.origin == f"{directory / 'team-b.yml'}:1"


def test_one_name_in_two_places_is_an_error_naming_both(tmp_path):
    directory = tmp_path / "clusters.d"
    harvest = write(
        tmp_path / "harvest.yml",
        "Pollers:\n  p:\n    collectors: [Rest]\n    addr: 10.3.0.1\n    username: u\n"
        "    password: p\n",
    )
    write(directory / "a.yml", "- {name: same, address: 10.1.0.1, username: u, password: p}\n")
    write(
        directory / "b.yml",
        "- {address: 10.2.0.1, username: u, password: p}\n"
        "- {name: same, address: 10.3.0.1, username: u, password: p}\n",
    )
    body = f"inventory:\n  clusters_dir: {directory}\n  harvest: {harvest}\n"
    with pytest.raises(ConfigError) as caught:
        load(main_config(tmp_path, body))
    assert caught.value.problems == [
        f"{directory / 'b.yml'}:2: name 'same' is also defined at {directory / 'a.yml'}:1",
        f"{directory / 'b.yml'}:2: address 'https://10.3.0.1:443' is also defined at "
        f"{harvest}:2 (poller p)",
    ]


def test_clusters_dir_file_problems_name_file_line_and_key(tmp_path):
    directory = tmp_path / "clusters.d"
    write(directory / "a.yml", "- name: x\n  address: 10.1.0.1\n  pasword: p\n")
    write(directory / "b.yml", "- name: [\n")
    body = f"defaults: {{username: u, password: p}}\ninventory:\n  clusters_dir: {directory}\n"
    with pytest.raises(ConfigError) as caught:
        load(main_config(tmp_path, body))
    first, second = caught.value.problems
    assert first.startswith(f"{directory / 'a.yml'}:3: clusters[0].pasword: unknown key")
    assert "did you mean 'password'" in first
    assert second.startswith(f"{directory / 'b.yml'}:2: (yaml):")


def test_check_config_list_prints_every_cluster_and_where_it_is_defined(tmp_path, capsys):
    harvest = harvest_install(tmp_path / "harvest", ["10.0.0.1", "10.0.0.2", "10.0.0.3"], PASSWORDS)
    directory = tmp_path / "clusters.d"
    write(directory / "team.yml", "- {name: t1, address: 10.7.0.1, username: u, password: p}\n")
    path = main_config(tmp_path, f"inventory:\n  harvest: {harvest}\n  clusters_dir: {directory}\n")
    assert main(["check-config", str(path), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path}: OK, 5 cluster(s)"
    assert lines[1].split() == ["CLUSTER", "ADDRESS", "DEFINED", "AT", "LABELS"]
    rtp = next(line for line in lines if "(poller rtp-01)" in line)
    assert "10.0.0.1" in rtp and f"{harvest}:18" in rtp and "datacenter=rtp,org=storage" in rtp
    team = next(line for line in lines if line.startswith("t1 "))
    assert f"{directory / 'team.yml'}:1" in team
    assert any(line.startswith("skipped ") and "sgrid-1" in line for line in lines)
    assert not any(password in "\n".join(lines) for password in PASSWORDS)


# --- credentials at run time --------------------------------------------------------------------


def script(tmp_path: Path, body: str) -> HarvestCredentials:
    path = write(tmp_path / "get_credentials", "#!/bin/sh\n" + textwrap.dedent(body), 0o755)
    return HarvestCredentials(HARVEST_SCRIPT, str(path), poller="p", addr="10.0.0.1", timeout=5)


async def test_script_gets_addr_and_username_and_its_plain_output_is_the_password(tmp_path):
    source = script(tmp_path, f'echo "$@" > {tmp_path}/arguments\necho "  s3cret # x "\n')
    login = await resolve_login("admin", source)
    assert (login.username, login.password) == ("admin", "s3cret # x")
    assert (tmp_path / "arguments").read_text() == "10.0.0.1 admin\n"
    from akv_exporter.secrets import SecretError

    with pytest.raises(SecretError, match="printed no username"):
        await resolve_login(None, source)  # no username: the address alone
    assert (tmp_path / "arguments").read_text() == "10.0.0.1\n"


async def test_script_yaml_output_may_name_the_user_or_give_a_token(tmp_path):
    source = script(tmp_path, "printf 'username: myuser\\npassword: \"my # password\"\\n'\n")
    login = await resolve_login("admin", source)
    assert (login.username, login.password) == ("myuser", "my # password")
    assert login.authorization.startswith("Basic ")
    token = await resolve_login("admin", script(tmp_path, "echo 'authToken: abc.def'\n"))
    assert token.authorization == "Bearer abc.def"
    assert "abc" not in repr(token) and "my # password" not in repr(login)


async def test_script_failures_say_status_never_output(tmp_path):
    from akv_exporter.secrets import SecretError

    with pytest.raises(SecretError) as caught:
        await resolve_login("u", script(tmp_path, "echo leaked-secret\necho err >&2\nexit 3\n"))
    assert "exited with status 3" in str(caught.value) and "leaked" not in str(caught.value)
    with pytest.raises(SecretError, match="printed no password"):
        await resolve_login("u", script(tmp_path, "true\n"))


async def test_a_script_past_its_timeout_is_killed_with_its_children(tmp_path):
    from akv_exporter.secrets import SecretError

    pid_file = tmp_path / "child.pid"
    source = script(tmp_path, f"sleep 60 &\necho $! > {pid_file}\nwait\n")
    source = HarvestCredentials(**{**_fields(source), "timeout": 0.5})
    with pytest.raises(SecretError, match=r"timed out after 0\.5s"):
        await resolve_login("u", source)
    child = int(pid_file.read_text())
    for _ in range(50):  # hang guard only: the kill is immediate
        if not _alive(child):
            break
        await asyncio.sleep(0.1)
    assert not _alive(child)


def _fields(source: HarvestCredentials) -> dict:
    names = ("kind", "value", "poller", "addr", "schedule", "timeout")
    return {name: getattr(source, name) for name in names}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its reaper is dead too
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def test_script_schedule_sets_how_long_its_answer_is_used(tmp_path):
    source = script(tmp_path, "echo pw\n")
    timed = await resolve_login("u", HarvestCredentials(**{**_fields(source), "schedule": 3600}))
    always = await resolve_login("u", HarvestCredentials(**{**_fields(source), "schedule": 0}))
    now = asyncio.get_running_loop().time()
    assert not timed.expired(now) and timed.expired(now + 3601)
    assert always.expired(now)


# --- polling: the real simulator over HTTPS ------------------------------------------------------


@pytest.fixture
async def simulator():
    running = await start_simulator(SimulatorOptions(clusters=6, seed=13, out=io.StringIO()))
    yield running
    await running.stop()


def host_port(url: str) -> str:
    return url.removeprefix("https://")


async def test_harvest_pollers_are_polled_with_harvests_datacenter_and_labels(simulator, tmp_path):
    sims = simulator.clusters
    harvest = harvest_install(
        tmp_path / "harvest",
        [host_port(c.url) for c in sims[:3]],
        [c.password for c in sims[:3]],
        ca=str(simulator.ca_file),
    )
    # The certificate poller is pointed at no simulator here; leave it out by name.
    body = f"inventory:\n  harvest: {harvest}\n  harvest_pollers: ['rtp-*', 'blr-*', 'nyc-*']\n"
    exporter = Exporter(load_inventory(main_config(tmp_path, body)), process_metrics=False)
    try:
        snapshots = await exporter.poll_all()
        assert [s.up for s in snapshots.values()] == [True, True, True]
        names = sorted(s.name for s in snapshots.values())
        assert names == sorted(c.name for c in sims[:3])  # ONTAP's own names
        metrics = exporter.scrape().decode()
        for cluster, datacenter in zip(sims[:3], ["rtp", "blr", "nyc"], strict=True):
            up = [
                line
                for line in metrics.splitlines()
                if line.startswith("akv_exporter_cluster_up{")
                and f'cluster="{cluster.name}"' in line
                and f'datacenter="{datacenter}"' in line
            ]
            assert up and up[0].endswith(" 1"), (cluster.name, metrics)
        arguments = (harvest.parent / "script-arguments").read_text().split()
        assert arguments == [host_port(sims[0].url), "admin"]
    finally:
        await exporter.stop()


@pytest.mark.slow
async def test_clusters_dir_churn_while_polling_is_applied_as_a_reload(simulator, tmp_path):
    sims = simulator.clusters
    directory = tmp_path / "clusters.d"

    def entry(index: int) -> str:
        c = sims[index]
        return (
            f"- {{name: {c.name}, address: '{c.url}', username: {c.username}, "
            f"password: '{c.password}'}}\n"
        )

    write(directory / "team-a.yml", entry(0) + entry(1))
    write(directory / "team-b.yml", entry(2))
    body = f"""
    poll: {{interval: 1s, timeout: 1s}}
    defaults: {{tls: {{ca_file: {simulator.ca_file}}}}}
    inventory: {{clusters_dir: {directory}, watch_interval: 1s}}
    """
    path = main_config(tmp_path, body)
    exporter = Exporter(load_inventory(path), process_metrics=False)
    await exporter.start()
    try:
        await _until(lambda: all(s.up for s in exporter.snapshots().values()), "first polls")
        kept = exporter.poller._clusters[sims[0].name]
        polls_before = kept.client.requests.total()

        # A team adds a file, another drops a cluster: picked up by the watcher alone.
        write(directory / "team-c.yml", entry(3) + entry(4))
        write(directory / "team-b.yml", "[]\n")
        want = {sims[i].name for i in (0, 1, 3, 4)}
        await _until(lambda: set(exporter.snapshots()) == want, "the churn to apply")
        await _until(lambda: all(s.up for s in exporter.snapshots().values()), "new polls")
        metrics = exporter.scrape().decode()
        assert f'cluster="{sims[3].name}"' in metrics and f'cluster="{sims[2].name}"' not in metrics
        # The unchanged cluster kept its poller entry, client and counters.
        assert exporter.poller._clusters[sims[0].name] is kept
        await _until(lambda: kept.client.requests.total() > polls_before, "kept cluster polling")
        assert reload_successful(exporter) == "1"

        # A broken file is refused whole; the running inventory stays.
        write(directory / "team-c.yml", entry(3) + "- name: [\n")
        write(directory / "team-d.yml", entry(5))
        await _until(lambda: reload_successful(exporter) == "0", "the refusal")
        assert set(exporter.snapshots()) == want
        assert exporter.last_reload_error.startswith(f"{directory / 'team-c.yml'}:3: (yaml): ")

        # Fixed: the whole change applies.
        write(directory / "team-c.yml", entry(3))
        await _until(
            lambda: set(exporter.snapshots()) == {sims[i].name for i in (0, 1, 3, 5)}, "fix"
        )
        assert exporter.last_reload_error is None and reload_successful(exporter) == "1"
    finally:
        await exporter.stop()


def reload_successful(exporter: Exporter) -> str:
    """Return the value of akv_exporter_config_last_reload_successful as exposed."""
    (line,) = [
        line
        for line in exporter.scrape().decode().splitlines()
        if line.startswith("akv_exporter_config_last_reload_successful")
    ]
    return line.rsplit(" ", 1)[1]


async def _until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout  # a hang guard, not a speed assertion
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _client_certificate(directory: Path, common_name: str) -> tuple[Path, Path]:
    """Write a self-signed client certificate (clientAuth) and its key; return their paths."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{common_name}.pem", directory / f"{common_name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_harvest_certificate_auth_presents_the_client_certificate(tmp_path):
    import ssl

    from aiohttp import web
    from ontap_simulator.tls import write_certificates

    from tests.helpers.fake_ontap import FakeOntap

    harvest_home = tmp_path / "harvest"
    (harvest_home / "cert").mkdir(parents=True)
    server_files = write_certificates(tmp_path)
    cert_file, _ = _client_certificate(harvest_home / "cert", "harvest-monitor")
    # A cluster that accepts only that client certificate, as ONTAP's cert login does.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server_files.cert_file, server_files.key_file)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cert_file)
    ontap = FakeOntap()
    runner = web.AppRunner(ontap.app(), shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    port = runner.addresses[0][1]
    harvest = write(
        harvest_home / "harvest.yml",
        f"""
        Defaults:
          collectors: [Rest]
          auth_style: certificate_auth
          ca_cert: {server_files.ca_file}
        Pollers:
          ams-04:
            datacenter: ams
            addr: 127.0.0.1:{port}
            ssl_cert: cert/harvest-monitor.pem
            ssl_key: cert/harvest-monitor.key
        """,
    )
    path = main_config(tmp_path, f"inventory:\n  harvest: {harvest}\n")
    exporter = Exporter(load_inventory(path), process_metrics=False)
    try:
        (snapshot,) = (await exporter.poll_all()).values()
        assert snapshot.up and snapshot.name == "c1"
        # The AKV request's connection is the one kept alive (the identity's is closed).
        (akvs,) = ontap.asked("/api/security/azure-key-vaults")
        peer = akvs.transport.get_extra_info("peercert")
        assert ("commonName", "harvest-monitor") in (
            pair for rdn in peer["subject"] for pair in rdn
        )
        assert not any("Authorization" in r.headers for r in ontap.requests)
    finally:
        await exporter.stop()
        await runner.cleanup()


async def test_script_without_any_username_is_refused(tmp_path):
    from akv_exporter.secrets import SecretError

    with pytest.raises(SecretError, match="printed no username"):
        await resolve_login(None, script(tmp_path, "echo pw\n"))
    login = await resolve_login(None, script(tmp_path, "printf 'username: u\\npassword: p\\n'\n"))
    assert (login.username, login.password) == ("u", "p")


def test_poller_files_add_pollers_and_a_poller_defined_twice_names_both(tmp_path):
    pollers = "Pollers:\n  {name}:\n    collectors: [Rest]\n    addr: {addr}\n    password: p\n"
    harvest = write(
        tmp_path / "harvest.yml",
        "Defaults: {username: u}\nPoller_files: [configs/*.yml]\n"
        + pollers.format(name="main", addr="10.0.0.1"),
    )
    write(tmp_path / "configs" / "b.yml", pollers.format(name="b", addr="10.0.0.3"))
    write(tmp_path / "configs" / "a.yml", pollers.format(name="a", addr="10.0.0.2"))
    path = main_config(tmp_path, f"inventory:\n  harvest: {harvest}\n")
    config = load_inventory(path)
    assert [c.address for c in config.clusters] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert config.clusters[1].username == "u"  # harvest.yml's Defaults apply
    write(tmp_path / "configs" / "c.yml", pollers.format(name="a", addr="10.0.0.4"))
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.problems == [
        f"{tmp_path / 'configs' / 'c.yml'}:2: Pollers.a: poller is also defined at "
        f"{tmp_path / 'configs' / 'a.yml'}:2"
    ]


@pytest.mark.slow
async def test_harvest_changes_are_picked_up_by_the_watcher(simulator, tmp_path):
    sims = simulator.clusters

    def poller(index: int) -> str:
        c = simulator.clusters[index]
        return (
            f"  sim-{index}:\n    datacenter: dc{index}\n    addr: {host_port(c.url)}\n"
            f"    username: {c.username}\n    password: '{c.password}'\n"
        )

    head = f"Defaults:\n  collectors: [Rest]\n  ca_cert: {simulator.ca_file}\n"
    head += "Poller_files: [more/*.yml]\nPollers:\n"
    harvest = write(tmp_path / "harvest" / "harvest.yml", head + poller(0) + poller(1))
    body = f"""
    poll: {{interval: 1s, timeout: 1s}}
    inventory: {{harvest: {harvest}, watch_interval: 1s}}
    """
    exporter = Exporter(load_inventory(main_config(tmp_path, body)), process_metrics=False)
    await exporter.start()
    try:
        await _until(lambda: all(s.up for s in exporter.snapshots().values()), "first polls")
        names = lambda: {s.name for s in exporter.snapshots().values() if s.up}  # noqa: E731
        assert names() == {sims[0].name, sims[1].name}
        kept = exporter.poller._clusters[host_port(sims[0].url)]

        # A poller removed from harvest.yml, another added in a new Poller_files file.
        write(harvest, head + poller(0))
        write(harvest.parent / "more" / "site.yml", "Pollers:\n" + poller(2))
        await _until(lambda: names() == {sims[0].name, sims[2].name}, "the change")
        assert exporter.poller._clusters[host_port(sims[0].url)] is kept
        assert 'datacenter="dc2"' in exporter.scrape().decode()

        # A broken harvest.yml is refused; what runs stays.
        write(harvest, head + poller(0) + "  sim-9: [\n")
        await _until(lambda: reload_successful(exporter) == "0", "the refusal")
        assert names() == {sims[0].name, sims[2].name}
        assert exporter.last_reload_error.startswith(f"{harvest}:")
    finally:
        await exporter.stop()


async def test_harvest_values_are_strings_as_written(tmp_path):
    write(tmp_path / "creds.yml", "Pollers:\n  b:\n    username: 007\n    password: 0123\n")
    harvest = write(
        tmp_path / "harvest.yml",
        """
        Defaults:
          collectors: [Rest]
        Pollers:
          a:
            datacenter: 010
            addr: 10.0.0.1
            username: admin
            password: 0777
            labels:
              - rack: 0010
              - leased: yes
          b:
            addr: 10.0.0.2
            credentials_file: creds.yml
        """,
    )
    a, b = load_inventory(main_config(tmp_path, f"inventory: {{harvest: {harvest}}}\n")).clusters
    assert a.secret.value == "0777"  # not 511, YAML 1.1's octal
    assert dict(a.labels) == {"datacenter": "010", "rack": "0010", "leased": "yes"}
    login = await resolve_login(b.username, b.secret)
    assert (login.username, login.password) == ("007", "0123")


async def test_a_script_is_bounded_by_the_polls_budget_and_its_output_is_capped(tmp_path):
    from akv_exporter.secrets import SecretError

    with pytest.raises(SecretError, match=r"timed out after 0\.3s"):
        await resolve_login("u", script(tmp_path, "sleep 30\n"), timeout=0.3)
    with pytest.raises(SecretError, match="printed more than 64 KiB") as caught:
        await resolve_login("u", script(tmp_path, "head -c 200000 /dev/zero | tr '\\0' x\n"))
    assert "xxx" not in str(caught.value)


@pytest.mark.slow
async def test_run_picks_up_a_cluster_added_to_either_source_on_metrics(simulator, tmp_path):
    """What a user does: `run` on Harvest's file and a directory, then adds a cluster to each."""
    import signal
    import subprocess
    import sys

    from tests.helpers.exposition import find
    from tests.helpers.loopback import fetch, free_port, wait_until

    sims = simulator.clusters
    harvest_home = tmp_path / "harvest"
    write(harvest_home / "get_pass", f"#!/bin/sh\necho '{sims[0].password}'\n", 0o755)
    head = (
        f"Defaults:\n  collectors: [Rest, RestPerf]\n  ca_cert: {simulator.ca_file}\n"
        f"  username: {sims[0].username}\nPollers:\n"
        f"  rtp-0:\n    datacenter: rtp\n    addr: {host_port(sims[0].url)}\n"
        "    credentials_script: {path: ./get_pass}\n"
    )
    harvest = write(harvest_home / "harvest.yml", head)
    directory = tmp_path / "clusters.d"
    directory.mkdir()
    body = f"""
    poll: {{interval: 1s, timeout: 1s}}
    defaults: {{tls: {{ca_file: {simulator.ca_file}}}}}
    inventory: {{harvest: {harvest}, clusters_dir: {directory}, watch_interval: 1s}}
    """
    path = main_config(tmp_path, body)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "akv_exporter.cli", "run", "--config", str(path)),
        *("--listen", f"127.0.0.1:{port}"),
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def up(name: str, **labels: str) -> bool:
        metrics = fetch(f"http://127.0.0.1:{port}/metrics")
        return find(metrics, "akv_exporter_cluster_up", cluster=name, **labels) == [1.0]

    try:
        # In threads: the simulator answers from this test's event loop.
        await asyncio.to_thread(wait_until, lambda: up(sims[0].name, datacenter="rtp"), "rtp-0", 60)
        write(
            harvest,
            head + f"  blr-1:\n    datacenter: blr\n    addr: {host_port(sims[1].url)}\n"
            f"    password: '{sims[1].password}'\n",
        )
        write(
            directory / "team.yml",
            f"- {{name: {sims[2].name}, address: '{sims[2].url}', "
            f"username: {sims[2].username}, password: '{sims[2].password}'}}\n",
        )
        for name, labels in ((sims[1].name, {"datacenter": "blr"}), (sims[2].name, {})):
            await asyncio.to_thread(wait_until, lambda: up(name, **labels), name, 60)  # noqa: B023
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        stderr = (await process.stderr.read()).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "inventory files changed; reloading" in stderr
    assert not any(c.password in stderr for c in sims[:3])
