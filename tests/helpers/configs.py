"""Configurations: written to tmp_path and parsed, or built as ClusterConfig directly."""

from __future__ import annotations

import textwrap
from pathlib import Path

from akv_exporter.config import ClusterConfig, Config, SecretSource, TlsConfig, parse_config

CANARY = "canary-Pa55w0rd-do-not-leak"


def write_config(tmp_path: Path, body: str, name: str = "akv.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def config_for(tmp_path, *urls, extra: str = "", poll: str = "", names: bool = True) -> Config:
    """Return (and write) a configuration of clusters c0, c1, ... at ``urls``.

    ``extra`` is added to ``defaults``, ``poll`` to ``poll`` (indented lines).
    """
    clusters = "\n".join(
        f"  - name: c{i}\n    address: {url}" if names else f"  - address: {url}"
        for i, url in enumerate(urls)
    )
    body = (
        f"state_file: {tmp_path / 'state.json'}\n"
        f"poll:\n  interval: 60s\n  timeout: 2s\n{poll}"
        f"defaults:\n  username: admin\n  password: {CANARY}\n{extra}"
        f"clusters:\n{clusters}\n"
    )
    return parse_config(body, write_config(tmp_path, body))


def cluster_config(url: str, **overrides) -> ClusterConfig:
    """Return a ClusterConfig for ``url`` with basic auth admin/netapp1! unless overridden."""

    fields = {
        "name": None,
        "address": url,
        "url": url,
        "username": "admin",
        "secret": SecretSource("password", "netapp1!"),
        "client_cert_file": None,
        "client_key_file": None,
        "tls": TlsConfig(),
        "labels": (),
    }
    fields.update(overrides)
    return ClusterConfig(**fields)
