"""A deterministic, realistic fleet of clusters from (count, seed): same seed, same fleet.

Each cluster draws from its own generator seeded with (seed, index), so the first twelve
clusters of a 1000-cluster fleet are the twelve of a 12-cluster fleet with the same seed.
String seeds go through SHA-512 in ``random.Random``, so nothing depends on PYTHONHASHSEED.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import TypeVar

from ontap_simulator import aws_kms, barbican_kms, ems, gcp_kms, key_manager_configs, volumes
from ontap_simulator.cloud_kms import make_config
from ontap_simulator.key_managers import make_kmip, make_okm
from ontap_simulator.model import Akv, ClusterState, Node, ontap_uuid

T = TypeVar("T")

# fmt: off
SITES = (
    "ams", "fra", "lon", "dub", "par", "mad", "mil", "zrh", "vie", "waw", "sto", "osl", "hel",
    "cph", "bru", "nyc", "iad", "atl", "ord", "dfw", "den", "phx", "sjc", "sea", "yyz", "gru",
    "sin", "hkg", "nrt", "syd", "mel", "bom", "del", "jnb", "dxb", "icn",
)
# fmt: on
ENVIRONMENTS = (("prod", 50), ("dr", 15), ("dev", 15), ("test", 10), ("qa", 10))
# Releases with AKV support; 9.8 clusters keep the old wire format (see azure_key_vaults.py).
RELEASES = (
    ((9, 8, 0), 6),
    ((9, 10, 1), 5),
    ((9, 11, 1), 8),
    ((9, 12, 1), 14),
    ((9, 13, 1), 16),
    ((9, 14, 1), 18),
    ((9, 15, 1), 14),
    ((9, 16, 1), 11),
    ((9, 17, 1), 8),
)
HA_PAIRS = ((1, 40), (2, 30), (3, 12), (4, 10), (5, 4), (6, 4))
MODELS = ("AFF-A250", "AFF-A400", "AFF-A800", "AFF-A900", "AFF-C250", "AFF-C800", "FAS8300")
# SVM purpose -> the word used in vault and key names (Azure names allow letters, digits, '-').
SVM_PURPOSES = (
    ("svm_nfs", "nfs"),
    ("svm_cifs", "cifs"),
    ("svm_db", "db"),
    ("svm_vdi", "vdi"),
    ("svm_backup", "bkp"),
    ("svm_k8s", "k8s"),
    ("svm_sap", "sap"),
    ("svm_files", "files"),
)


def azure_guid(rng: random.Random) -> str:
    """Return a random (version 4) GUID, as Azure gives tenants and applications."""
    bits = rng.getrandbits(128)
    text = f"{bits:032x}"
    variant = "89ab"[bits & 3]
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{variant}{text[17:20]}-{text[20:32]}"


def _weighted(rng: random.Random, choices: tuple[tuple[T, int], ...]) -> T:
    values, weights = zip(*choices, strict=True)
    return rng.choices(values, weights=weights)[0]


def make_nodes(cluster: str, count: int, rng: random.Random) -> tuple[Node, ...]:
    """Return ``count`` nodes named ``<cluster>-01``... in HA pairs (01+02, 03+04, ...)."""
    model = rng.choice(MODELS)
    names = [f"{cluster}-{index:02d}" for index in range(1, count + 1)]
    nodes = []
    for index, name in enumerate(names):
        partner_index = index + 1 if index % 2 == 0 else index - 1
        nodes.append(
            Node(
                name=name,
                uuid=ontap_uuid(rng),
                model=model,
                serial_number=f"{rng.randrange(10**11, 10**12)}",
                system_id=f"05{rng.randrange(10**7, 10**8)}",
                partner=names[partner_index] if partner_index < len(names) else "",
            )
        )
    return tuple(nodes)


def make_akv(
    rng: random.Random,
    *,
    cluster: str,
    svm: str,
    svm_uuid: str,
    word: str,
    tenant_id: str,
    client_id: str,
    version: tuple[int, int, int],
    enabled: bool = True,
    configuration: str = "default",
) -> Akv:
    """Return one healthy AKV configuration with plausible vault, key and identity values."""
    prefix = "-".join(cluster.split("-")[:2])  # "ams-prod"
    vault_name = f"kv-{prefix}-{word}-{rng.getrandbits(16):04x}"[:24]
    vault = f"https://{vault_name}.vault.azure.net/"
    key = f"ontap-{word}-kek"
    with_proxy = rng.random() < 0.2
    return Akv(
        uuid=ontap_uuid(rng),
        svm_name=svm,
        svm_uuid=svm_uuid,
        vault=vault,
        key_id=f"{vault}keys/{key}/{rng.getrandbits(128):032x}",
        client_id=client_id,
        tenant_id=tenant_id,
        authentication_method=(
            "certificate" if version >= (9, 10, 0) and rng.random() < 0.3 else "client_secret"
        ),
        enabled=enabled,
        configuration_name=configuration,
        proxy_type="http" if with_proxy else "",
        proxy_host=f"proxy.{prefix.split('-')[0]}.corp.example" if with_proxy else "",
        proxy_port=rng.choice((3128, 8080)) if with_proxy else 0,
        proxy_username="ontap-akv" if with_proxy and rng.random() < 0.5 else "",
    )


PROVIDER_MIXES = ("mixed", "akv")
# The other key managers of a "mixed" fleet, each on a data SVM of its own (named here), on
# clusters whose admin SVM has no AKV configuration: (keystore type, SVM, chance, from release).
OTHER_KEY_MANAGERS = (
    ("gcp", "svm_analytics", 0.12, (9, 10, 0)),
    ("aws", "svm_erp", 0.10, (9, 12, 0)),
    ("barbican", "svm_openstack", 0.75, (9, 17, 0)),
    ("kmip", "svm_secure", 0.05, (9, 8, 0)),
)
# For the admin SVM (the cluster's own keys, NSE/NAE): the Onboard Key Manager or KMIP servers.
CLUSTER_KEY_MANAGERS = (("okm", 0.15), ("kmip", 0.10))
_CLOUD = {p.keystore_type: p for p in (gcp_kms.PROVIDER, aws_kms.PROVIDER, barbican_kms.PROVIDER)}


def with_other_key_managers(state: ClusterState, seed_text: str) -> ClusterState:
    """Return the cluster with the other key managers a mixed fleet gives it, if any.

    Only clusters without a cluster-scoped AKV configuration get them (that one would hold the
    keys of every SVM without its own), so AKV's view of every cluster stays what it was. Drawn
    from a generator of its own, so the rest of the cluster is as it was without them.
    """
    rng = random.Random(f"akv-sim:providers:{seed_text}")
    draws = [rng.random() for _ in (*OTHER_KEY_MANAGERS, *CLUSTER_KEY_MANAGERS)]
    if any(not akv.svm_name for akv in state.akvs):
        return state
    cloud = list(state.cloud_kms)
    managers = list(state.key_managers)
    for draw, (kind, svm, chance, since) in zip(draws, OTHER_KEY_MANAGERS, strict=False):
        if draw >= chance or state.version < since:
            continue
        svm_uuid = ontap_uuid(rng)
        if kind == "kmip":
            managers.append(make_kmip(rng, state.name, svm, svm_uuid))
        else:
            cloud.append(make_config(_CLOUD[kind], rng, state.name, svm, svm_uuid))
        break  # one other key manager per cluster at most
    for draw, (kind, chance) in zip(
        draws[len(OTHER_KEY_MANAGERS) :], CLUSTER_KEY_MANAGERS, strict=True
    ):
        if draw < chance:
            managers.append(make_okm(rng) if kind == "okm" else make_kmip(rng, state.name))
            break
    return dataclasses.replace(state, cloud_kms=tuple(cloud), key_managers=tuple(managers))


def generate_cluster(
    seed: int, index: int, name: str, tenants: tuple[str, ...], providers: str = "mixed"
) -> ClusterState:
    """Return the healthy cluster number ``index`` of the fleet for ``seed``, named ``name``;
    ``providers="akv"`` leaves out the other key managers."""
    rng = random.Random(f"akv-sim:{seed}:cluster:{index}")
    version = _weighted(rng, RELEASES)
    nodes = make_nodes(name, 2 * _weighted(rng, HA_PAIRS), rng)
    tenant_id = rng.choice(tenants)
    client_id = azure_guid(rng)
    akvs: list[Akv] = []
    common = {"cluster": name, "tenant_id": tenant_id, "client_id": client_id, "version": version}
    for svm, word in rng.sample(SVM_PURPOSES, rng.randint(1, 3)):
        svm_uuid = ontap_uuid(rng)
        akvs.append(make_akv(rng, svm=svm, svm_uuid=svm_uuid, word=word, **common))
        # Several configurations per SVM (one active) exist only from 9.14.
        if version >= (9, 14, 0) and rng.random() < 0.15:
            inactive = {"enabled": False, "configuration": "migration"}
            akvs.append(make_akv(rng, svm=svm, svm_uuid=svm_uuid, word=word, **inactive, **common))
    if rng.random() < 0.3:
        akvs.append(make_akv(rng, svm="", svm_uuid="", word="admin", **common))
    state = ClusterState(
        name=name,
        uuid=ontap_uuid(rng),
        version=version,
        nodes=nodes,
        akvs=tuple(akvs),
    )
    if providers == "mixed":
        state = with_other_key_managers(state, f"{seed}:{index}")
    return with_key_manager_inventory(state, f"{seed}:{index}")


def with_key_manager_inventory(state: ClusterState, seed_text: str) -> ClusterState:
    """Return the cluster with a generated key-manager policy, volumes and EMS history.

    Drawn from generators of their own, so the rest of the cluster is as it was without them.
    """
    rng = random.Random(f"akv-sim:key-managers:{seed_text}")
    state = dataclasses.replace(
        state,
        key_manager_config=key_manager_configs.generate(rng, state.version),
        volumes=volumes.generate(seed_text, state),
        ems_history=ems.generate_history(rng, state),
    )
    return volumes.with_other_key_managers(seed_text, state)


def generate_fleet(count: int, seed: int = 0, providers: str = "mixed") -> tuple[ClusterState, ...]:
    """Return ``count`` healthy clusters, the same for the same seed, with unique names: every
    one with AKV, some also with another key manager (``providers="akv"``: AKV only)."""
    if providers not in PROVIDER_MIXES:
        raise ValueError(f"providers must be one of {', '.join(PROVIDER_MIXES)}, got {providers!r}")
    fleet_rng = random.Random(f"akv-sim:{seed}:fleet")
    tenants = (azure_guid(fleet_rng), azure_guid(fleet_rng))
    taken: Counter[str] = Counter()
    clusters = []
    for index in range(count):
        rng = random.Random(f"akv-sim:{seed}:name:{index}")
        prefix = f"{rng.choice(SITES)}-{_weighted(rng, ENVIRONMENTS)}"
        taken[prefix] += 1
        name = f"{prefix}-{taken[prefix]:02d}"
        clusters.append(generate_cluster(seed, index, name, tenants, providers))
    return tuple(clusters)
