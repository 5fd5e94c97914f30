"""--web.config.file: TLS, client certificates, basic auth and headers in Prometheus' own format.

The format is the exporter-toolkit's web configuration (its docs/web-configuration.md), the one
file operators already have for Prometheus and its exporters. What akv-exporter does not do is
refused by name, never silently ignored: a setting that protects the exporter must not be
dropped without a word. The `web` section's `listen` still applies; its TLS and basic-auth keys
beside this file are a conflict (one line), so only one place says how the exporter is secured.
"""

# No `from __future__ import annotations`: pydantic reads these annotations.

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import WithJsonSchema

from akv_exporter.certificates import CertificateProblem, server_context
from akv_exporter.config.model import BcryptHash, ExistingFile, Section, check
from akv_exporter.config.problems import Problems, subset
from akv_exporter.config.values import WEB_FILE_KEYS, ConfigError, WebConfig
from akv_exporter.config.yamlfile import lines_of, parse_yaml, read_text

TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
ClientAuthType = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
_VERIFYING = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")


def _unsupported(what: str) -> Any:
    """Return the type of a toolkit key akv-exporter refuses, saying why or what to do."""
    reason = f"is not supported by akv-exporter: {what}"
    return Annotated[
        Any, check(lambda _: reason), WithJsonSchema({"not": {}, "description": reason})
    ]


def _no_unverified(kind: str) -> str | None:
    if kind in ("RequestClientCert", "RequireAnyClientCert"):
        return (
            "is not supported: it accepts a certificate nobody verified;"
            " use RequireAndVerifyClientCert"
        )
    return None


class TlsServerConfig(Section):
    cert_file: ExistingFile = None
    """The exporter's certificate (PEM)."""
    key_file: ExistingFile = None
    """Its unencrypted key (PEM)."""
    client_auth_type: Annotated[ClientAuthType | None, check(_no_unverified)] = None
    """RequireAndVerifyClientCert: mutual TLS (default NoClientCert)."""
    client_ca_file: ExistingFile = None
    """The CA that signs the clients' certificates."""
    min_version: TlsVersion | None = None
    """Default TLS12."""
    max_version: TlsVersion | None = None
    """Default TLS13."""
    cert: _unsupported("give the certificate as cert_file") = None
    key: _unsupported("give the key as key_file") = None
    client_ca: _unsupported("give the CA as client_ca_file") = None
    client_allowed_sans: _unsupported("trust a CA that signs only the allowed clients") = None
    cipher_suites: _unsupported("Python's OpenSSL defaults apply") = None
    curve_preferences: _unsupported("Python's OpenSSL defaults apply") = None
    prefer_server_cipher_suites: bool | None = None
    """Accepted; the server's order is OpenSSL's default."""


class HttpServerConfig(Section):
    http2: bool | None = None
    """Accepted; akv-exporter serves HTTP/1.1."""
    headers: (
        dict[
            Literal[
                "Content-Security-Policy",
                "X-Frame-Options",
                "X-Content-Type-Options",
                "X-XSS-Protection",
                "Strict-Transport-Security",
            ],
            str,
        ]
        | None
    ) = None
    """Added to every response, replacing the exporter's own of that name."""


class WebConfigFile(Section):
    """The web configuration file of Prometheus' exporter-toolkit (--web.config.file)."""

    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig | None = None
    basic_auth_users: dict[str, BcryptHash] | None = None
    """User name: bcrypt hash."""
    rate_limit: _unsupported("limit the rate in front of the exporter") = None


def _tls(tls: TlsServerConfig, problems: Problems) -> dict[str, Any]:
    """Return WebConfig's TLS fields of a valid tls_server_config; add a line for each problem."""
    where = ("tls_server_config",)
    for key in ("cert_file", "key_file"):
        if getattr(tls, key) is None and not problems.refused((*where, key)):
            problems.add((*where, key), "is missing: TLS needs cert_file and key_file")
    auth = tls.client_auth_type or "NoClientCert"
    if auth in _VERIFYING and tls.client_ca_file is None:
        problems.add((*where, "client_auth_type"), f"{auth} needs client_ca_file")
    if auth not in _VERIFYING and tls.client_ca_file is not None:
        problems.add(
            (*where, "client_ca_file"), f"is used only with client_auth_type {_VERIFYING[1]}"
        )
    if tls.min_version and tls.max_version and tls.max_version < tls.min_version:  # TLS1x
        problems.add((*where, "max_version"), f"is older than min_version {tls.min_version}")
    fields = {
        "tls_cert_file": tls.cert_file,
        "tls_key_file": tls.key_file,
        "client_auth_type": auth,
        "client_ca_file": tls.client_ca_file,
        "min_version": tls.min_version,
        "max_version": tls.max_version,
    }
    if tls.cert_file and tls.key_file and not problems.refused(where):
        try:  # what start-up would find, found now
            server_context(
                tls.cert_file,
                tls.key_file,
                client_auth_type=auth,
                client_ca_file=tls.client_ca_file,
                min_version=tls.min_version,
                max_version=tls.max_version,
            )
        except CertificateProblem as problem:
            problems.add((*where, WEB_FILE_KEYS.get(problem.key, problem.key)), str(problem))
    return fields


def _beside(data: Any, directory: Path) -> Any:
    """Return ``data`` with tls_server_config's relative paths taken from ``directory``.

    As the exporter-toolkit does: a file's paths are relative to the file, not to where the
    exporter was started.
    """
    tls = data.get("tls_server_config") if isinstance(data, Mapping) else None
    if not isinstance(tls, Mapping):
        return data
    moved = subset(tls, set())
    for key in ("cert_file", "key_file", "client_ca_file"):
        value = tls.get(key)
        # A ~ path is absolute once expanded (the model expands it, or says there is no home).
        if isinstance(value, str) and not value.startswith("~") and not Path(value).is_absolute():
            moved[key] = str(directory / value)
    beside = subset(data, set())
    beside["tls_server_config"] = moved
    return beside


def read_web_file(path: Path, listen: str) -> tuple[WebConfig | None, list[str]]:
    """Return how to serve, from the web configuration file at ``path`` and ``listen``.

    None and the problems, one line each, when the file has any.
    """
    try:
        data = parse_yaml(read_text(path), path)
    except ConfigError as error:
        return None, error.problems
    data = lines_of({}) if data is None else data
    problems = Problems(path, data)
    web = problems.validate(WebConfigFile, _beside(data, path.parent), ())
    fields: dict[str, Any] = {}
    if web is not None and web.tls_server_config is not None:
        fields = _tls(web.tls_server_config, problems)
    if problems.lines or web is None:
        return None, problems.lines
    headers = web.http_server_config.headers if web.http_server_config else None
    config = WebConfig(
        listen=listen,
        basic_auth_users=dict(web.basic_auth_users or {}),
        headers={name: value for name, value in (headers or {}).items() if value},  # blank: unset
        web_config_file=path,
        **fields,
    )
    return config, []
