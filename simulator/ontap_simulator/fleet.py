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
# A "mixed" fleet: in each block of BLOCK consecutive clusters, one of each of these on the
# clusters whose admin SVM has no AKV configuration (that one would hold the keys of every SVM
# without its own): (keystore type, its data SVM or "" for the admin SVM, from release). So a
# 12-cluster demo shows each of them once.
BLOCK = 12
OTHER_KEY_MANAGERS = (
    ("barbican", "svm_openstack", (9, 17, 0)),
    ("aws", "svm_erp", (9, 12, 0)),
    ("gcp", "svm_analytics", (9, 10, 0)),
    ("kmip", "svm_secure", (9, 8, 0)),
    ("okm", "", (9, 8, 0)),
)
# Barbican needs 9.17.1: a block without such a cluster runs one of its 9.14.1+ clusters on it.
BARBICAN_RELEASE = (9, 17, 1)
_CLOUD = {p.keystore_type: p for p in (gcp_kms.PROVIDER, aws_kms.PROVIDER, barbican_kms.PROVIDER)}


def assign_other_key_managers(block: list[ClusterState], rng: random.Random) -> dict[int, str]:
    """Return which of a block's clusters (by position) gets which other key manager."""
    eligible = [i for i, state in enumerate(block) if all(a.svm_name for a in state.akvs)]
    rng.shuffle(eligible)
    roles: dict[int, str] = {}
    for kind, _svm, since in OTHER_KEY_MANAGERS:
        free = [i for i in eligible if i not in roles]
        fitting = [i for i in free if block[i].version >= since]
        if not fitting and kind == "barbican":
            fitting = [i for i in free if block[i].version >= (9, 14, 0)]
        if fitting:
            roles[fitting[0]] = kind
    return roles


def with_other_key_manager(state: ClusterState, kind: str, seed_text: str) -> ClusterState:
    """Return the cluster with one other key manager (and Barbican's release, if need be)."""
    rng = random.Random(f"akv-sim:providers:{seed_text}")
    svm = next(svm for k, svm, _ in OTHER_KEY_MANAGERS if k == kind)
    if kind == "barbican" and state.version < BARBICAN_RELEASE:
        state = dataclasses.replace(state, version=BARBICAN_RELEASE)
    if kind == "okm":
        return dataclasses.replace(state, key_managers=(*state.key_managers, make_okm(rng)))
    if kind == "kmip":
        # Half of them hold the admin SVM's keys, the others a data SVM's.
        svm, svm_uuid = (svm, ontap_uuid(rng)) if rng.random() < 0.5 else ("", "")
        manager = make_kmip(rng, state.name, svm, svm_uuid)
        return dataclasses.replace(state, key_managers=(*state.key_managers, manager))
    config = make_config(_CLOUD[kind], rng, state.name, svm, ontap_uuid(rng))
    return dataclasses.replace(state, cloud_kms=(*state.cloud_kms, config))


def base_cluster(seed: int, index: int, name: str, tenants: tuple[str, ...]) -> ClusterState:
    """Return the AKV part of the healthy cluster number ``index`` of the fleet for ``seed``."""
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
    return ClusterState(
        name=name,
        uuid=ontap_uuid(rng),
        version=version,
        nodes=nodes,
        akvs=tuple(akvs),
    )


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
    # Whole blocks, so that which cluster gets which other key manager does not depend on the
    # fleet's size: cluster i stays the same in every fleet of the seed.
    blocks = -(-count // BLOCK) if providers == "mixed" else 0
    bases = []
    for index in range(max(count, blocks * BLOCK)):
        rng = random.Random(f"akv-sim:{seed}:name:{index}")
        prefix = f"{rng.choice(SITES)}-{_weighted(rng, ENVIRONMENTS)}"
        taken[prefix] += 1
        bases.append(base_cluster(seed, index, f"{prefix}-{taken[prefix]:02d}", tenants))
    roles: dict[int, str] = {}
    for block in range(blocks):
        first = block * BLOCK
        rng = random.Random(f"akv-sim:{seed}:providers:block:{block}")
        chosen = assign_other_key_managers(bases[first : first + BLOCK], rng)
        roles.update({first + position: kind for position, kind in chosen.items()})
    clusters = []
    for index, state in enumerate(bases[:count]):
        if index in roles:
            state = with_other_key_manager(state, roles[index], f"{seed}:{index}")
        clusters.append(with_key_manager_inventory(state, f"{seed}:{index}"))
    return tuple(clusters)
