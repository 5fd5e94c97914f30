"""ONTAP's azure-key-vaults records, as every release sends them, become typed status."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from akv_exporter.ontap import akv
from akv_exporter.ontap.cluster import release_of
from akv_exporter.ontap.key_manager_endpoint import normalize_code, parse_records
from tests.helpers.ontap import akv_record


def test_healthy_record_parses_every_check():
    (status,) = parse_records(akv.ENDPOINT, [akv_record()]).key_managers
    assert status.svm == "vs1" and status.scope == "svm" and status.enabled is True
    assert status.service is not None and status.service.ok and status.service.code == "0"
    assert status.kek is not None and status.kek.ok
    assert [n.node for n in status.ekmip] == ["n1", "n2"]
    assert all(n.ok for n in status.ekmip)


def test_kek_state_accepts_cluster_state_as_in_netapps_example():
    record = akv_record()
    record["state"] = {"cluster_state": False, "code": "65537551", "message": "x"}
    (status,) = parse_records(akv.ENDPOINT, [record]).key_managers
    assert status.kek is not None and status.kek.ok is False and status.kek.code == "65537551"


def test_integer_codes_of_ontap_98_become_decimal_strings():
    record = akv_record(reachable=False)
    record["azure_reachability"]["code"] = 65537549
    record["ekmip_reachability"][0]["code"] = 0
    (status,) = parse_records(akv.ENDPOINT, [record]).key_managers
    assert status.service.code == "65537549"
    assert status.ekmip[0].code == "0"


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
    (status,) = parse_records(akv.ENDPOINT, [record]).key_managers
    assert status.service is None and status.kek is None and status.ekmip == ()


def test_kek_unknown_when_config_inactive():
    (status,) = parse_records(akv.ENDPOINT, [akv_record(enabled=False)]).key_managers
    assert status.enabled is False
    assert status.service is None and status.kek is None and status.ekmip == ()


def _without_enabled(record: dict) -> dict:
    """Return the record as ONTAP before 9.14 sends it: no `enabled`, no `configuration`."""
    return {k: v for k, v in record.items() if k not in ("enabled", "configuration")}


def test_active_before_9_14_where_enabled_does_not_exist():
    bare = _without_enabled(akv_record())
    for key in ("azure_reachability", "state", "ekmip_reachability"):
        del bare[key]
    for release in ((9, 8), (9, 10), (9, 13)):
        (status,) = parse_records(akv.ENDPOINT, [bare], release).key_managers
        assert status.enabled is True, release


def test_active_when_ontap_returned_the_advanced_fields_whatever_the_release():
    record = _without_enabled(akv_record())
    for release in (None, (9, 14), (9, 17)):
        (status,) = parse_records(akv.ENDPOINT, [record], release).key_managers
        assert status.enabled is True, release


def test_activity_unknown_when_nothing_says():
    bare = _without_enabled(akv_record(enabled=False))
    assert parse_records(akv.ENDPOINT, [bare], (9, 15)).key_managers[0].enabled is None
    assert parse_records(akv.ENDPOINT, [bare], None).key_managers[0].enabled is None


def test_enabled_sent_by_ontap_wins_over_the_inference():
    record = akv_record()
    record["enabled"] = False
    assert parse_records(akv.ENDPOINT, [record], (9, 8)).key_managers[0].enabled is False


def test_release_of_reads_ontap_versions():
    assert release_of("9.13.1") == (9, 13)
    assert release_of("9.8") == (9, 8)
    assert release_of("9.14.1P3") == (9, 14)
    assert release_of("") is None


def test_unknown_extra_fields_are_ignored():
    record = akv_record()
    record["brand_new_field"] = {"nested": [1, 2, 3]}
    record["azure_reachability"]["extra"] = "x"
    (status,) = parse_records(akv.ENDPOINT, [record]).key_managers
    assert status.service.ok


def test_malformed_records_are_skipped_and_counted_not_fatal():
    parsed = parse_records(
        akv.ENDPOINT, ["not an object", {"name": "no uuid"}, akv_record(), akv_record()]
    )
    assert len(parsed.key_managers) == 1
    assert len(parsed.skipped) == 3  # a string, a record without uuid, a duplicate uuid
    assert "duplicate" in parsed.skipped[2]


def test_cluster_scoped_configuration_has_empty_svm():
    (status,) = parse_records(akv.ENDPOINT, [akv_record(svm=None)]).key_managers
    assert status.scope == "cluster" and status.svm == ""


def test_messages_fold_whitespace():
    record = akv_record(reachable=False)
    record["azure_reachability"]["message"] = "AKV   is\nnot\treachable "
    (status,) = parse_records(akv.ENDPOINT, [record]).key_managers
    assert status.service.message == "AKV is not reachable"


def test_ekmip_entries_without_a_node_or_a_verdict_are_dropped():
    record = akv_record()
    record["ekmip_reachability"].append({"reachable": False})
    record["ekmip_reachability"].append({"node": {"name": "n3"}})
    (status,) = parse_records(akv.ENDPOINT, [record]).key_managers
    assert [n.node for n in status.ekmip] == ["n1", "n2"]


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


@pytest.mark.slow
@given(st.lists(json_values, max_size=5))
def test_parsing_never_raises_on_any_json(records):
    parsed = parse_records(akv.ENDPOINT, json.loads(json.dumps(records)))
    assert len(parsed.key_managers) + len(parsed.skipped) == len(records)
