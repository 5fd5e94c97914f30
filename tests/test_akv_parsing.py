"""ONTAP's azure-key-vaults records, as every release sends them, become typed status."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from akv_exporter.ontap.akv import normalize_code, parse_records, release_of
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


def _without_enabled(record: dict) -> dict:
    """Return the record as ONTAP before 9.14 sends it: no `enabled`, no `configuration`."""
    return {k: v for k, v in record.items() if k not in ("enabled", "configuration")}


def test_active_before_9_14_where_enabled_does_not_exist():
    bare = _without_enabled(akv_record())
    for key in ("azure_reachability", "state", "ekmip_reachability"):
        del bare[key]
    for release in ((9, 8), (9, 10), (9, 13)):
        (akv,) = parse_records([bare], release).akvs
        assert akv.enabled is True, release


def test_active_when_ontap_returned_the_advanced_fields_whatever_the_release():
    record = _without_enabled(akv_record())
    for release in (None, (9, 14), (9, 17)):
        (akv,) = parse_records([record], release).akvs
        assert akv.enabled is True, release


def test_activity_unknown_when_nothing_says():
    bare = _without_enabled(akv_record(enabled=False))
    assert parse_records([bare], (9, 15)).akvs[0].enabled is None
    assert parse_records([bare], None).akvs[0].enabled is None


def test_enabled_sent_by_ontap_wins_over_the_inference():
    record = akv_record()
    record["enabled"] = False
    assert parse_records([record], (9, 8)).akvs[0].enabled is False


def test_release_of_reads_ontap_versions():
    assert release_of("9.13.1") == (9, 13)
    assert release_of("9.8") == (9, 8)
    assert release_of("9.14.1P3") == (9, 14)
    assert release_of("") is None


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
