"""The configuration file: valid files load with defaults merged; every bad one says where."""

from __future__ import annotations

import subprocess
import sys

import pytest

from akv_exporter.config import ConfigError, cluster_url, load_config, parse_duration
from akv_exporter.inventory import load
from tests.helpers.configs import write_config
from tests.helpers.repository import REPO

GOOD = """
poll:
  interval: 30s
  timeout: 10s
defaults:
  username: monitor
  password_env: AKV_TEST_PASSWORD
  tls:
    verify: true
  labels:
    datacenter: dc1
clusters:
  - name: cluster-a
    address: 10.0.0.10
  - address: ontap-b.example.com:8443
    labels:
      datacenter: dc2
      team: storage
  - address: https://[fd00::1]
    username: other
    password: ${AKV_TEST_INLINE}
"""


ONE = "clusters:\n  - address: a\n    username: u\n    password: p\n"


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("AKV_TEST_PASSWORD", "s3cret")
    monkeypatch.setenv("AKV_TEST_INLINE", "inline-secret")


def problems_of(tmp_path, body) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, body))
    return caught.value.problems


def test_good_file_merges_defaults_into_every_cluster(tmp_path):
    config = load_config(write_config(tmp_path, GOOD))
    a, b, c = config.clusters
    assert config.poll.interval == 30 and config.poll.timeout == 10
    assert a.name == "cluster-a" and a.url == "https://10.0.0.10:443"
    assert a.username == "monitor" and a.secret.kind == "password_env"
    assert dict(a.labels) == {"datacenter": "dc1"}
    assert b.name is None and b.key == "ontap-b.example.com:8443"
    assert dict(b.labels) == {"datacenter": "dc2", "team": "storage"}
    assert c.url == "https://[fd00::1]:443" and c.username == "other"
    assert c.secret.kind == "password" and c.secret.value == "inline-secret"


def test_inline_password_never_shows_in_repr(tmp_path):
    config = load_config(write_config(tmp_path, GOOD))
    assert "inline-secret" not in repr(config)


def test_typo_names_file_line_key_and_suggests_the_nearest(tmp_path):
    (problem,) = problems_of(tmp_path, "pol:\n  interval: 30s\nclusters: []\n")[:1]
    assert problem.startswith(f"{tmp_path / 'akv.yml'}:1: pol: unknown key")
    assert "did you mean 'poll'" in problem


def test_typo_inside_a_cluster_names_its_path(tmp_path):
    problems = problems_of(
        tmp_path,
        """
        clusters:
          - address: a
            usernme: x
            password: y
        """,
    )
    assert any(
        ":3: clusters[0].usernme: unknown key (did you mean 'username'?)" in p for p in problems
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            ONE + "poll:\n  interval: soon\n",
            "poll.interval: 'soon' is not a duration",
        ),
        (
            ONE + "poll:\n  concurrency: 0\n",
            "poll.concurrency: must be between 1 and 10000",
        ),
        (
            ONE + "poll:\n  interval: 10s\n  timeout: 20s\n",
            "poll.timeout: must not exceed poll.interval",
        ),
        (
            "clusters:\n  - address: ftp://a\n    username: u\n    password: p\n",
            "clusters[0].address: scheme 'ftp' is not http or https",
        ),
        (
            "clusters:\n  - address: https://u:p@a\n    username: u\n    password: p\n",
            "credentials do not belong in the address",
        ),
        ("clusters:\n  - address: a\n    password: p\n", "clusters[0].username: is missing"),
        ("clusters:\n  - address: a\n    username: u\n", "clusters[0].password: no secret"),
        (
            ONE + "    password_env: X\n",
            "give only one of",
        ),
        (
            "clusters:\n  - address: a\n    username: u\n    password_env: AKV_NOT_SET_ANYWHERE\n",
            "environment variable AKV_NOT_SET_ANYWHERE is not set",
        ),
        (
            "clusters:\n  - address: a\n    username: u\n    password_file: /nonexistent/pw\n",
            "password_file: file '/nonexistent/pw' does not exist",
        ),
        (
            "clusters:\n  - address: a\n    username: u\n    password: ${AKV_NOT_SET_ANYWHERE}\n",
            "clusters[0].password: environment variable AKV_NOT_SET_ANYWHERE is not set",
        ),
        (
            ONE + "    labels:\n      cluster: x\n",
            "clusters[0].labels.cluster: is a label the exporter sets itself",
        ),
        (
            ONE + "    labels:\n      bad-name: x\n",
            "is not a valid Prometheus label name",
        ),
        (
            "clusters:\n  - {name: x, address: a, username: u, password: p}\n"
            "  - {name: x, address: b, username: u, password: p}\n",
            "clusters[1].name: 'x' is already used by clusters[0]",
        ),
        (
            ONE + "    tls:\n      verify: maybe\n",
            "clusters[0].tls.verify: must be true or false",
        ),
        (
            ONE + "    tls:\n      ca_file: /nope.pem\n",
            "clusters[0].tls.ca_file: file '/nope.pem' does not exist",
        ),
        (
            "clusters:\n  - address: a\n    client_cert_file: /nope.pem\n",
            "clusters[0].client_cert_file: file '/nope.pem' does not exist",
        ),
        (
            "web:\n  listen: nowhere\nclusters:\n  - {address: a, username: u, password: p}\n",
            "web.listen: 'nowhere' is not HOST:PORT",
        ),
        (
            "web:\n  basic_auth_users:\n    prom: plaintext\n" + ONE,
            "web.basic_auth_users.prom: must be a bcrypt hash",
        ),
        ("clusters: []\n", "clusters: must be a non-empty list"),
        ("poll: {}\n", "clusters: is missing"),
        ("clusters:\n  - address: a\n  bad: [\n", "(yaml)"),
        ("clusters: {a: 1}\nclusters: {b: 2}\n", "duplicate key 'clusters'"),
        ("- just\n- a list\n", "(top level): must be a mapping"),
    ],
)
def test_each_error_class_is_one_line_naming_key_and_reason(tmp_path, body, expected):
    problems = problems_of(tmp_path, body)
    assert any(expected in p for p in problems), problems
    for problem in problems:
        assert "\n" not in problem
        assert problem.startswith(str(tmp_path / "akv.yml") + ":")


def test_all_problems_are_reported_in_one_pass(tmp_path):
    problems = problems_of(tmp_path, "pol: 1\nweb:\n  lisen: x\nclusters: []\n")
    assert len(problems) == 3


def test_a_problem_of_the_whole_file_is_one_line_without_a_line_number(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.yml")
    assert caught.value.problems == [
        f"{tmp_path / 'missing.yml'}: cannot read: No such file or directory"
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("500ms", 0.5),
        (45, 45),
        ("2.5", 2.5),
        ("1d", 86400),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "m5", "-5s", "5x", True])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_addresses_become_base_urls():
    assert cluster_url("10.0.0.1") == "https://10.0.0.1:443"
    assert cluster_url("host:8443") == "https://host:8443"
    assert cluster_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert cluster_url("[::1]:9443") == "https://[::1]:9443"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "akv_exporter.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_exits_0_for_a_good_file(tmp_path):
    result = _cli("check-config", str(write_config(tmp_path, GOOD)))
    assert result.returncode == 0, result.stderr
    assert "OK, 3 cluster(s)" in result.stdout


@pytest.mark.slow
def test_check_config_and_run_exit_2_with_the_same_lines_and_no_traceback(tmp_path):
    path = write_config(tmp_path, "clusters:\n  - address: a\n    usernam: u\n    password: p\n")
    checked = _cli("check-config", str(path))
    run = _cli("run", "--config", str(path))
    assert checked.returncode == 2 and run.returncode == 2
    assert "clusters[0].usernam: unknown key (did you mean 'username'?)" in checked.stderr
    assert checked.stderr == run.stderr
    assert "Traceback" not in run.stderr


def test_the_shipped_example_configuration_is_valid(monkeypatch):
    monkeypatch.setenv("ONTAP_PASSWORD", "x")
    config = load_config(REPO / "config" / "akv-exporter.example.yml")
    assert [c.key for c in config.clusters] == ["cluster-a", "ontap-b.example.com"]
    assert dict(config.clusters[1].labels) == {"datacenter": "dc2"}


@pytest.mark.parametrize("label", ["cluster_uuid", "python_version", "instance"])
def test_a_configured_label_may_not_shadow_one_the_exporter_or_prometheus_sets(tmp_path, label):
    problems = problems_of(tmp_path, ONE + f"    labels:\n      {label}: x\n")
    assert any(f"clusters[0].labels.{label}: is a label the exporter sets" in p for p in problems)


def test_min_interval_defaults_to_ten_seconds_or_the_interval_when_shorter(tmp_path):
    def floor(poll: str) -> float:
        body = f"poll:\n{poll}clusters:\n  - address: h\n    username: u\n    password: p\n"
        return load_config(write_config(tmp_path, body)).poll.poll_floor

    assert floor("  interval: 60s\n") == 10.0
    assert floor("  interval: 5s\n") == 5.0
    assert floor("  interval: 60s\n  min_interval: 30s\n") == 30.0
    assert floor("  interval: 60s\n  min_interval: 0s\n") == 0.0
    problems = problems_of(tmp_path, "poll:\n  interval: 5s\n  min_interval: 10s\n")
    assert any("poll.min_interval: must not exceed poll.interval (5s)" in p for p in problems)


def test_a_typo_in_a_cluster_file_hides_no_duplicate_address_in_that_file(tmp_path):
    directory = tmp_path / "clusters.d"
    directory.mkdir()
    (directory / "team.yml").write_text(
        "- {address: 10.0.0.2, usernme: u, password: p}\n"
        "- {address: 10.0.0.1, username: u, password: p}\n"
    )
    path = write_config(
        tmp_path,
        f"clusters:\n  - {{address: 10.0.0.1, username: u, password: p}}\n"
        f"inventory:\n  clusters_dir: {directory}\n",
    )
    checked = _cli("check-config", str(path))
    assert checked.returncode == 2
    team = directory / "team.yml"
    assert checked.stderr.splitlines() == [
        f"{team}:1: clusters[0].usernme: unknown key (did you mean 'username'?); valid keys here:"
        " username, password, password_env, password_file, credentials_command,"
        " client_cert_file, client_key_file, tls, labels, name, address",
        f"{team}:2: address 'https://10.0.0.1:443' is also defined at {path}:2",
    ]


def test_a_typo_in_the_main_file_hides_no_duplicate_in_the_inventory(tmp_path):
    directory = tmp_path / "clusters.d"
    directory.mkdir()
    (directory / "team.yml").write_text("- {name: same, address: b, username: u, password: p}\n")
    path = write_config(
        tmp_path,
        f"pol: {{}}\nclusters:\n  - {{name: same, address: a, username: u, password: p}}\n"
        f"inventory:\n  clusters_dir: {directory}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert [p.split(": ")[1] for p in caught.value.problems] == [
        "pol",
        f"name 'same' is also defined at {path}:3",
    ], caught.value.problems


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (  # not also "address is missing"
            "clusters:\n  - address: ${AKV_NOT_SET_ANYWHERE}\n    username: u\n    password: p\n",
            ":2: clusters[0].address: environment variable AKV_NOT_SET_ANYWHERE is not set",
        ),
        (  # not also "username is missing"
            "clusters:\n  - address: a\n    username: ${AKV_NOT_SET_ANYWHERE}\n    password: p\n",
            ":3: clusters[0].username: environment variable AKV_NOT_SET_ANYWHERE is not set",
        ),
        (  # not also "address is missing"
            "clusters:\n  - adress: a\n    username: u\n    password: p\n",
            ":2: clusters[0].adress: unknown key (did you mean 'address'?)",
        ),
        (  # not also "username is missing" for every cluster
            "defaults: {usernme: u, password: p}\nclusters:\n  - address: a\n  - address: b\n",
            ":1: defaults.usernme: unknown key (did you mean 'username'?)",
        ),
        (  # not also "no secret"
            "clusters:\n  - address: a\n    username: u\n    password_file: /nonexistent/pw\n",
            ":4: clusters[0].password_file: file '/nonexistent/pw' does not exist",
        ),
        (  # not also "must be a command"
            "clusters:\n  - address: a\n    username: u\n    credentials_command: ''\n",
            ":4: clusters[0].credentials_command: must be a command",
        ),
    ],
)
def test_one_problem_gives_one_line(tmp_path, body, line):
    (problem,) = problems_of(tmp_path, body)
    assert problem.startswith(f"{tmp_path / 'akv.yml'}{line}"), problem


def test_an_inventory_without_watch_interval_is_watched_every_30_seconds(tmp_path):
    directory = tmp_path / "clusters.d"
    directory.mkdir()
    config = load_config(write_config(tmp_path, f"inventory:\n  clusters_dir: {directory}\n"))
    assert config.inventory.watch_interval == 30.0


@pytest.fixture
def no_home(monkeypatch):
    """This process as a user without a home: HOME unset and no passwd entry (a container's
    arbitrary user id), where Python cannot expand ``~``."""
    import pwd

    def no_entry(uid: int):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("AKV_EXPORTER_STATE_FILE", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)


def test_no_state_file_and_no_home_is_one_line_naming_what_to_set(tmp_path, no_home, capsys):
    from akv_exporter.cli import main

    path = write_config(tmp_path, ONE)
    with pytest.raises(SystemExit) as exited:
        main(["check-config", str(path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"{path}:1: state_file: not set, and the default "
        "~/.local/state/akv-exporter/state.json needs a home directory, which this user has "
        "not (HOME is unset and the user id has no passwd entry): set state_file, "
        "or AKV_EXPORTER_STATE_FILE"
    ]


def test_state_file_or_its_variable_is_enough_without_a_home(tmp_path, no_home, monkeypatch):
    written = load_config(write_config(tmp_path, f"state_file: {tmp_path}/s.json\n{ONE}"))
    assert written.state_file == tmp_path / "s.json"
    monkeypatch.setenv("AKV_EXPORTER_STATE_FILE", str(tmp_path / "v.json"))
    assert load_config(write_config(tmp_path, ONE)).state_file == tmp_path / "v.json"


def test_a_tilde_path_without_a_home_names_its_key_and_line(tmp_path, no_home):
    lines = problems_of(tmp_path, f"{ONE}state_file: ~/state.json\n")
    assert lines == [
        f"{tmp_path / 'akv.yml'}:5: state_file: '~/state.json' starts with ~, but "
        "this user has no home directory (HOME is unset and the user id has no passwd "
        "entry): set HOME, or write the path in full"
    ]


def test_a_tilde_path_in_the_web_configuration_file_without_a_home_is_one_line(tmp_path, no_home):
    web = write_config(tmp_path, "tls_server_config:\n  cert_file: ~/c.pem\n", name="web.yml")
    body = f"state_file: {tmp_path}/s.json\n{ONE}"
    with pytest.raises(ConfigError) as caught:
        load(write_config(tmp_path, body), web)
    assert caught.value.problems == [
        f"{web}:2: tls_server_config.cert_file: '~/c.pem' starts with ~, but this user has no "
        "home directory (HOME is unset and the user id has no passwd entry): set HOME, "
        "or write the path in full"
    ]
