"""What one kind of key manager declares about itself, beside its endpoint: a provider.

In the manner of node_exporter's collectors, each provider module (``ontap/akv.py``,
``ontap/gcp_kms.py``, ...) declares everything the layers above need to know about its kind, as
plain data, and ``ontap/key_manager_registry.py`` lists them; no layer above names a kind:

- its endpoint (path, fields per release, introduced release, parser, GET error codes);
- its metric families' names and help (``KeyManagerMetrics``; metrics/catalogue.py makes them
  families) and its ``_info`` labels (the configuration's details);
- its words for people and the JSON (``KeyManagerWords``): the page, ``check`` and problems;
- its EMS events (the events poll asks for them), its policy key (``kind``, the key of
  ``health_monitor_policy`` in key-manager-configs), its streak field in the state file and the
  JSON (``<service>_unreachable_since``), and ONTAP's volume-offline rule where NetApp
  documents one.
"""

from __future__ import annotations

from dataclasses import dataclass

from akv_exporter.ontap.key_manager_endpoint import KeyManagerEndpoint

# The labels of a key-manager configuration's series, after the cluster's.
CONFIGURATION = ("svm", "uuid")


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric family's name, help text and labels; its type follows from its role."""

    name: str
    help: str
    labels: tuple[str, ...] = ()  # after `cluster` and the cluster's configured labels
    doc: str = ""  # docs/metrics.md only: what the value means beyond the help (markdown)


@dataclass(frozen=True, slots=True)
class KeyManagerMetrics:
    """The families one kind is exposed as; None: the kind has no such thing."""

    info: Metric  # labels: svm, uuid, scope, then the configuration's details
    service: Metric | None = None  # the key service's reachability, with ONTAP's code
    enabled: Metric | None = None
    kek: Metric | None = None
    ekmip: Metric | None = None
    message: Metric | None = None  # ONTAP's message of a failing check
    unreachable_since: Metric | None = None  # the key service's unreachable streak
    get_error: Metric | None = None  # ONTAP answered the GET itself with an error it documents
    setup: Metric | None = None  # the key manager's setup status (key-managers), with its code
    server_reachable: Metric | None = None  # per KMIP key server and node
    server_cluster_reachable: Metric | None = None  # per KMIP key server
    server_unreachable_since: Metric | None = None  # per KMIP key server


@dataclass(frozen=True, slots=True)
class KeyManagerWords:
    """How one kind of key manager is named to people and in the JSON."""

    name: str  # "AKV": how ONTAP's documentation abbreviates it; problems
    title: str  # "Azure Key Vault": problems ("Azure Key Vault unreachable")
    short: str  # "Azure": the page's and check's column, state words
    json_key: str  # "akvs": the cluster's list in GET /api/v1/status
    target: str  # the detail naming what a configuration points at ("vault"): page, filter
    # The names of KeyManagerStatus.details this kind has, in order: the JSON's fields and the
    # _info labels after `scope`.
    details: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyManagerProvider:
    """One kind of key manager: its endpoint and everything the surfaces say about it."""

    kind: str  # ONTAP's key-manager key: health_monitor_policy.<kind>, key-store type
    endpoint: KeyManagerEndpoint
    words: KeyManagerWords
    metrics: KeyManagerMetrics
    # The EMS events of this kind the events poll asks for (ONTAP's name patterns), and those
    # of them NetApp's EMS reference gives severity ALERT (the page shows them in red).
    ems_events: tuple[str, ...] = ()
    ems_alerts: tuple[str, ...] = ()
    # NetApp's EMS rule: after this many seconds of ONTAP's polls of the key service failing,
    # the SVM is blocked and its encrypted volumes go offline (where the policy lets ONTAP);
    # None: NetApp documents no such rule for this kind.
    volumes_offline_after: float | None = None
    volumes_offline_event: str = ""  # the EMS event that says ONTAP did it

    @property
    def streak_field(self) -> str:
        """Return the state file's and the JSON's streak key: ``azure_unreachable_since``; a
        kind of external key servers keeps theirs as ``key_server_unreachable_since``."""
        if self.metrics.server_unreachable_since is not None:
            return "key_server_unreachable_since"
        return f"{self.endpoint.service}_unreachable_since"

    @property
    def unreachable_state(self) -> str:
        """Return the state of a configuration that cannot reach its service."""
        return f"{self.endpoint.service}_unreachable"


def cloud_metrics(
    prefix: str,
    words: KeyManagerWords,
    endpoint: KeyManagerEndpoint,
    *,
    kek_flag: str = "cluster_state",
    unreachable_since: str = "unreachable_since_timestamp_seconds",
    enabled: bool = False,
    ekmip: bool = True,
    docs: dict[str, str] | None = None,
) -> KeyManagerMetrics:
    """Return the families of a cloud key manager: spec section 8's, under ``prefix``.

    ``docs``: docs/metrics.md's words beyond the help, by role.
    """
    name, service, docs = words.name, endpoint.service_field, docs or {}
    article = "an" if name[:1] in "AEIOU" else "a"
    collection = endpoint.path.rsplit("/", 1)[-1]
    *first, last = (f"`{c}`" for c in (endpoint.service, "kek", *(("ekmip",) if ekmip else ())))
    checks = f"{', '.join(first)} or {last}"
    return KeyManagerMetrics(
        info=Metric(
            f"{prefix}info",
            f"{name} configuration of an ONTAP cluster or SVM.",
            (*CONFIGURATION, "scope", *words.details),
            docs.get("info", ""),
        ),
        enabled=Metric(
            f"{prefix}enabled",
            f"1 if the {name} configuration is enabled.",
            CONFIGURATION,
            docs.get("enabled", ""),
        )
        if enabled
        else None,
        service=Metric(
            f"{prefix}{endpoint.service}_reachable",
            f"1 if {words.title} is reachable from all nodes (ONTAP {service}.reachable).",
            (*CONFIGURATION, "code"),
            docs.get("service", ""),
        ),
        kek=Metric(
            f"{prefix}kek_available",
            f"1 if the {name}-wrapped KEK is available on all nodes (ONTAP state.{kek_flag}).",
            (*CONFIGURATION, "code"),
            docs.get("kek", ""),
        ),
        ekmip=Metric(
            f"{prefix}ekmip_reachable",
            "1 if the node reaches the embedded KMIP servers (ONTAP ekmip_reachability.reachable).",
            (*CONFIGURATION, "node", "code"),
            docs.get("ekmip", "One series per node."),
        )
        if ekmip
        else None,
        message=Metric(
            f"{prefix}status_message_info",
            f"ONTAP's status message for a failing {name} check.",
            (*CONFIGURATION, "check", "node", "code", "message"),
            docs.get(
                "message",
                f"`check` is {checks} (`node` is empty but for `ekmip`); one series per "
                "non-empty message, whitespace folded, at most 256 characters.",
            ),
        ),
        unreachable_since=Metric(
            f"{prefix}{unreachable_since}",
            f"Unix time of the first poll of the current {words.short}-unreachable streak.",
            CONFIGURATION,
            docs.get("unreachable_since", "Kept across restarts (`state_file`)."),
        ),
        get_error=Metric(
            f"{prefix}get_error_info",
            f"ONTAP answered GET {collection} with {article} {name} error code NetApp documents "
            "for it.",
            ("code", "message"),
            docs.get(
                "get_error",
                "The cluster stays up and its configurations stay as last known "
                "([api.md](api.md)).",
            ),
        ),
    )
