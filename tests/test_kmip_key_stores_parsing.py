"""External KMIP servers, the Onboard Key Manager and ONTAP's key stores become typed status.

Records are NetApp's examples (``netapp_ontap`` 9.19.1: ``resources/security_key_manager.py``,
``resources/security_keystore.py``), checked against NetApp's schemas with
``from_dict(strict=True)``.
"""

from __future__ import annotations

import copy

import pytest
from netapp_ontap.resources import SecurityKeyManager, SecurityKeystore

from akv_exporter.ontap import key_stores, kmip
from akv_exporter.ontap.key_manager_endpoint import parse_records
from tests.helpers.ontap import KEY_STORES, KMIP, NODE_I, OKM


def test_the_example_records_are_what_netapps_schema_allows():
    SecurityKeyManager.from_dict(copy.deepcopy(KMIP), strict=True)
    SecurityKeyManager.from_dict(copy.deepcopy(OKM), strict=True)
    for record in KEY_STORES:
        SecurityKeystore.from_dict(copy.deepcopy(record), strict=True)


def test_kmip_servers_read_per_node_and_no_action_needed_is_a_healthy_setup():
    okm, km = parse_records(kmip.ENDPOINT, [KMIP, OKM]).key_managers
    assert (km.kind, km.svm, km.scope) == ("kmip", "vs0", "svm")
    assert km.setup is not None and km.setup.ok and km.setup.code == "65537200"
    assert [s.server for s in km.servers] == ["10.225.89.33:5696", "10.225.89.34:5696"]
    quiet, answering = km.servers
    assert quiet.nodes == () and quiet.cluster_available is True and not quiet.down
    assert [(n.node, n.state) for n in answering.nodes] == [
        ("sti65-vsim-ucs148i", "available"),
        ("sti65-vsim-ucs148j", "not_responding"),
    ]
    # NetApp's example says cluster_availability true beside a node not responding: the node
    # is believed.
    assert answering.down and answering.not_responding == ("sti65-vsim-ucs148j",)
    assert (okm.kind, okm.scope, okm.servers) == ("okm", "cluster", ())
    assert okm.setup.ok


def test_a_setup_code_other_than_no_action_needed_is_not_ok():
    record = copy.deepcopy(KMIP)
    record["status"] = {"code": 65537201, "message": "There are no key servers configured."}
    (km,) = parse_records(kmip.ENDPOINT, [record]).key_managers
    assert km.setup is not None and not km.setup.ok and km.setup.code == "65537201"


def test_unknown_node_state_is_neither_up_nor_down():
    record = copy.deepcopy(KMIP)
    record["external"]["servers"] = [
        {
            "server": "k:5696",
            "connectivity": {"node_states": [{"state": "unknown", "node": NODE_I}]},
        }
    ]
    (km,) = parse_records(kmip.ENDPOINT, [record]).key_managers
    (server,) = km.servers
    assert server.not_responding == () and not server.down and server.cluster_available is None


@pytest.mark.parametrize("release", [None, (9, 8), (9, 12), (9, 13), (9, 16), (9, 17)])
def test_key_managers_are_never_asked_for_onboard_or_a_wildcard(release):
    for fields in (kmip.ENDPOINT.fields(release), kmip.ENDPOINT.fallback_fields):
        names = fields.split(",")
        assert "*" not in fields and not any(n.startswith("onboard") for n in names)
    assert not kmip.ENDPOINT.every_field_allowed


def test_node_states_are_asked_from_9_13_and_configuration_from_9_16():
    assert "node_states" not in kmip.ENDPOINT.fields((9, 12))
    assert "external.servers.connectivity.node_states" in kmip.ENDPOINT.fields((9, 13))
    assert "configuration" not in kmip.ENDPOINT.fields((9, 15))
    assert "configuration" in kmip.ENDPOINT.fields((9, 16)).split(",")


def test_key_stores_name_their_kinds_and_state():
    stores = key_stores.parse_key_stores(KEY_STORES)
    assert [(s.svm, s.type, s.state, s.enabled) for s in stores] == [
        ("", "kmip", "", False),
        ("", "okm", "active", True),
        ("vs0", "akv", "blocked", True),
    ]
    assert key_stores.kinds(stores) == {"kmip", "okm", "akv"}


def test_key_store_fields_follow_the_release():
    assert key_stores.fields_query((9, 10)) == "uuid,svm,type,location"
    assert "state" not in key_stores.fields_query((9, 15))
    assert key_stores.fields_query((9, 16)).endswith(",state")


def test_a_key_store_without_uuid_or_type_is_skipped():
    assert key_stores.parse_key_stores([{"uuid": "x"}, {"type": "akv"}, "junk"]) == ()
