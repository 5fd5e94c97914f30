"""Google Cloud KMS, AWS KMS and Barbican records, as NetApp documents them, become typed status.

The records are NetApp's own examples (the ``netapp_ontap`` 9.19.1 docstrings of
``resources/gcp_kms.py``, ``aws_kms.py`` and ``barbican.py``), checked against NetApp's schemas
with ``from_dict(strict=True)`` so that a test never pins a shape ONTAP does not send.
"""

from __future__ import annotations

import copy

import pytest
from netapp_ontap.resources import AwsKms, Barbican, GcpKms

from akv_exporter.ontap import aws_kms, barbican_kms, gcp_kms
from akv_exporter.ontap.key_manager_endpoint import parse_records
from tests.helpers.ontap import AWS, BARBICAN, GCP


@pytest.mark.parametrize(("schema", "record"), [(GcpKms, GCP), (AwsKms, AWS), (Barbican, BARBICAN)])
def test_the_example_records_are_what_netapps_schema_allows(schema, record):
    schema.from_dict(copy.deepcopy(record), strict=True)


def test_gcp_kek_is_state_cluster_state_and_its_details_name_the_key():
    (status,) = parse_records(gcp_kms.ENDPOINT, [GCP]).key_managers
    assert (status.kind, status.svm, status.scope, status.enabled) == ("gcp", "vs0", "svm", True)
    assert status.service is not None and status.service.ok
    assert status.kek is not None and not status.kek.ok and status.kek.code == "65537708"
    assert [(n.node, n.ok) for n in status.ekmip] == [("node1", True), ("node2", True)]
    assert dict(status.details) == {
        "project_id": "testProj",
        "key_ring_location": "global",
        "key_ring_name": "testRing",
        "key_name": "key1",
    }


def test_gcp_integer_codes_of_older_releases_read_as_decimal_strings():
    # NetApp's 9.9.1 and 9.11.1 references type these codes as integers.
    record = copy.deepcopy(GCP)
    record["google_reachability"] = {"reachable": False, "code": 65537730, "message": "x"}
    record["ekmip_reachability"][1].update(reachable=False, code=65537552)
    (status,) = parse_records(gcp_kms.ENDPOINT, [record], (9, 11)).key_managers
    assert status.service_unreachable and status.service.code == "65537730"
    assert [n.code for n in status.ekmip_unreachable] == ["65537552"]


def test_aws_reads_amazon_reachability_and_its_region_and_key():
    record = copy.deepcopy(AWS)
    record["amazon_reachability"] = {
        "reachable": False,
        "code": "65537915",
        "message": "Amazon KMS is not reachable from all nodes - <reason>.",
    }
    (status,) = parse_records(aws_kms.ENDPOINT, [record]).key_managers
    assert status.kind == "aws" and status.service_unreachable
    assert status.service.message == "Amazon KMS is not reachable from all nodes - <reason>."
    assert status.kek is not None and status.kek.ok
    assert dict(status.details) == {"region": "us-east-1", "key_id": "kmip_key_1"}


def test_barbican_has_no_ekmip_and_is_not_unknown_for_lack_of_it():
    (status,) = parse_records(barbican_kms.ENDPOINT, [BARBICAN]).key_managers
    assert status.kind == "barbican" and status.ekmip == ()
    assert status.service.ok and status.kek.ok and status.enabled is True
    assert dict(status.details) == {
        "configuration": "myConfiguration",
        "key_id": BARBICAN["key_id"],
        "keystone_url": "https://sample.keystone.com:5000/v3/auth/tokens",
    }


def test_an_inactive_barbican_configuration_has_no_advanced_fields():
    record = {k: v for k, v in BARBICAN.items() if k not in ("state", "barbican_reachability")}
    record["enabled"] = False
    (status,) = parse_records(barbican_kms.ENDPOINT, [record]).key_managers
    assert status.enabled is False and status.service is None and status.kek is None


def test_barbican_is_never_asked_for_ekmip_reachability():
    # ONTAP refuses the field name on barbican-kms (error 262197).
    assert "ekmip" not in barbican_kms.ENDPOINT.fields((9, 17))
    assert "ekmip" not in barbican_kms.ENDPOINT.fallback_fields


@pytest.mark.parametrize("endpoint", [gcp_kms.ENDPOINT, aws_kms.ENDPOINT, barbican_kms.ENDPOINT])
def test_the_advanced_fields_are_named_never_wildcarded(endpoint):
    fields = endpoint.fields(endpoint.introduced).split(",")
    assert "*" not in fields and "**" not in fields
    assert {"state", endpoint.service_field} <= set(fields)


def test_gcp_is_asked_from_9_10_aws_from_9_12_barbican_from_9_17():
    # GCP's endpoint exists in 9.9 only for Cloud Volumes Service (NetApp's 9.9.1 reference);
    # ONTAP itself uses Google Cloud KMS from 9.10.1 (ONTAP documentation).
    assert gcp_kms.ENDPOINT.introduced == (9, 10)
    assert aws_kms.ENDPOINT.introduced == (9, 12)
    assert barbican_kms.ENDPOINT.introduced == (9, 17)
