"""deploy/kubernetes/: valid objects, the configuration the exporter accepts, the same rules and
dashboards as the repository's, sharding that agrees from the StatefulSet to Prometheus' hashmod.

Core kinds are validated against Kubernetes' own schemas (PyPI kubernetes-validate, strict: an
unknown field fails), the Operator's against the CRD schemas vendored in tests/data (unknown
fields fail there too: the API server would silently drop them).
"""

from __future__ import annotations

import copy
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from akv_exporter.cli import build_parser, shard_of_args
from akv_exporter.config import parse_config
from akv_exporter.shard import Shard
from tests.helpers.fleet import BackgroundLoop
from tests.helpers.loopback import consecutive_free_ports, wait_until
from tests.helpers.processes import fleet_config_file, start_exporter
from tests.helpers.prometheus import start_prometheus
from tests.helpers.repository import REPO

DEPLOY = REPO / "deploy" / "kubernetes"
CRDS = REPO / "tests" / "data" / "prometheus-operator-crds"
# The oldest release the manifests need (matchLabelKeys in pod anti-affinity is on by default
# from 1.31) and the newest kubernetes-validate knows.
KUBERNETES_RELEASES = ["1.31", kubernetes_validate.latest_version()]
CORE_KINDS = {
    "ConfigMap",
    "Service",
    "StatefulSet",
    "PodDisruptionBudget",
    "NetworkPolicy",
}
OPERATOR_KINDS = {
    "PodMonitor": "podmonitors",
    "Probe": "probes",
    "PrometheusRule": "prometheusrules",
}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def manifests() -> dict[str, list[dict[str, Any]]]:
    """Return every manifest file (relative path) and its objects."""
    return {
        str(path.relative_to(DEPLOY)): documents(path) for path in sorted(DEPLOY.rglob("*.yaml"))
    }


def objects(kind: str, where: str = "") -> list[dict[str, Any]]:
    return [
        d
        for name, docs in manifests().items()
        if name.startswith(where)
        for d in docs
        if d["kind"] == kind
    ]


def strict(schema: Any) -> Any:
    """Return an openAPIV3Schema in which an object refuses fields it does not define."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validator(kind: str) -> jsonschema.Validator:
    """Return a validator of the CRD's v1 schema (not checked itself: its patterns are Go's)."""
    (crd,) = documents(CRDS / f"monitoring.coreos.com_{OPERATOR_KINDS[kind]}.yaml")
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft202012Validator(strict(version["schema"]["openAPIV3Schema"]))


def test_the_layout_is_base_plus_sharded_or_ha_plus_metrics_or_probe():
    assert set(manifests()) == {
        "base/config.yaml",
        "base/service.yaml",
        "base/poddisruptionbudget.yaml",
        "base/networkpolicy.yaml",
        "base/prometheusrule.yaml",
        "base/dashboards.yaml",
        "sharded/statefulset.yaml",
        "ha/statefulsets.yaml",
        "metrics/podmonitor.yaml",
        "probe/probe.yaml",
        "probe/podmonitor.yaml",
    }
    kinds = {d["kind"] for docs in manifests().values() for d in docs}
    assert kinds == CORE_KINDS | set(OPERATOR_KINDS)


@pytest.mark.parametrize("release", KUBERNETES_RELEASES)
def test_core_objects_are_valid_for_kubernetes(release):
    checked = 0
    for name, docs in manifests().items():
        for document in docs:
            if document["kind"] in CORE_KINDS:
                try:
                    kubernetes_validate.validate(document, release, strict=True)
                except kubernetes_validate.ValidationError as error:
                    pytest.fail(f"{name}: {document['kind']}: {error.message}")
                checked += 1
    assert checked == 8


def test_operator_objects_are_valid_for_their_crds():
    checked = 0
    for name, docs in manifests().items():
        for document in docs:
            if document["kind"] in OPERATOR_KINDS:
                try:
                    crd_validator(document["kind"]).validate(document)
                except jsonschema.ValidationError as error:
                    where = "/".join(map(str, error.absolute_path))
                    pytest.fail(f"{name}: {document['kind']} at {where}: {error.message}")
                checked += 1
    assert checked == 4


def test_the_crd_check_refuses_a_misspelt_field():
    (monitor,) = objects("PodMonitor", "metrics")
    broken = copy.deepcopy(monitor)
    broken["spec"]["podMetricsEndpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        crd_validator("PodMonitor").validate(broken)


@pytest.mark.slow
def test_generated_manifests_are_up_to_date():
    done = subprocess.run(
        [sys.executable, str(DEPLOY / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_prometheus_rule_holds_the_same_rules_as_alerts_yml():
    (rule,) = objects("PrometheusRule")
    shipped = yaml.safe_load((REPO / "config/prometheus/alerts.yml").read_text())
    assert rule["spec"]["groups"] == shipped["groups"]


def test_dashboards_config_map_holds_every_dashboard_for_grafanas_sidecar():
    (config_map,) = [
        c for c in objects("ConfigMap") if c["metadata"]["name"].endswith("dashboards")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    boards = {path.name: path.read_text() for path in (REPO / "dashboards").glob("*.json")}
    assert boards and config_map["data"] == boards


@pytest.mark.slow
def test_embedded_configuration_passes_check_config(tmp_path):
    (config_map,) = [c for c in objects("ConfigMap") if c["metadata"]["name"] == "akv-exporter"]
    embedded = config_map["data"]["akv-exporter.yml"]
    # The Secret (docs/kubernetes.md) is mounted at /run/secrets/ontap; a file stands in for it.
    (tmp_path / "password").write_text("not-a-secret")
    path = tmp_path / "akv-exporter.yml"
    path.write_text(embedded.replace("/run/secrets/ontap/password", str(tmp_path / "password")))
    done = subprocess.run(
        [sys.executable, "-m", "akv_exporter.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    config = parse_config(path.read_text(), path)
    assert str(config.state_file).startswith("/var/lib/akv-exporter/")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["sharded", "ha"])
def test_stateful_sets_take_the_shard_from_the_pod_name_and_mount_what_the_config_names(where):
    stateful_sets = objects("StatefulSet", where)
    assert len(stateful_sets) == (1 if where == "sharded" else 2)
    (service,) = objects("Service")
    assert service["spec"]["clusterIP"] == "None"
    for stateful_set in stateful_sets:
        spec = stateful_set["spec"]
        assert spec["serviceName"] == service["metadata"]["name"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        args = build_parser().parse_args(container["args"])
        # The pods are named <StatefulSet>-<ordinal>; the last one is the last shard.
        last = f"{stateful_set['metadata']['name']}-{spec['replicas'] - 1}"
        assert shard_of_args(args, hostname=last) == Shard(spec["replicas"] - 1, spec["replicas"])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert str(args.config).startswith("/etc/akv-exporter/")
        assert {"/etc/akv-exporter", "/run/secrets/ontap", "/var/lib/akv-exporter"} <= set(mounts)
        claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
        assert mounts["/var/lib/akv-exporter"] in claims
        labels = spec["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "akv-exporter"  # the PodMonitor's job label


@pytest.mark.parametrize("where", ["sharded", "ha"])
def test_pods_run_restricted(where):
    for stateful_set in objects("StatefulSet", where):
        pod = stateful_set["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            resources = container["resources"]
            assert resources["requests"]["memory"] and resources["limits"]["memory"]


@pytest.mark.slow
def test_ha_variant_is_the_sharded_one_twice_with_replicas_of_a_shard_on_different_nodes():
    (single,) = objects("StatefulSet", "sharded")
    first, second = objects("StatefulSet", "ha")
    for copy_ in (first, second):
        pod = copy.deepcopy(copy_["spec"]["template"]["spec"])
        affinity = pod.pop("affinity")["podAntiAffinity"]
        (term,) = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term["podAffinityTerm"]["matchLabelKeys"] == ["apps.kubernetes.io/pod-index"]
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        assert pod == single["spec"]["template"]["spec"]
        assert copy_["spec"]["replicas"] == single["spec"]["replicas"]
    names = {first["metadata"]["name"], second["metadata"]["name"]}
    assert len(names) == 2


def test_disruption_budget_and_network_policy_select_the_exporter_pods():
    (budget,) = objects("PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    (policy,) = objects("NetworkPolicy")
    app = {"app.kubernetes.io/name": "akv-exporter"}
    assert budget["spec"]["selector"]["matchLabels"] == app
    assert policy["spec"]["podSelector"]["matchLabels"] == app
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 9877}]
    assert ingress["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "prometheus"
    }
    ports = [p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]]
    assert sorted(ports) == [53, 53, 443]


def test_pod_monitor_scrapes_as_the_job_the_rules_name_without_the_pod_label():
    (monitor,) = objects("PodMonitor", "metrics")
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"  # value: akv-exporter
    rules = (REPO / "config/prometheus/alerts.yml").read_text()
    assert 'up{job="akv-exporter"}' in rules
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert {"action": "labeldrop", "regex": "pod"} in endpoint["relabelings"]


def test_probe_example_shards_by_the_stateful_sets_number_of_shards():
    (probe,) = objects("Probe")
    (stateful_set,) = objects("StatefulSet", "sharded")
    hashmod = next(
        r
        for r in probe["spec"]["targets"]["staticConfig"]["relabelingConfigs"]
        if r.get("action") == "hashmod"
    )
    assert hashmod["modulus"] == stateful_set["spec"]["replicas"]
    assert probe["spec"]["jobName"] == "akv-exporter"


# --- what an operator applies: the Secret, the network, the scrape jobs, web TLS and port ------

KUBERNETES_DOC = REPO / "docs/kubernetes.md"
# Every way docs/kubernetes.md applies the directories: base, one way to run, one way to scrape.
APPLIED = [("base", run, scrape) for run in ("sharded", "ha") for scrape in ("metrics", "probe")]


@pytest.mark.slow
def test_no_secret_ships_and_the_docs_create_the_one_the_pods_mount():
    # A Secret in the manifests would overwrite the real password on every re-apply.
    assert not [d for docs in manifests().values() for d in docs if d["kind"] == "Secret"]
    created = re.findall(
        r"kubectl create secret generic (\S+) -n monitoring --from-file=(\w+)=",
        KUBERNETES_DOC.read_text(encoding="utf-8"),
    )
    assert created, "docs/kubernetes.md does not say how to create the password Secret"
    (config_map,) = [c for c in objects("ConfigMap") if c["metadata"]["name"] == "akv-exporter"]
    password_file = yaml.safe_load(config_map["data"]["akv-exporter.yml"])["defaults"][
        "password_file"
    ]
    for stateful_set in objects("StatefulSet"):
        pod = stateful_set["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        mount = next(
            m for m in container["volumeMounts"] if password_file.startswith(m["mountPath"] + "/")
        )
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        key = password_file.removeprefix(mount["mountPath"] + "/")
        assert (volume["secret"]["secretName"], key) in created


def test_the_egress_to_ontap_is_the_documented_value():
    (policy,) = objects("NetworkPolicy")
    cidrs = [
        peer["ipBlock"]["cidr"]
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
    ]
    documented = re.findall(r"ships as \*\*`([\d./]+)`\*\*", KUBERNETES_DOC.read_text("utf-8"))
    assert cidrs and cidrs == documented
    assert "docs/kubernetes.md" in (DEPLOY / "base/networkpolicy.yaml").read_text()


def scrape_jobs(directories: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Return the scrape jobs the Operator makes of ``directories``: job -> paths, the metric
    names it keeps (a regular expression) and where it comes from."""
    applied = [
        d for name, docs in manifests().items() if name.split("/")[0] in directories for d in docs
    ]
    pod_labels = [
        d["spec"]["template"]["metadata"]["labels"] for d in applied if d["kind"] == "StatefulSet"
    ]
    jobs: dict[str, dict[str, Any]] = {}
    for document in applied:
        name = document["metadata"]["name"]
        if document["kind"] == "PodMonitor":
            label = document["spec"].get("jobLabel")
            for index, endpoint in enumerate(document["spec"]["podMetricsEndpoints"]):
                job = f"podMonitor/monitoring/{name}/{index}"  # the Operator's default
                if label:
                    (job,) = {labels[label] for labels in pod_labels}
                for rule in endpoint.get("relabelings", []):
                    if rule.get("targetLabel") == "job":
                        job = rule["replacement"]
                keep = [
                    r["regex"]
                    for r in endpoint.get("metricRelabelings", [])
                    if r.get("action") == "keep" and r.get("sourceLabels") == ["__name__"]
                ]
                entry = jobs.setdefault(job, {"paths": set(), "keeps": [], "from": []})
                entry["paths"].add(endpoint.get("path", "/metrics"))
                entry["keeps"] += keep or [".*"]
                entry["from"].append(name)
        elif document["kind"] == "Probe":
            job = document["spec"].get("jobName", f"probe/monitoring/{name}")
            entry = jobs.setdefault(job, {"paths": set(), "keeps": [], "from": []})
            entry["paths"].add(document["spec"]["prober"].get("path", "/probe"))
            entry["keeps"].append(".*")
            entry["from"].append(name)
    return jobs


@pytest.mark.parametrize("directories", APPLIED, ids="+".join)
def test_each_way_of_applying_gives_one_path_per_job_and_each_cluster_once(directories):
    jobs = scrape_jobs(directories)
    assert "akv-exporter" in jobs  # the job the rules name (AkvExporterAbsent)
    for job, entry in jobs.items():
        assert len(entry["paths"]) == 1, f"job {job} mixes {sorted(entry['paths'])}"
    # A cluster's series reach Prometheus through exactly one job.
    carrying = [
        job
        for job, entry in jobs.items()
        if any(re.fullmatch(keep, "ontap_akv_azure_reachable") for keep in entry["keeps"])
    ]
    assert carrying == ["akv-exporter"], jobs
    # The exporter's own series (reloads, shards) are scraped in either mode.
    assert any(
        re.fullmatch(keep, "akv_exporter_config_last_reload_successful")
        for entry in jobs.values()
        if "/metrics" in entry["paths"]
        for keep in entry["keeps"]
    )


@pytest.mark.slow
def test_ports_and_schemes_follow_the_configmaps_web_settings():
    (config_map,) = [c for c in objects("ConfigMap") if c["metadata"]["name"] == "akv-exporter"]
    web = yaml.safe_load(config_map["data"]["akv-exporter.yml"]).get("web", {})
    port = int(web.get("listen", "0.0.0.0:9877").rpartition(":")[2])
    tls = "tls_cert_file" in web
    for stateful_set in objects("StatefulSet"):
        (container,) = stateful_set["spec"]["template"]["spec"]["containers"]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert named == {"http": port}
        for probe in ("livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert get["port"] == "http"
            assert get.get("scheme", "HTTP") == ("HTTPS" if tls else "HTTP"), probe
    (service,) = objects("Service")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]
    (policy,) = objects("NetworkPolicy")
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [port]
    for monitor in objects("PodMonitor"):
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] == "http"
            assert endpoint.get("scheme", "http") == ("https" if tls else "http")
    (probe,) = objects("Probe")
    assert probe["spec"]["prober"].get("scheme", "http") == ("https" if tls else "http")
    assert probe["spec"]["prober"]["url"].endswith(f":{port}")
    [route] = [
        r["replacement"]
        for r in probe["spec"]["targets"]["staticConfig"]["relabelingConfigs"]
        if r.get("targetLabel") == "__address__"
    ]
    assert route.endswith(f":{port}")


# --- the /probe example on a real Prometheus -------------------------------------------------


def operator_relabelings(probe: dict[str, Any], prober_address: str) -> list[dict[str, Any]]:
    """Return the relabel_configs the Operator generates for a Probe with static targets.

    Its own three first (target -> __param_target -> instance; prober url -> __address__), then
    the Probe's relabelingConfigs with their keys in Prometheus' spelling.
    """
    spelling = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    own = [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"source_labels": ["__param_target"], "target_label": "instance"},
        {"target_label": "__address__", "replacement": prober_address},
    ]
    configured = [
        {spelling.get(key, key): value for key, value in rule.items()}
        for rule in probe["spec"]["targets"]["staticConfig"]["relabelingConfigs"]
    ]
    return own + configured


@pytest.mark.prometheus
def test_prometheus_routes_every_probe_to_the_shard_that_owns_it(tmp_path):
    from ontap_simulator import SimulatorOptions, start_simulator

    (probe,) = objects("Probe")
    shards = int(probe["spec"]["targets"]["staticConfig"]["relabelingConfigs"][0]["modulus"])
    loop = BackgroundLoop()
    simulator = loop.run(
        start_simulator(SimulatorOptions(clusters=24, seed=3, control_port=0, out=io.StringIO()))
    )
    exporters, prometheus = [], None
    try:
        names = [cluster.name for cluster in simulator.clusters]
        config = fleet_config_file(tmp_path / "akv.yml", simulator, names, interval="60s")
        base = consecutive_free_ports(shards, multiple_of=10)
        for ordinal in range(shards):
            exporters.append(
                start_exporter(
                    config,
                    tmp_path / f"shard-{ordinal}.log",
                    *("--shard", str(ordinal), "--total-shards", str(shards)),
                    port=base + ordinal,
                )
            )
        relabel = operator_relabelings(probe, "127.0.0.1:1")
        # The example's shard address, akv-exporter-${1}.akv-exporter:9877, on loopback: the
        # shards listen on base+0, base+1, ..., so shard ${1} is at "<base / 10>${1}".
        (route,) = [r for r in relabel if "${1}" in r.get("replacement", "")]
        assert re.fullmatch(r"akv-exporter-\$\{1\}\.akv-exporter:9877", route["replacement"])
        route["replacement"] = f"127.0.0.1:{base // 10}${{1}}"
        prometheus = start_prometheus(
            tmp_path / "prometheus",
            {
                "global": {"scrape_interval": "2s", "scrape_timeout": "2s"},
                "scrape_configs": [
                    {
                        "job_name": probe["spec"]["jobName"],
                        "metrics_path": probe["spec"]["prober"]["path"],
                        "static_configs": [{"targets": names}],
                        "relabel_configs": relabel,
                    }
                ],
            },
        )

        def every_probe_answered():
            values = prometheus.values("akv_exporter_probe_success")
            return values if len(values) == len(names) else None

        answered = wait_until(every_probe_answered, "a probe of every cluster", 90, prometheus.log)
        ups = prometheus.values('up{job="akv-exporter"}')
    finally:
        if prometheus is not None:
            prometheus.stop()
        for exporter in exporters:
            exporter.stop()
        loop.run(simulator.stop())
        loop.close()
    # A probe sent to the wrong shard is a 400: its target would be down, with no probe series.
    assert sorted(labels["instance"] for labels, _ in answered) == sorted(names)
    assert [value for _, value in ups] == [1.0] * len(names)
