"""The alerting deliverables: rule files, their promtool suites, the Prometheus and
Alertmanager examples, and the contract between rules, runbooks and the spec.

Tests marked `prometheus` drive Debian's promtool and amtool for real and fail,
never skip, when they are missing.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "config" / "prometheus"
RULES = PROMETHEUS_DIR / "alerts.yml"
FAST_RULES = PROMETHEUS_DIR / "alerts-fast.yml"
RULE_FILES = [RULES, FAST_RULES]
PROMETHEUS_CONFIGS = [PROMETHEUS_DIR / "prometheus.yml", PROMETHEUS_DIR / "prometheus-probe.yml"]
ALERTMANAGER_CONFIG = ROOT / "config" / "alertmanager" / "alertmanager.yml"
PROMTOOL_SUITES = sorted((ROOT / "tests" / "promtool").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
# The other key managers' runbooks, generated from the same declaration as their alerts.
KEY_MANAGER_RUNBOOKS = ROOT / "docs" / "runbooks-key-managers.md"
PROVIDERS = yaml.safe_load((PROMETHEUS_DIR / "rules" / "providers.yml").read_text())

# Every runbook_url is this plus "#" and an anchor of docs/runbooks.md: by default a Prometheus
# template naming the page an exporter Prometheus scrapes serves (/docs/runbooks).
RUNBOOK_BASE = (PROMETHEUS_DIR / "rules" / "runbook-base").read_text().strip()
# The alert names of the interface spec, section 5.
SPEC_ALERTS = {
    "OntapAkvAzureUnreachable",
    "OntapAkvEkmipUnreachable",
    "OntapAkvVolumesOfflineImminent",
    "OntapAkvKekUnavailable",
    "AkvExporterClusterDown",
    "AkvExporterConfigReloadFailed",
    "AkvExporterAbsent",
    # Section 7 (blast radius).
    "OntapAkvEncryptedVolumesOffline",
    "OntapAkvKeyExpired",
    # Section 7 (sharding).
    "AkvExporterShardingMismatch",
    # Section 8 (every key manager).
    *(
        f"Ontap{provider}{alert}"
        for provider in ("GcpKms", "AwsKms", "BarbicanKms")
        for alert in ("Unreachable", "VolumesOfflineImminent", "KekUnavailable")
    ),
    "OntapGcpKmsEkmipUnreachable",
    "OntapAwsKmsEkmipUnreachable",
    "OntapEncryptedVolumesOffline",
    "OntapKmipServerUnreachable",
    "OntapKmipNoServerReachable",
    "OntapKeyStoreBlocked",
}
# Alerts about one AKV configuration (labels cluster, svm, uuid); the blast-radius alerts are
# about an SVM's volumes or a cluster's EMS log instead.
PER_CONFIGURATION = {
    "OntapAkvAzureUnreachable",
    "OntapAkvEkmipUnreachable",
    "OntapAkvVolumesOfflineImminent",
    "OntapAkvKekUnavailable",
    "OntapAkvKekVolumesOfflineImminent",
}
# Beyond the spec (README changelog): ONTAP's documented errors of the AKV GET itself, and the
# countdown of a KEK unavailable for long (NetApp does not say whether it starts ONTAP's hour).
EXTRA_ALERTS = {"OntapAkvGetError", "OntapAkvKekVolumesOfflineImminent"}
SEVERITIES = {"critical", "warning", "info"}
# The one number in an expression that a faster profile may change: `>= 30 * 60`.
THRESHOLD = re.compile(r">= (\d+) \* 60\b")
DEBIAN_PACKAGE = {
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
}


def tool(name: str) -> str:
    """Returns the path of promtool or amtool, failing the test when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: install Debian's {DEBIAN_PACKAGE[name]} package "
            "(`make test` installs prometheus and prometheus-alertmanager)",
            pytrace=False,
        )
    return path


def run(args: list[str], cwd: Path = ROOT) -> str:
    """Runs a command and returns its output; fails the test with that output on a non-zero exit."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{output}"
    return output


def rules_of(path: Path) -> list[dict]:
    """Returns every rule of a rule file, in file order."""
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts_of(path: Path) -> list[dict]:
    """Returns the alerting rules of a rule file."""
    return [rule for rule in rules_of(path) if "alert" in rule]


def seconds(duration: str) -> int:
    """Returns a Prometheus duration such as 5m, 1h30m or 45s in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)([smhd])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(int(number) * units[unit] for number, unit in parts)


def github_anchors(markdown: str) -> set[str]:
    """Returns the anchors GitHub gives the headings of a Markdown document."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


# --- promtool, amtool -----------------------------------------------------------------


@pytest.mark.prometheus
@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_passes_promtool_check(path: Path) -> None:
    output = run([tool("promtool"), "check", "rules", str(path)])
    assert f"SUCCESS: {len(rules_of(path))} rules found" in output


def test_promtool_suites_exist() -> None:
    names = {path.name for path in PROMTOOL_SUITES}
    assert {
        "azure_unreachable.yml",
        "cluster_down.yml",
        "ekmip_kek.yml",
        "exporter.yml",
        "sharding.yml",
        "volumes_offline_imminent.yml",
    } <= names


@pytest.mark.prometheus
@pytest.mark.parametrize("suite", PROMTOOL_SUITES, ids=lambda p: p.name)
def test_promtool_suite_passes(suite: Path) -> None:
    assert yaml.safe_load(suite.read_text())["tests"], f"{suite.name} has no tests"
    output = run([tool("promtool"), "test", "rules", str(suite)], cwd=suite.parent)
    assert "SUCCESS" in output


@pytest.mark.prometheus
@pytest.mark.parametrize("config", PROMETHEUS_CONFIGS, ids=lambda p: p.name)
def test_prometheus_example_is_valid_beside_the_rules(config: Path, tmp_path: Path) -> None:
    # As docs/alerting.md says to install it: the config and alerts.yml in one directory.
    shutil.copy(config, tmp_path / "prometheus.yml")
    shutil.copy(RULES, tmp_path / "alerts.yml")
    output = run([tool("promtool"), "check", "config", "prometheus.yml"], cwd=tmp_path)
    assert f"SUCCESS: {len(rules_of(RULES))} rules found" in output


@pytest.mark.prometheus
def test_alertmanager_example_passes_amtool_check() -> None:
    run([tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG)])


@pytest.mark.prometheus
@pytest.mark.parametrize(
    ("severity", "receiver"),
    [("critical", "pager"), ("warning", "ticket"), ("info", "null"), ("", "ticket")],
)
def test_alertmanager_routes_by_severity(severity: str, receiver: str) -> None:
    labels = ["alertname=OntapAkvAzureUnreachable", "cluster=cluster-a"]
    if severity:
        labels.append(f"severity={severity}")
    command = [tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}"]
    output = run([*command, *labels])
    assert output.splitlines()[0].strip() == receiver


# --- the contract: spec, runbooks, one place for the job name -------------------------


def test_every_alert_of_the_spec_exists_and_no_other() -> None:
    assert {rule["alert"] for rule in alerts_of(RULES)} == SPEC_ALERTS | EXTRA_ALERTS


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_alert_has_severity_summary_description_and_runbook(path: Path) -> None:
    anchors = github_anchors(RUNBOOKS.read_text()) | github_anchors(
        KEY_MANAGER_RUNBOOKS.read_text()
    )
    for rule in alerts_of(path):
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert "{{" not in annotations["summary"], f"{name}: summary must be static"
        assert annotations["description"].strip(), name
        base, _, anchor = annotations["runbook_url"].partition("#")
        assert base == RUNBOOK_BASE, name
        assert anchor == name.lower(), name
        assert anchor in anchors, f"{name}: the runbooks have no heading for #{anchor}"


def test_akv_descriptions_name_cluster_svm_code_and_message() -> None:
    for rule in alerts_of(RULES):
        # OntapAkvGetError speaks of the whole cluster: ONTAP named no configuration; the
        # blast-radius alerts are about an SVM's volumes or the cluster's EMS log.
        if rule["alert"] not in PER_CONFIGURATION:
            continue
        description = rule["annotations"]["description"]
        for needle in ("$labels.cluster", "$labels.svm", "$labels.uuid", 'label "code"'):
            assert needle in description, f"{rule['alert']} description lacks {needle}"
        assert "ontap_akv_status_message_info" in description, rule["alert"]
    ekmip = next(r for r in alerts_of(RULES) if r["alert"] == "OntapAkvEkmipUnreachable")
    assert "$labels.node" in ekmip["annotations"]["description"]


def test_blast_radius_descriptions_name_the_cluster_and_what_ontap_did() -> None:
    offline = [r for r in alerts_of(RULES) if r["alert"] == "OntapAkvEncryptedVolumesOffline"]
    by_severity = {r["labels"]["severity"]: r["annotations"]["description"] for r in offline}
    assert set(by_severity) == {"critical", "warning"}
    for description in by_severity.values():
        assert "$labels.cluster" in description and "$labels.svm" in description
    # Only the page states ONTAP's cause, and quotes the SVM's own configuration.
    assert "ekmip.akv.volOffline for the SVM at" in by_severity["critical"]
    assert 'label "code"' in by_severity["critical"]
    assert "nothing ONTAP reported ties these volumes" in by_severity["warning"]
    assert "Azure Key Vault is unreachable" not in by_severity["warning"]
    expired = next(r for r in alerts_of(RULES) if r["alert"] == "OntapAkvKeyExpired")
    description = expired["annotations"]["description"]
    assert "$labels.svm" in description and 'label "node"' in description


def test_every_lookup_of_a_cluster_series_selects_the_alerts_own_svm_or_configuration() -> None:
    # A query for a configuration's series by cluster alone quotes an arbitrary SVM's vault.
    for rule in alerts_of(RULES):
        description = rule["annotations"]["description"]
        for query in re.findall(r'printf "(ontap_akv_[a-z_]+\{cluster=%q\})"', description):
            pytest.fail(f"{rule['alert']}: {query} does not select the SVM or configuration")


def test_only_absent_names_the_scrape_job_and_the_examples_use_it() -> None:
    naming = {rule["alert"] for rule in rules_of(RULES) if "job=" in rule["expr"]}
    assert naming == {"AkvExporterAbsent"}
    absent = next(r for r in alerts_of(RULES) if r["alert"] == "AkvExporterAbsent")
    job = re.search(r'job="([^"]+)"', absent["expr"]).group(1)
    for config in PROMETHEUS_CONFIGS:
        jobs = [c["job_name"] for c in yaml.safe_load(config.read_text())["scrape_configs"]]
        assert job in jobs, f"{config.name} has no scrape job {job}"


def test_akv_alerts_aggregate_code_away_and_wait_for_the_exporter() -> None:
    # The for timer must survive a change of ONTAP's code (a label), and nothing
    # may start from a state the exporter cannot currently confirm.
    for rule in alerts_of(RULES):
        if rule["alert"].startswith("Ontap"):
            assert "and on (cluster) akv_exporter_cluster_up == 1" in rule["expr"], rule["alert"]
            # OntapAkvGetError keeps its code: the code is what it is about (and its severity).
            if "code" in rule["expr"] and rule["alert"] != "OntapAkvGetError":
                assert "without (code, instance)" in rule["expr"], rule["alert"]


# --- the fast profile ------------------------------------------------------------------


def test_fast_profile_differs_from_the_default_only_in_waits() -> None:
    default, fast = rules_of(RULES), rules_of(FAST_RULES)
    assert [r.get("alert", r.get("record")) for r in fast] == [
        r.get("alert", r.get("record")) for r in default
    ]
    for slow_rule, fast_rule in zip(default, fast, strict=True):
        name = slow_rule.get("alert", slow_rule.get("record"))
        assert set(fast_rule) == set(slow_rule), name
        for key in set(slow_rule) - {"for", "expr"}:
            assert fast_rule[key] == slow_rule[key], f"{name}: {key} differs"
        assert THRESHOLD.sub(">= N * 60", fast_rule["expr"]) == THRESHOLD.sub(
            ">= N * 60", slow_rule["expr"]
        ), f"{name}: expressions differ in more than the threshold"


def test_fast_profile_is_faster() -> None:
    faster = 0
    for slow_rule, fast_rule in zip(rules_of(RULES), rules_of(FAST_RULES), strict=True):
        name = slow_rule.get("alert", slow_rule.get("record"))
        slow_for = seconds(slow_rule.get("for", "0s"))
        fast_for = seconds(fast_rule.get("for", "0s"))
        assert fast_for <= slow_for, name
        slow_threshold = [int(n) for n in THRESHOLD.findall(slow_rule["expr"])]
        fast_threshold = [int(n) for n in THRESHOLD.findall(fast_rule["expr"])]
        assert all(f <= s for f, s in zip(fast_threshold, slow_threshold, strict=True)), name
        faster += fast_for < slow_for or fast_threshold != slow_threshold
    assert faster >= 5


def test_default_waits_are_the_documented_ones() -> None:
    waits = {
        (rule["alert"], rule["labels"]["severity"]): rule.get("for", "0s")
        for rule in alerts_of(RULES)
    }
    assert {alert: wait for (alert, _), wait in waits.items()} | {
        "OntapAkvGetError": waits["OntapAkvGetError", "critical"],
        "AkvExporterAbsent": waits["AkvExporterAbsent", "warning"],
    } == {
        "OntapAkvAzureUnreachable": "5m",
        "OntapAkvEkmipUnreachable": "5m",
        "OntapAkvVolumesOfflineImminent": "0s",
        "OntapAkvKekUnavailable": "15m",
        "AkvExporterClusterDown": "10m",
        "AkvExporterConfigReloadFailed": "0s",
        "AkvExporterAbsent": "5m",
        "OntapAkvGetError": "5m",
        "OntapAkvEncryptedVolumesOffline": "0s",
        "OntapAkvKeyExpired": "0s",
        "AkvExporterShardingMismatch": "10m",
        "OntapAkvKekVolumesOfflineImminent": "0s",
        # Section 8: as the AKV ones, and as the spec's table says.
        **{
            f"Ontap{provider}{alert}": wait
            for provider in ("GcpKms", "AwsKms", "BarbicanKms")
            for alert, wait in (
                ("Unreachable", "5m"),
                ("EkmipUnreachable", "5m"),
                ("VolumesOfflineImminent", "0s"),
                ("KekUnavailable", "15m"),
            )
            if provider != "BarbicanKms" or alert != "EkmipUnreachable"
        },
        "OntapEncryptedVolumesOffline": "0s",
        "OntapKmipServerUnreachable": "10m",
        "OntapKmipNoServerReachable": "5m",
        "OntapKeyStoreBlocked": "5m",
    }
    # A ticket after 5 minutes without an exporter, a page after 15 (docs/alerting.md).
    assert waits["AkvExporterAbsent", "critical"] == "15m"
    # As the per-configuration alerts: 5 minutes for what pages, 15 for the KEK.
    assert waits["OntapAkvGetError", "warning"] == "15m"
    imminent = next(r for r in alerts_of(RULES) if r["alert"] == "OntapAkvVolumesOfflineImminent")
    assert THRESHOLD.findall(imminent["expr"]) == ["30"]


# --- Alertmanager ----------------------------------------------------------------------


def test_alertmanager_groups_by_cluster_and_alertname() -> None:
    route = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())["route"]
    assert route["group_by"] == ["cluster", "alertname"]


def test_alertmanager_inhibits_node_and_kek_alerts_of_the_same_configuration() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    [rule] = config["inhibit_rules"]
    assert rule["equal"] == ["cluster", "uuid"]
    names = {r["alert"] for r in alerts_of(RULES)}

    def matched(matchers: list[str]) -> set[str]:
        [matcher] = matchers
        pattern = re.fullmatch(r'alertname=~"(.+)"', matcher).group(1)
        return {name for name in names if re.fullmatch(pattern, name)}

    clouds = ("GcpKms", "AwsKms", "BarbicanKms")
    assert matched(rule["source_matchers"]) == {
        "OntapAkvAzureUnreachable",
        "OntapAkvVolumesOfflineImminent",
        *(f"Ontap{c}{a}" for c in clouds for a in ("Unreachable", "VolumesOfflineImminent")),
    }
    assert matched(rule["target_matchers"]) == {
        "OntapAkvEkmipUnreachable",
        "OntapAkvKekUnavailable",
        "OntapAkvKekVolumesOfflineImminent",
        *(f"Ontap{c}{a}" for c in clouds for a in ("EkmipUnreachable", "KekUnavailable")),
    } - {"OntapBarbicanKmsEkmipUnreachable"}


@pytest.mark.prometheus  # promtool
def test_set_runbook_base_rewrites_every_runbook_url_and_keeps_valid_rules(tmp_path) -> None:
    rules = tmp_path / "alerts.yml"
    rules.write_text(RULES.read_text())
    base = "https://wiki.example.com/akv-runbooks"
    script = ROOT / "config" / "prometheus" / "set-runbook-base"
    run([sys.executable, str(script), base, str(rules)])
    urls = [rule["annotations"]["runbook_url"] for rule in alerts_of(rules)]
    assert urls and all(url.startswith(base + "#") for url in urls), urls
    assert [url.partition("#")[2] for url in urls] == [
        rule["alert"].lower() for rule in alerts_of(RULES)
    ]
    run([tool("promtool"), "check", "rules", str(rules)])


# --- generated files -------------------------------------------------------------------


def test_generated_rule_files_are_fresh() -> None:
    # alerts.yml from config/prometheus/rules/, alerts-fast.yml from alerts.yml, and the
    # Kubernetes PrometheusRule from alerts.yml: a hand edit of any of them fails here.
    done = subprocess.run(
        [sys.executable, str(PROMETHEUS_DIR / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_fast_profile_is_alerts_yml_with_its_waits_shortened() -> None:
    # Derived, not kept by hand: after its header, alerts-fast.yml is alerts.yml line for line
    # except the waits, and the header names every alert whose wait differs.
    fast = FAST_RULES.read_text()
    header = fast[: fast.index("# Prometheus rules for akv-exporter")]
    slow_lines, fast_lines = RULES.read_text().splitlines(), fast[len(header) :].splitlines()
    differing = [
        (slow, quick) for slow, quick in zip(slow_lines, fast_lines, strict=True) if slow != quick
    ]
    assert len(differing) >= 5
    for slow, _ in differing:
        assert re.fullmatch(r"\s+for: \S+", slow) or THRESHOLD.search(slow), slow
    for rule in alerts_of(RULES):
        if "for" in rule or THRESHOLD.search(rule["expr"]):
            assert f"{rule['alert']} ({rule['labels']['severity']})" in header, rule["alert"]


@pytest.mark.parametrize("suite", PROMTOOL_SUITES, ids=lambda p: p.name)
def test_promtool_suites_evaluate_at_a_realistic_multiple_of_the_scrape(suite: Path) -> None:
    # Samples come every minute, as the exporter polls; evaluating every second made the suites
    # 10 times slower without testing anything a 15-second cadence does not.
    interval = yaml.safe_load(suite.read_text()).get("evaluation_interval", "1m")
    assert seconds(interval) >= 15, f"{suite.name}: evaluation_interval {interval}"


def test_the_default_runbook_url_is_the_page_the_scraped_exporter_serves() -> None:
    # A relative runbook_url cannot be clicked in a pager: the default names the exporter's own
    # host (from its build_info's instance) and its /docs/runbooks page.
    assert RUNBOOK_BASE.startswith('{{ with query "akv_exporter_build_info" }}http://')
    assert RUNBOOK_BASE.endswith("/docs/runbooks")
    page = (ROOT / "akv_exporter" / "web" / "static" / "runbooks.html").read_text()
    for rule in alerts_of(RULES):
        assert f'id="{rule["alert"].lower()}"' in page, rule["alert"]


def test_each_cloud_key_manager_has_the_same_rules_written_once() -> None:
    # Generated from one template per family: GCP's rules are AWS's with the names swapped
    # (and Barbican's the same without EKMIP), so no provider's rule can drift from the others.
    def rules_of_provider(provider: dict) -> list[str]:
        rules = [r for r in alerts_of(RULES) if r["alert"].startswith(provider["alert"])]
        text = json.dumps(rules, sort_keys=True)
        for key in ("title", "prefix", "service_field", "endpoint", "alert", "ems"):
            if provider[key]:
                text = text.replace(provider[key], f"<{key}>")
        service = provider["service"]
        text = text.replace(f"<prefix>_{service}_", "<prefix>_<service>_")
        text = text.replace(f"check='{service}'", "check='<service>'")
        for key in ("key_manager", "cli", "key", "polls"):
            if provider[key]:
                text = re.sub(rf"\b{re.escape(provider[key])}\b", f"<{key}>", text)
        return text.replace(provider["alert"].lower(), "<anchor>")

    gcp, aws, _ = PROVIDERS
    assert rules_of_provider(gcp).replace(" <polls>", "") == rules_of_provider(aws)
    names = {r["alert"].removeprefix("OntapBarbicanKms") for r in alerts_of(RULES)}
    assert {"Unreachable", "VolumesOfflineImminent", "KekUnavailable"} <= names
    assert "OntapBarbicanKmsEkmipUnreachable" not in {r["alert"] for r in alerts_of(RULES)}
    # The generated files agree: the PrometheusRule holds alerts.yml's groups, alerts-fast.yml
    # the same rules (test_fast_profile_is_alerts_yml_with_its_waits_shortened).
    rule = yaml.safe_load((ROOT / "deploy/kubernetes/base/prometheusrule.yaml").read_text())
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert [r.get("alert") for r in rules_of(FAST_RULES)] == [
        r.get("alert") for r in rules_of(RULES)
    ]
