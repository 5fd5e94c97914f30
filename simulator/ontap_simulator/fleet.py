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

from ontap_simulator import ems, key_manager_configs, volumes
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


def generate_cluster(seed: int, index: int, name: str, tenants: tuple[str, ...]) -> ClusterState:
    """Return the healthy cluster number ``index`` of the fleet for ``seed``, named ``name``."""
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
    return with_key_manager_inventory(state, f"{seed}:{index}")


def with_key_manager_inventory(state: ClusterState, seed_text: str) -> ClusterState:
    """Return the cluster with a generated key-manager policy, volumes and EMS history.

    Drawn from generators of their own, so the rest of the cluster is as it was without them.
    """
    rng = random.Random(f"akv-sim:key-managers:{seed_text}")
    return dataclasses.replace(
        state,
        key_manager_config=key_manager_configs.generate(rng, state.version),
        volumes=volumes.generate(seed_text, state),
        ems_history=ems.generate_history(rng, state),
    )


def generate_fleet(count: int, seed: int = 0) -> tuple[ClusterState, ...]:
    """Return ``count`` healthy clusters, the same for the same seed, with unique names."""
    fleet_rng = random.Random(f"akv-sim:{seed}:fleet")
    tenants = (azure_guid(fleet_rng), azure_guid(fleet_rng))
    taken: Counter[str] = Counter()
    clusters = []
    for index in range(count):
        rng = random.Random(f"akv-sim:{seed}:name:{index}")
        prefix = f"{rng.choice(SITES)}-{_weighted(rng, ENVIRONMENTS)}"
        taken[prefix] += 1
        clusters.append(generate_cluster(seed, index, f"{prefix}-{taken[prefix]:02d}", tenants))
    return tuple(clusters)
