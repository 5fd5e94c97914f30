"""The shipped deployment files hold configurations the exporter accepts."""

from __future__ import annotations

import yaml

from akv_exporter.config import parse_config
from tests.helpers import REPO


def test_kubernetes_manifest_embeds_a_valid_configuration(tmp_path):
    documents = list(yaml.safe_load_all((REPO / "deploy/kubernetes/akv-exporter.yaml").read_text()))
    kinds = [d["kind"] for d in documents]
    assert kinds == ["ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service"]
    embedded = documents[0]["data"]["akv-exporter.yml"]
    secret_path = "/run/secrets/ontap/password"
    (tmp_path / "password").write_text("x\n")
    config = parse_config(embedded.replace(secret_path, str(tmp_path / "password")))
    assert len(config.clusters) == 2
    deployment = documents[3]["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"] for m in deployment["volumeMounts"]}
    assert "/run/secrets/ontap" in mounts and "/etc/akv-exporter" in mounts
    assert str(config.state_file).startswith("/var/lib/akv-exporter")
