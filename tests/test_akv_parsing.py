"""ONTAP's azure-key-vaults records, as every release sends them, become typed status."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from akv_exporter.ontap.akv import normalize_code, parse_records
from tests.helpers import akv_record


def test_healthy_record_parses_every_check():
    (akv,) = parse_records([akv_record()]).akvs
    assert akv.svm == "vs1" and akv.scope == "svm" and akv.enabled is True
    assert akv.azure is not None and akv.azure.ok and akv.azure.code == "0"
    assert akv.kek is not None and akv.kek.ok
    assert [n.node for n in akv.ekmip] == ["n1", "n2"]
    assert all(n.ok for n in akv.ekmip)


def test_kek_state_accepts_cluster_state_as_in_netapps_example():
    record = akv_record()
    record["state"] = {"cluster_state": False, "code": "65537551", "message": "x"}
    (akv,) = parse_records([record]).akvs
    assert akv.kek is not None and akv.kek.ok is False and akv.kek.code == "65537551"


def test_integer_codes_of_ontap_98_become_decimal_strings():
    record = akv_record(reachable=False)
    record["azure_reachability"]["code"] = 65537549
    record["ekmip_reachability"][0]["code"] = 0
    (akv,) = parse_records([record]).akvs
    assert akv.azure.code == "65537549"
    assert akv.ekmip[0].code == "0"


def test_code_normalisation():
    assert normalize_code("0") == "0"
    assert normalize_code(0) == "0"
    assert normalize_code(" 065537549 ") == "65537549"
    assert normalize_code(None) == ""
    assert normalize_code(True) == ""


def test_nulls_and_missing_advanced_fields_mean_unknown():
    record = akv_record()
    record["azure_reachability"] = {"reachable": None, "code": None, "message": None}
    del record["state"]
    record["ekmip_reachability"] = None
    (akv,) = parse_records([record]).akvs
    assert akv.azure is None and akv.kek is None and akv.ekmip == ()


def test_kek_unknown_when_config_inactive():
    (akv,) = parse_records([akv_record(enabled=False)]).akvs
    assert akv.enabled is False
    assert akv.azure is None and akv.kek is None and akv.ekmip == ()


def test_unknown_extra_fields_are_ignored():
    record = akv_record()
    record["brand_new_field"] = {"nested": [1, 2, 3]}
    record["azure_reachability"]["extra"] = "x"
    (akv,) = parse_records([record]).akvs
    assert akv.azure.ok


def test_malformed_records_are_skipped_and_counted_not_fatal():
    parsed = parse_records(["not an object", {"name": "no uuid"}, akv_record(), akv_record()])
    assert len(parsed.akvs) == 1
    assert len(parsed.skipped) == 3  # a string, a record without uuid, a duplicate uuid
    assert "duplicate" in parsed.skipped[2]


def test_cluster_scoped_configuration_has_empty_svm():
    (akv,) = parse_records([akv_record(svm=None)]).akvs
    assert akv.scope == "cluster" and akv.svm == ""


def test_messages_fold_whitespace():
    record = akv_record(reachable=False)
    record["azure_reachability"]["message"] = "AKV   is\nnot\treachable "
    (akv,) = parse_records([record]).akvs
    assert akv.azure.message == "AKV is not reachable"


def test_ekmip_entries_without_a_node_or_a_verdict_are_dropped():
    record = akv_record()
    record["ekmip_reachability"].append({"reachable": False})
    record["ekmip_reachability"].append({"node": {"name": "n3"}})
    (akv,) = parse_records([record]).akvs
    assert [n.node for n in akv.ekmip] == ["n1", "n2"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "uuid",
                    "svm",
                    "name",
                    "state",
                    "azure_reachability",
                    "ekmip_reachability",
                    "reachable",
                    "code",
                    "message",
                    "node",
                    "available",
                    "cluster_state",
                    "enabled",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@given(st.lists(json_values, max_size=5))
def test_parsing_never_raises_on_any_json(records):
    parsed = parse_records(json.loads(json.dumps(records)))
    assert len(parsed.akvs) + len(parsed.skipped) == len(records)
