"""The exposition: every spec metric with its labels, valid for promtool and OpenMetrics."""

from __future__ import annotations

import copy
import gzip
import re
import subprocess

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from akv_exporter.config import ConfigError, load_config
from akv_exporter.labels import EXPORTER_LABELS
from akv_exporter.metrics.catalogue import CLUSTER_FAMILIES, GLOBAL_FAMILIES, PROBE_FAMILIES
from akv_exporter.metrics.exposition import Exposition
from akv_exporter.metrics.render import label_message, render_cluster, render_probe
from akv_exporter.ontap import akv, aws_kms, barbican_kms, gcp_kms
from akv_exporter.ontap import kmip as kmip_endpoint
from akv_exporter.ontap.cluster import ClusterIdentity
from akv_exporter.ontap.key_manager_endpoint import Check, parse_records
from akv_exporter.ontap.key_manager_policy import parse_key_manager_config
from akv_exporter.ontap.key_servers import streak_key
from akv_exporter.ontap.key_stores import parse_key_stores
from akv_exporter.ontap.volumes import parse_volumes
from akv_exporter.snapshot import BlastRadius, ClusterSnapshot, EventCount, PollOutcome
from tests.helpers.configs import write_config
from tests.helpers.exposition import find, samples
from tests.helpers.ontap import (
    AWS,
    BARBICAN,
    GCP,
    KEY_STORES,
    KMIP,
    OKM,
    akv_record,
    policy,
    volume,
)
from tests.helpers.repository import require_binary


def snapshot(**overrides) -> ClusterSnapshot:
    records = [
        akv_record("u1", "vs1", reachable=False, ekmip_down=("n2",)),
        akv_record("u2", None, kek=False),
        akv_record("u3", "vs3", enabled=False),
    ]
    fields = {
        "name": "c1",
        "address": "10.0.0.1",
        "labels": (("datacenter", "dc1"),),
        "up": True,
        "identity": ClusterIdentity("c1", "cu", "9.14.1", "NetApp Release 9.14.1"),
        "key_managers": parse_records(akv.ENDPOINT, records).key_managers,
        "key_managers_as_of": 1000.0,
        "last_success": 1000.5,
        "last": PollOutcome(1000.0, 0.5),
        "poll_errors": {"timeout": 2},
        "requests": {"200": 10, "503": 1},
        "unreachable_since": {"u1": 900.0},
    }
    fields.update(overrides)
    return ClusterSnapshot(**fields)


def exposition(*snaps: ClusterSnapshot) -> Exposition:
    out = Exposition()
    for index, snap in enumerate(snaps):
        out.update(str(index), snap)
    return out


def test_every_spec_metric_with_its_labels():
    body = exposition(snapshot()).scrape()
    info = find(body, "ontap_akv_info", cluster="c1", svm="vs1", uuid="u1", scope="svm")
    assert info == [1.0]
    assert find(body, "ontap_akv_enabled", uuid="u3") == [0.0]
    assert find(body, "ontap_akv_azure_reachable", uuid="u1", code="65537549") == [0.0]
    assert find(body, "ontap_akv_kek_available", uuid="u2", svm="", code="65537551") == [0.0]
    assert find(body, "ontap_akv_ekmip_reachable", uuid="u1", node="n2", code="65537552") == [0.0]
    assert find(body, "ontap_akv_ekmip_reachable", uuid="u1", node="n1", code="0") == [1.0]
    assert find(body, "ontap_akv_status_message_info", uuid="u1", check="azure", node="") == [1.0]
    assert find(body, "ontap_akv_status_message_info", uuid="u1", check="ekmip", node="n2") == [1.0]
    assert find(body, "ontap_akv_azure_unreachable_since_timestamp_seconds", uuid="u1") == [900.0]
    assert find(body, "akv_exporter_cluster_up", cluster="c1") == [1.0]
    assert find(body, "akv_exporter_cluster_last_success_timestamp_seconds") == [1000.5]
    assert find(body, "akv_exporter_cluster_poll_duration_seconds") == [0.5]
    assert find(body, "akv_exporter_cluster_poll_errors_total", reason="timeout") == [2.0]
    assert find(body, "akv_exporter_cluster_poll_errors_total", reason="tls") == [0.0]
    assert find(body, "akv_exporter_ontap_requests_total", status="503") == [1.0]
    assert find(body, "akv_exporter_config_last_reload_successful") == [1.0]
    assert len(find(body, "akv_exporter_build_info")) == 1


def test_configured_labels_are_on_every_cluster_series():
    for (name, labels), _ in samples(exposition(snapshot()).scrape()).items():
        if name.startswith("ontap_akv_") or name.startswith("akv_exporter_cluster"):
            assert ("datacenter", "dc1") in labels, name


def test_inactive_configuration_gives_no_reachability_series():
    body = exposition(snapshot()).scrape()
    for name in (
        "ontap_akv_azure_reachable",
        "ontap_akv_kek_available",
        "ontap_akv_ekmip_reachable",
    ):
        assert find(body, name, uuid="u3") == []
    assert find(body, "ontap_akv_info", uuid="u3") == [1.0]


@pytest.mark.prometheus  # promtool
def test_promtool_check_metrics_accepts_the_exposition():
    promtool = require_binary("promtool", "prometheus")
    body = exposition(snapshot(), snapshot(name="c2", unreachable_since={})).scrape()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()


def test_openmetrics_parses_and_ends_with_eof():
    body = exposition(snapshot()).scrape(openmetrics=True)
    assert body.endswith(b"# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["ontap_akv"].type == "info"
    assert families["akv_exporter_cluster_poll_errors"].type == "counter"
    assert families["ontap_akv_azure_reachable"].type == "gauge"


def test_gzip_body_is_one_valid_stream_and_matches_plain():
    out = exposition(snapshot())
    plain = out.body()
    assert gzip.decompress(out.scrape(gzipped=True)).startswith(plain)


def test_label_values_are_escaped():
    snap = snapshot(name='we"ird\\name\nx')
    body = exposition(snap).scrape()
    assert b'cluster="we\\"ird\\\\name\\nx"' in body
    assert find(body, "akv_exporter_cluster_up", cluster='we"ird\\name\nx') == [1.0]


def test_messages_are_cut_to_256_characters():
    assert len(label_message("x" * 1000)) == 256
    assert label_message("a \n b") == "a b"


def test_a_removed_cluster_leaves_the_output():
    out = exposition(snapshot(), snapshot(name="c2"))
    out.remove("1")
    assert find(out.scrape(), "akv_exporter_cluster_up", cluster="c2") == []


def test_cached_body_changes_only_when_a_snapshot_does():
    out = exposition(snapshot())
    first = out.body()
    assert out.body() is first
    out.update("0", snapshot(up=False))
    assert out.body() is not first


def test_render_cluster_groups_samples_by_family():
    fragments = render_cluster(snapshot())
    # two active configurations x two nodes; the inactive one has no EKMIP series
    assert fragments["ontap_akv_ekmip_reachable"].count(b"\n") == 4


def test_every_label_the_renderer_emits_is_in_the_reserved_vocabulary():
    configured = {"datacenter"}
    emitted = {name for (_, labels) in samples(exposition(snapshot()).body()) for name, _ in labels}
    assert emitted - configured <= EXPORTER_LABELS


def test_a_failed_reload_keeps_the_last_success_time():
    out = Exposition(process_metrics=False)
    out.set_reload(successful=True, timestamp=5.0)
    out.set_reload(successful=False, timestamp=None)
    body = out.scrape()
    assert find(body, "akv_exporter_config_last_reload_successful") == [0.0]
    assert find(body, "akv_exporter_config_last_reload_success_timestamp_seconds") == [5.0]


def test_clusters_keep_their_publishing_order_whatever_order_their_polls_land_in():
    """Families list clusters in the order they were published, as a fresh render does."""
    names = ["a", "b", "c", "d"]
    landed = Exposition(process_metrics=False)
    for index, name in enumerate(names):  # published at start, not polled yet
        landed.update(str(index), snapshot(name=name, last=None))
    for index in (2, 0, 3, 1):
        landed.update(str(index), snapshot(name=names[index]))
        landed.body()  # joined in between, as scrapes do
    # A message appears for one cluster only after the others had theirs.
    landed.update("0", snapshot(name="a", requests={"200": 11, "401": 1}))
    fresh = Exposition(process_metrics=False)
    for index, name in enumerate(names):
        requests = {"200": 11, "401": 1} if name == "a" else None
        fresh.update(
            str(index), snapshot(name=name, **({"requests": requests} if requests else {}))
        )
    assert landed.body() == fresh.body()
    assert [labels for (name, labels) in samples(landed.body()) if name.endswith("_up")] == [
        (("cluster", name), ("datacenter", "dc1")) for name in names
    ]


def every_kind() -> tuple:
    """Return one configuration of every kind of key manager, each with a failing check (a
    message), and a KMIP key server down and answering per node."""
    gcp, aws, barbican, kmip = (copy.deepcopy(r) for r in (GCP, AWS, BARBICAN, KMIP))
    gcp["google_reachability"] = {"reachable": False, "code": "65537730", "message": "gone"}
    aws["state"] = {"cluster_state": False, "code": "65537551", "message": "no KEK"}
    barbican["barbican_reachability"] = {"reachable": False, "code": "65539801", "message": "x"}
    records = (
        (gcp_kms.ENDPOINT, gcp),
        (aws_kms.ENDPOINT, aws),
        (barbican_kms.ENDPOINT, barbican),
        (kmip_endpoint.ENDPOINT, kmip),
        (kmip_endpoint.ENDPOINT, OKM),
    )
    return tuple(s for e, r in records for s in parse_records(e, [r]).key_managers)


def every_series_snapshot() -> ClusterSnapshot:
    """Return a cluster whose snapshot gives a sample of every cluster family."""
    others = every_kind()
    kmip_status = next(s for s in others if s.kind == "kmip")
    server = kmip_status.servers_down[0].server
    return snapshot(
        key_managers=(*snapshot().key_managers, *others),
        unreachable_since={
            "u1": 900.0,
            **{s.uuid: 950.0 for s in others if s.service is not None},
            streak_key(kmip_status.uuid, server): 960.0,
        },
        key_stores=parse_key_stores(KEY_STORES),
        refused={
            "akv": Check(False, "65537551", "vault\n  is locked"),
            "gcp": Check(False, "65537552", "EKMIP status not available"),
            "aws": Check(False, "65537915", "unreachable"),
            "barbican": Check(False, "65539801", "unreachable"),
        },
        blast=BlastRadius(
            policy=parse_key_manager_config(policy()),
            volumes=parse_volumes([volume("vs1"), volume("vs1", "offline", 1)]),
            volumes_as_of=990.0,
            events=(EventCount("n1", "ekmip.akv.notAvailable", 2, 980.0),),
            errors={("/api/storage/volumes", "timeout"): 1},
            last_success={"/api/storage/volumes": 970.0},
        ),
    )


def label_names(body: bytes) -> dict[str, set[tuple[str, ...]]]:
    """Return, per sample name, the label names of its series in the order they were written."""
    names: dict[str, set[tuple[str, ...]]] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            series = line.rpartition(" ")[0]
            name, _, labels = series.partition("{")
            found = tuple(re.findall(r'(\w+)="(?:[^"\\]|\\.)*"', labels))
            names.setdefault(name, set()).add(found)
    return names


def test_every_family_carries_the_labels_the_catalogue_declares():
    # docs/metrics.md is generated from the catalogue: the renderers must keep to it.
    out = Exposition(process_metrics=False)
    out.update("0", every_series_snapshot())
    out.set_reload(successful=True, timestamp=5.0)
    probe = render_probe(every_series_snapshot(), True, 0.5, False)
    written = label_names(out.scrape()) | label_names(probe)
    for family in CLUSTER_FAMILIES:
        assert written.get(family.name) == {("cluster", "datacenter", *family.labels)}, family
    for family in (*GLOBAL_FAMILIES, *PROBE_FAMILIES):
        assert written.get(family.name) == {family.labels}, family


DECLARED_LABELS = sorted(
    {"cluster", *(label for f in (*CLUSTER_FAMILIES, *GLOBAL_FAMILIES) for label in f.labels)}
)


@pytest.mark.parametrize("label", DECLARED_LABELS)
def test_the_configuration_refuses_every_label_the_exporter_sets(tmp_path, label):
    # A configured label named like one of the exporter's would give a series two labels of one
    # name, which Prometheus refuses with the whole scrape.
    body = "clusters:\n  - address: a\n    username: u\n    password: p\n    labels:\n"
    path = write_config(tmp_path, body + f"      {label}: x\n")
    with pytest.raises(ConfigError, match=f"labels.{label}: is a label the exporter sets itself"):
        load_config(path)
    assert label in EXPORTER_LABELS
