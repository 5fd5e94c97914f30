"""The simulator's other key managers: Google Cloud KMS, AWS KMS, Barbican, external KMIP key
servers and the Onboard Key Manager, and the key stores, per release as NetApp documents them.

Every answer is checked against NetApp's ``netapp_ontap`` schemas (``from_dict(strict=True)``
plus the nested walk of tests/helpers.netapp_validate) on every release; failures are driven
through the control API and the health monitor through the simulated clock.
"""

from __future__ import annotations

import copy
import io
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from netapp_ontap.resources import AwsKms, Barbican, GcpKms, SecurityKeyManager, SecurityKeystore
from ontap_simulator import RunningSimulator, SimulatorOptions, start_simulator
from ontap_simulator.fleet import generate_fleet
from ontap_simulator.incidents import IncidentScheduler
from ontap_simulator.scenario import load_scenario
from ontap_simulator.server import Fleet
from ontap_simulator.volumes import encrypted_in

from tests.helpers.ontap import netapp_validate
from tests.helpers.simulator import all_pages, cluster_url, control, get

GCP = "/api/security/gcp-kms"
AWS = "/api/security/aws-kms"
BARBICAN = "/api/security/barbican-kms"
KEY_MANAGERS = "/api/security/key-managers"
KEY_STORES = "/api/security/key-stores"
EVENTS = "/api/support/ems/events"
RELEASES = (
    "9.8",
    "9.9.1",
    "9.10.1",
    "9.11.1",
    "9.12.1",
    "9.13.1",
    "9.14.1",
    "9.15.1",
    "9.16.1",
    "9.17.1",
)
# Each endpoint's release (NetApp's REST reference) and its netapp_ontap resource.
ENDPOINTS = {
    GCP: ((9, 9, 0), GcpKms),
    AWS: ((9, 12, 0), AwsKms),
    BARBICAN: ((9, 17, 0), Barbican),
    KEY_MANAGERS: ((9, 6, 0), SecurityKeyManager),
    KEY_STORES: ((9, 10, 0), SecurityKeystore),
}
KMIP_SERVERS = ("10.20.1.11:5696", "10.20.1.12:5696")


def version_of(release: str) -> tuple[int, int, int]:
    parts = [int(p) for p in release.split(".")] + [0]
    return (parts[0], parts[1], parts[2])


def name_of(release: str) -> str:
    return "k" + release.replace(".", "-")


def _scenario(tmp_path: Any) -> Any:
    """Every release, each with every key manager it has (and encrypted volumes for each)."""
    lines = ["clusters:"]
    for release in RELEASES:
        version = version_of(release)
        lines += [
            f"  - name: {name_of(release)}",
            f'    version: "{release}"',
            "    nodes: 2",
            "    akvs: [{svm: svm_nfs}]",
            "    volumes: {svm_gcp: {count: 6, encrypted: 5}, svm_aws: {count: 4, encrypted: 4},",
            "              svm_os: {count: 3, encrypted: 2}, svm_kmip: {count: 2, encrypted: 2}}",
            "    key_managers:",
            "      - {type: okm}",
            f"      - {{type: kmip, svm: svm_kmip, servers: [{', '.join(KMIP_SERVERS)}]}}",
        ]
        if version >= (9, 9, 0):
            lines.append("    gcp_kms: [{svm: svm_gcp}]")
        if version >= (9, 12, 0):
            lines.append("    aws_kms: [{svm: svm_aws}]")
        if version >= (9, 17, 0):
            lines.append(
                "    barbican_kms: [{svm: svm_os}, {svm: svm_os, enabled: false,"
                " configuration: next}]"
            )
    path = tmp_path / "key-managers.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
async def sim(tmp_path: Any) -> AsyncIterator[RunningSimulator]:
    options = SimulatorOptions(
        scenario=_scenario(tmp_path), control_port=0, plain_http=True, out=io.StringIO()
    )
    running = await start_simulator(options)
    yield running
    await running.stop()


async def ask(
    session: aiohttp.ClientSession, sim: RunningSimulator, release: str, path: str
) -> tuple[int, Any]:
    status, body, _ = await get(session, cluster_url(sim, name_of(release)) + path)
    return status, body


async def records(
    session: aiohttp.ClientSession, sim: RunningSimulator, release: str, path: str
) -> list[dict[str, Any]]:
    status, body = await ask(session, sim, release, path)
    assert status == 200, body
    return body["records"]


async def patch(
    session: aiohttp.ClientSession, sim: RunningSimulator, release: str, body: Any
) -> tuple[int, Any]:
    return await control(session, sim, "PATCH", f"/simulator/clusters/{name_of(release)}", body)


# --- what each release has ---------------------------------------------------------------------


@pytest.mark.parametrize("release", RELEASES)
async def test_each_endpoint_is_absent_before_its_release(
    sim: RunningSimulator, session: aiohttp.ClientSession, release: str
) -> None:
    for path, (since, _) in ENDPOINTS.items():
        status, body = await ask(session, sim, release, path)
        if version_of(release) < since:
            # ONTAP's answer for a path the release does not have, as for key-manager-configs.
            assert (status, body["error"]["code"]) == (404, "4"), (path, body)
        else:
            assert status == 200, (path, body)
            assert body["records"], path


# (endpoint, field, the release that introduced it: NetApp's REST reference)
NEWER_FIELDS = (
    (GCP, "port", (9, 14, 0)),
    (GCP, "oauth_url", (9, 14, 0)),
    (GCP, "authentication_method", (9, 17, 0)),
    (KEY_MANAGERS, "external.servers.connectivity.node_states", (9, 13, 0)),
    (KEY_MANAGERS, "enabled", (9, 16, 0)),
    (KEY_MANAGERS, "configuration.name", (9, 16, 0)),
    (KEY_STORES, "scope", (9, 14, 0)),
    (KEY_STORES, "enabled", (9, 14, 0)),
    (KEY_STORES, "state", (9, 16, 0)),
)


@pytest.mark.parametrize("release", RELEASES)
async def test_a_field_newer_than_the_release_is_refused_with_262197(
    sim: RunningSimulator, session: aiohttp.ClientSession, release: str
) -> None:
    version = version_of(release)
    for path, field, since in NEWER_FIELDS:
        if version < ENDPOINTS[path][0]:
            continue
        status, body = await ask(session, sim, release, f"{path}?fields={field}")
        if version < since:
            assert (status, body["error"]["code"]) == (400, "262197"), (path, field, body)
            assert body["error"]["target"] == "fields"
        else:
            assert status == 200, (path, field, body)
    if version >= (9, 17, 0):
        # Barbican has no embedded KMIP server check: ONTAP refuses the field.
        status, body = await ask(session, sim, release, f"{BARBICAN}?fields=ekmip_reachability")
        assert (status, body["error"]["code"]) == (400, "262197")


async def test_cloud_advanced_fields_only_when_named_or_double_star(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    advanced = {
        GCP: {"state", "google_reachability", "ekmip_reachability"},
        AWS: {"state", "amazon_reachability", "ekmip_reachability"},
        BARBICAN: {"state", "barbican_reachability"},
    }
    for path, names in advanced.items():
        star = await records(session, sim, "9.17.1", f"{path}?fields=*")
        assert star and not any(names & set(r) for r in star), path
        everything = await records(session, sim, "9.17.1", f"{path}?fields=**")
        active = [r for r in everything if r.get("enabled", True)]
        assert active and all(set(r) >= names for r in active), path
        # An inactive configuration has none, even with **.
        assert not any(names & set(r) for r in everything if r.get("enabled") is False)
        one = await records(session, sim, "9.17.1", f"{path}?fields=state.code")
        assert all(set(r) <= {"uuid", "_links", "state"} for r in one)
        assert all(set(r["state"]) == {"code"} for r in one if "state" in r)
    default = await records(session, sim, "9.17.1", GCP)
    assert all(set(r) <= {"uuid", "svm", "_links"} for r in default)
    barbican = await records(session, sim, "9.17.1", f"{BARBICAN}?fields=**")
    assert sorted(r["enabled"] for r in barbican) == [False, True]
    assert {r["configuration"]["name"] for r in barbican} == {"default", "next"}


async def test_key_managers_star_returns_the_okm_backup_but_no_advanced_fields(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    star = await records(session, sim, "9.17.1", f"{KEY_MANAGERS}?fields=*")
    by_type = {("okm" if "onboard" in r else "kmip"): r for r in star}
    assert by_type["okm"]["onboard"]["key_backup"].startswith("-" * 26 + "BEGIN BACKUP")
    assert not any("status" in r for r in star)
    servers = by_type["kmip"]["external"]["servers"]
    assert [s["server"] for s in servers] == list(KMIP_SERVERS)
    assert not any("connectivity" in s for s in servers)
    everything = await records(session, sim, "9.17.1", f"{KEY_MANAGERS}?fields=**")
    assert all(r["status"] == {"code": 65537200, "message": "No action needed at this time."}
               for r in everything)  # fmt: skip
    assert any("key_backup" in r.get("onboard", {}) for r in everything)
    kmip = next(r for r in everything if "external" in r)
    assert all(s["connectivity"]["cluster_availability"] for s in kmip["external"]["servers"])
    # Naming the servers is not naming their advanced connectivity.
    named = await records(session, sim, "9.17.1", f"{KEY_MANAGERS}?fields=external.servers")
    kmip = next(r for r in named if "external" in r)
    assert kmip["external"]["servers"] and not any(
        "connectivity" in s for s in kmip["external"]["servers"]
    )
    exact = "?fields=status.code,external.servers.server,external.servers.connectivity"
    asked = await records(session, sim, "9.17.1", KEY_MANAGERS + exact)
    assert not any("onboard" in r for r in asked)
    kmip = next(r for r in asked if "external" in r)
    assert all(set(s) == {"server", "connectivity"} for s in kmip["external"]["servers"])


@pytest.mark.parametrize("release", ["9.12.1", "9.13.1"])
async def test_kmip_node_states_from_9_13(
    sim: RunningSimulator, session: aiohttp.ClientSession, release: str
) -> None:
    query = f"{KEY_MANAGERS}?fields=external.servers.connectivity"
    kmip = next(r for r in await records(session, sim, release, query) if "external" in r)
    for server in kmip["external"]["servers"]:
        if release == "9.12.1":
            assert server["connectivity"] == {"cluster_availability": True}
        else:
            states = server["connectivity"]["node_states"]
            nodes = [f"{name_of(release)}-01", f"{name_of(release)}-02"]
            assert [(s["node"]["name"], s["state"]) for s in states] == [
                (node, "available") for node in nodes
            ]


@pytest.mark.parametrize("release", ["9.10.1", "9.11.1", "9.12.1", "9.17.1"])
async def test_gcp_codes_are_integers_where_netapp_types_them_so(
    sim: RunningSimulator, session: aiohttp.ClientSession, release: str
) -> None:
    (record,) = await records(session, sim, release, f"{GCP}?fields=**")
    codes = [record["state"]["code"], record["google_reachability"]["code"]]
    codes += [entry["code"] for entry in record["ekmip_reachability"]]
    integer = version_of(release) < (9, 12, 0)
    assert all(c == (0 if integer else "0") for c in codes), codes
    # The fault flips it, for a client that must read both.
    other = "string" if integer else "int"
    assert (await patch(session, sim, release, {"faults": {"code_type": other}}))[0] == 200
    (record,) = await records(session, sim, release, f"{GCP}?fields=state")
    assert record["state"]["code"] == ("0" if integer else 0)


# --- NetApp's schemas ---------------------------------------------------------------------------


def _relax_integer_codes(record: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Return the record with integer check codes as strings, and whether there were any."""
    relaxed = copy.deepcopy(record)
    found = False
    checks = [relaxed.get(name) for name in ("state", "google_reachability")]
    checks += relaxed.get("ekmip_reachability", [])
    for check in checks:
        if isinstance(check, dict) and isinstance(check.get("code"), int):
            check["code"] = str(check["code"])
            found = True
    return relaxed, found


FAILURES = {
    "gcp_kms": {
        "*": {
            "google_reachability": {"reachable": False},
            "state": {"cluster_state": False},
            "ekmip_reachability": {"*": {"reachable": False}},
        }
    },
    "key_managers": {"*": {"status": {"code": 65537201, "message": "No key servers."}}},
}


@pytest.mark.slow
@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("failing", [False, True], ids=["healthy", "failing"])
async def test_every_record_validates_against_netapp_schema(
    sim: RunningSimulator, session: aiohttp.ClientSession, release: str, failing: bool
) -> None:
    version = version_of(release)
    if failing:
        body: dict[str, Any] = {"key_managers": FAILURES["key_managers"]}
        if version >= (9, 9, 0):
            body["gcp_kms"] = FAILURES["gcp_kms"]
        if version >= (9, 12, 0):
            body["aws_kms"] = {"*": {"amazon_reachability": {"reachable": False}}}
        if version >= (9, 17, 0):
            body["barbican_kms"] = {"*": {"barbican_reachability": {"reachable": False}}}
        if version >= (9, 10, 0):
            body["key_stores"] = {"*": {"state": "blocked"}}
        status, answer = await patch(session, sim, release, body)
        assert status == 200, answer
    base = cluster_url(sim, name_of(release))
    seen = 0
    for path, (since, resource) in ENDPOINTS.items():
        if version < since:
            continue
        for query in ("?fields=**&max_records=1", ""):
            found, _ = await all_pages(session, base, path + query)
            assert found, path
            for record in found:
                relaxed, integer = _relax_integer_codes(record)
                # Integer codes only where NetApp's reference types them so: GCP before 9.12.
                assert integer == (path == GCP and version < (9, 12, 0) and "state" in record)
                netapp_validate(resource, relaxed, f"{release} {path} {record['uuid']}")
                seen += 1
            if query:  # every instance answers as its collection record does
                for record in found:
                    status, one = await ask(session, sim, release, f"{path}/{record['uuid']}")
                    assert status == 200 and one["uuid"] == record["uuid"]
    assert seen


# --- control API: patches and faults ------------------------------------------------------------


async def test_patch_shorthand_fills_in_each_providers_codes(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    node = f"{name_of('9.17.1')}-02"
    body = {
        "gcp_kms": {
            "*": {
                "google_reachability": {"reachable": False},
                "state": {"cluster_state": False},
                "ekmip_reachability": {node: {"reachable": False}},
            }
        },
        "aws_kms": {
            "*": {"amazon_reachability": {"reachable": False}, "state": {"cluster_state": False}}
        },
        "barbican_kms": {"*": {"barbican_reachability": {"reachable": False}}},
    }
    status, detail = await patch(session, sim, "9.17.1", body)
    assert status == 200, detail
    (gcp,) = await records(session, sim, "9.17.1", f"{GCP}?fields=**")
    assert gcp["google_reachability"]["code"] == "65537730"
    assert gcp["google_reachability"]["message"].startswith("Google Cloud KMS is not reachable")
    assert gcp["state"] == {
        "cluster_state": False,
        "code": "65537708",
        "message": "The Google Cloud Key Management Service key protection is unavailable on "
        f"the following nodes: {name_of('9.17.1')}-01, {node}.",
    }
    assert [(e["node"]["name"], e["reachable"], e["code"]) for e in gcp["ekmip_reachability"]] == [
        (f"{name_of('9.17.1')}-01", True, "0"),
        (node, False, "65537552"),
    ]
    (aws,) = await records(session, sim, "9.17.1", f"{AWS}?fields=**")
    assert aws["amazon_reachability"]["code"] == "65537915"
    assert aws["amazon_reachability"]["message"].startswith("Amazon KMS is not reachable")
    assert aws["state"]["message"].startswith("AWS KMS key protection is unavailable")
    barbican = await records(session, sim, "9.17.1", f"{BARBICAN}?fields=barbican_reachability")
    codes = [r["barbican_reachability"]["code"] for r in barbican if "barbican_reachability" in r]
    assert codes == ["65539801"]  # the inactive configuration has no check
    # The control API shows the same, and healing is the flag alone.
    assert detail["gcp_kms"][0]["google_reachability"]["code"] == "65537730"
    healed = {"gcp_kms": {"*": {"google_reachability": {"reachable": True}}}}
    assert (await patch(session, sim, "9.17.1", healed))[0] == 200
    (gcp,) = await records(session, sim, "9.17.1", f"{GCP}?fields=google_reachability")
    assert gcp["google_reachability"] == {"reachable": True, "code": "0", "message": ""}


async def test_kmip_server_node_states_and_cluster_availability_follow_the_patch(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    release = "9.14.1"
    node = f"{name_of(release)}-01"
    servers = {KMIP_SERVERS[0]: {"node_states": {node: "not_responding"}}}
    down = {"key_managers": {"*": {"servers": servers}}}
    status, detail = await patch(session, sim, release, down)
    assert status == 200, detail
    kmip = next(m for m in detail["key_managers"] if m["type"] == "kmip")
    assert kmip["servers"][KMIP_SERVERS[0]]["node_states"][node] == "not_responding"
    query = f"{KEY_MANAGERS}?fields=external.servers.server,external.servers.connectivity"
    answer = next(r for r in await records(session, sim, release, query) if "external" in r)
    first, second = answer["external"]["servers"]
    assert first["connectivity"]["cluster_availability"] is False
    assert [s["state"] for s in first["connectivity"]["node_states"]] == [
        "not_responding",
        "available",
    ]
    assert second["connectivity"]["cluster_availability"] is True
    # NetApp's own example shows cluster_availability true beside a not_responding node: a
    # scenario can say so.
    odd = {"key_managers": {"*": {"servers": {KMIP_SERVERS[0]: {"cluster_availability": True}}}}}
    assert (await patch(session, sim, release, odd))[0] == 200
    answer = next(r for r in await records(session, sim, release, query) if "external" in r)
    assert answer["external"]["servers"][0]["connectivity"]["cluster_availability"] is True


@pytest.mark.parametrize("release", ["9.15.1", "9.16.1"])
async def test_key_store_state_from_9_16_including_blocked(
    sim: RunningSimulator, session: aiohttp.ClientSession, release: str
) -> None:
    stores = await records(session, sim, release, f"{KEY_STORES}?fields=*")
    assert sorted(s["type"] for s in stores) == ["akv", "aws", "gcp", "kmip", "okm"]
    assert {s["location"] for s in stores if s["type"] == "okm"} == {"onboard"}
    gcp = next(s["uuid"] for s in stores if s["type"] == "gcp")
    status, detail = await patch(session, sim, release, {"key_stores": {gcp: {"state": "blocked"}}})
    assert status == 200, detail
    stores = await records(session, sim, release, f"{KEY_STORES}?fields=*")
    if release == "9.15.1":
        assert not any("state" in s for s in stores)
    else:
        assert {s["type"]: s["state"] for s in stores} == {
            "akv": "active", "aws": "active", "gcp": "blocked", "kmip": "active", "okm": "active"
        }  # fmt: skip
    assert next(s for s in detail["key_stores"] if s["uuid"] == gcp)["state"] == "blocked"


@pytest.mark.parametrize(
    ("release", "body", "error"),
    [
        (
            "9.8",
            {"gcp_kms": {"*": {"google_reachability": {"reachable": False}}}},
            "gcp_kms: /api/security/gcp-kms exists from ONTAP 9.9.1, k9-8 runs 9.8.0",
        ),
        (
            "9.17.1",
            {"barbican_kms": {"*": {"ekmip_reachability": {}}}},
            "barbican_kms.*.ekmip_reachability: unknown key",
        ),
        ("9.17.1", {"aws_kms": {"nope": {}}}, "aws_kms.nope: no such AWS KMS configuration"),
        (
            "9.17.1",
            {"key_managers": {"*": {"servers": {"10.9.9.9:5696": {}}}}},
            "key_managers.*.servers.10.9.9.9:5696: no such key server",
        ),
        (
            "9.17.1",
            {"key_managers": {"*": {"servers": {"*": {"node_states": {"*": "gone"}}}}}},
            "key_managers.*.servers.*.node_states.*: expected one of available, not_responding",
        ),
        (
            "9.15.1",
            {"key_managers": {"*": {"enabled": False}}},
            "key_managers.*.enabled: inactive configurations exist from ONTAP 9.16.1",
        ),
        ("9.17.1", {"key_stores": {"*": {"state": "dead"}}}, "key_stores.*.state: expected"),
        (
            "9.17.1",
            {"faults": {"gcp_kms_error_code": "65537549"}},
            "faults.gcp_kms_error_code: expected one of 65537551, 65537552, 65537730",
        ),
    ],
)
async def test_a_patch_that_cannot_apply_names_the_key_and_changes_nothing(
    sim: RunningSimulator, session: aiohttp.ClientSession, release: str, body: Any, error: str
) -> None:
    _, before = await control(session, sim, "GET", f"/simulator/clusters/{name_of(release)}")
    status, answer = await patch(session, sim, release, body)
    assert status == 400
    assert answer["error"].startswith(error), answer
    _, after = await control(session, sim, "GET", f"/simulator/clusters/{name_of(release)}")
    before.pop("requests"), after.pop("requests")
    assert after == before


async def test_a_list_declares_a_providers_configurations(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    body = {
        "gcp_kms": [{"svm": "svm_a", "key_ring_location": "europe-west4"}, {"scope": "cluster"}]
    }
    status, detail = await patch(session, sim, "9.16.1", body)
    assert status == 200, detail
    assert sorted(c["svm"] for c in detail["gcp_kms"]) == ["", "svm_a"]
    found = await records(session, sim, "9.16.1", f"{GCP}?fields=*")
    assert sorted(r.get("svm", {}).get("name", "") for r in found) == ["", "svm_a"]
    assert "europe-west4" in {r["key_ring_location"] for r in found}
    assert (await patch(session, sim, "9.16.1", {"gcp_kms": []}))[0] == 200
    assert await records(session, sim, "9.16.1", GCP) == []


async def test_error_code_faults_answer_netapps_documented_get_errors(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    release = "9.17.1"
    faults = {
        "gcp_kms_error_code": "65537730",
        "aws_kms_error_code": 65537915,
        "barbican_kms_error_code": "65539801",
        "key_managers_error_code": "65537201",
        "key_stores_error_code": "13434920",
    }
    stores = await records(session, sim, release, KEY_STORES)
    managers = await records(session, sim, release, KEY_MANAGERS)
    assert (await patch(session, sim, release, {"faults": faults}))[0] == 200
    expected = {
        GCP: ("65537730", "The Google Cloud Key Management Service is unreachable"),
        AWS: ("65537915", "The Amazon Web Service Key Management Service is unreachable"),
        BARBICAN: ("65539801", "The Barbican Key Management Service is unreachable"),
        KEY_STORES: ("13434920", "SVM does not exist."),
    }
    for path, (code, message) in expected.items():
        status, body = await ask(session, sim, release, path)
        assert status == 500 and body["error"]["code"] == code, (path, body)
        assert body["error"]["message"].startswith(message)
    status, body = await ask(session, sim, release, f"{KEY_STORES}/{stores[0]['uuid']}")
    assert (status, body["error"]["code"]) == (500, "13434920")
    # NetApp documents the key-managers errors for the instance GET only.
    assert (await ask(session, sim, release, KEY_MANAGERS))[0] == 200
    status, body = await ask(session, sim, release, f"{KEY_MANAGERS}/{managers[0]['uuid']}")
    assert (status, body["error"]["code"]) == (500, "65537201")
    # Before the release has the endpoint, the fault does not make it appear.
    status, body = await ask(session, sim, "9.8", GCP)
    assert status == 404


# --- the request log ----------------------------------------------------------------------------


async def test_request_log_keeps_each_endpoint_and_fields_asked(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    assert (await control(session, sim, "DELETE", "/simulator/requests"))[0] == 200
    base = cluster_url(sim, name_of("9.16.1"))
    query = f"{KEY_MANAGERS}?fields=uuid,status&max_records=1"
    found, pages = await all_pages(session, base, query)
    assert len(pages) == 2
    await ask(session, sim, "9.16.1", f"{KEY_MANAGERS}/{found[0]['uuid']}?fields=**")
    await ask(session, sim, "9.16.1", f"{KEY_STORES}?type=gcp&fields=type")
    status, log = await control(session, sim, "GET", "/simulator/requests")
    assert status == 200
    assert log[name_of("9.16.1")] == {
        KEY_MANAGERS: {"fields=uuid,status&max_records": 2},
        KEY_MANAGERS + "/{uuid}": {"fields=**": 1},
        KEY_STORES: {"type&fields=type": 1},
    }
    assert log[name_of("9.17.1")] == {}
    _, detail = await control(session, sim, "GET", f"/simulator/clusters/{name_of('9.16.1')}")
    assert detail["requests"] == log[name_of("9.16.1")]
    assert (await control(session, sim, "DELETE", "/simulator/requests"))[0] == 200
    assert (await control(session, sim, "GET", "/simulator/requests"))[1][name_of("9.16.1")] == {}


# --- the health monitor and EMS -----------------------------------------------------------------


async def _check(
    session: aiohttp.ClientSession, sim: RunningSimulator, release: str, advance_s: float
) -> dict[str, Any]:
    status, _ = await control(session, sim, "PATCH", "/simulator/clock", {"advance_s": advance_s})
    assert status == 200
    path = f"/simulator/clusters/{name_of(release)}/health-check"
    status, view = await control(session, sim, "POST", path)
    assert status == 200
    return view


async def _events(
    session: aiohttp.ClientSession, sim: RunningSimulator, release: str, names: str
) -> list[dict[str, Any]]:
    query = f"{EVENTS}?message.name={names}&fields=message,node,parameters"
    return await records(session, sim, release, query)


async def _offline(
    session: aiohttp.ClientSession, sim: RunningSimulator, release: str
) -> dict[str, int]:
    _, detail = await control(session, sim, "GET", f"/simulator/clusters/{name_of(release)}")
    return {svm: v["offline"] for svm, v in detail["volumes"].items() if v["offline"]}


async def _store_states(
    session: aiohttp.ClientSession, sim: RunningSimulator, release: str
) -> dict[str, str | None]:
    _, detail = await control(session, sim, "GET", f"/simulator/clusters/{name_of(release)}")
    return {s["type"]: s["state"] for s in detail["key_stores"] if s["enabled"]}


@pytest.mark.parametrize(
    ("release", "key", "group", "svm"),
    [
        ("9.12.1", "gcp_kms", "ekmip.gckms", "svm_gcp"),
        ("9.16.1", "gcp_kms", "ekmip.gckms", "svm_gcp"),
        ("9.13.1", "aws_kms", "ekmip.awskms", "svm_aws"),
        ("9.17.1", "barbican_kms", "", "svm_os"),
    ],
)
async def test_cloud_outage_takes_volumes_offline_after_60_minutes_and_blocks_the_key_store(
    sim: RunningSimulator,
    session: aiohttp.ClientSession,
    release: str,
    key: str,
    group: str,
    svm: str,
) -> None:
    version = version_of(release)
    service = {
        "gcp_kms": "google_reachability",
        "aws_kms": "amazon_reachability",
        "barbican_kms": "barbican_reachability",
    }
    outage = {key: {"*": {service[key]: {"reachable": False}}}}
    assert (await patch(session, sim, release, outage))[0] == 200
    await _check(session, sim, release, 0)
    nodes = [f"{name_of(release)}-01", f"{name_of(release)}-02"]
    if group:
        logged = await _events(session, sim, release, f"{group}.*")
        assert sorted((e["message"]["name"], e["node"]["name"]) for e in logged) == [
            (f"{group}.notAvailable", node) for node in nodes
        ]
        parameters = {p["name"]: p["value"] for p in logged[0]["parameters"]}
        if group == "ekmip.gckms":
            assert set(parameters) == {
                "projectId", "keyringLocation", "keyringName", "keyName", "vserver"
            }  # fmt: skip
        else:
            assert set(parameters) == {"region", "keyId", "vserver"}
        assert parameters["vserver"] == svm
    await _check(session, sim, release, 3599)
    assert await _offline(session, sim, release) == {}
    await _check(session, sim, release, 1)
    encrypted = {"svm_gcp": 5, "svm_aws": 4, "svm_os": 2}[svm]
    assert await _offline(session, sim, release) == {svm: encrypted}
    provider = {"gcp_kms": "gcp", "aws_kms": "aws", "barbican_kms": "barbican"}[key]
    states = await _store_states(session, sim, release)
    assert states[provider] == "blocked" and states["akv"] == "active"
    if version >= (9, 16, 0):
        stores = await records(session, sim, release, f"{KEY_STORES}?fields=type,state")
        assert next(s["state"] for s in stores if s["type"] == provider) == "blocked"
    if group:
        offline = await _events(session, sim, release, f"{group}.volOffline")
        assert len(offline) == 1
        parameters = {p["name"]: p["value"] for p in offline[0]["parameters"]}
        assert parameters["vserver"] == svm
    else:  # NetApp documents no Barbican events: the monitor logs none
        assert await _events(session, sim, release, "*barbican*") == []
    reset = f"/simulator/clusters/{name_of(release)}/reset"
    assert (await control(session, sim, "POST", reset))[0] == 200
    await _check(session, sim, release, 60)
    assert await _offline(session, sim, release) == {}
    assert (await _store_states(session, sim, release))[provider] == "active"
    if group:
        healed = await _events(session, sim, release, f"{group}.available|{group}.volOnline")
        names = sorted(e["message"]["name"] for e in healed)
        online = [f"{group}.volOnline"] if version >= (9, 13, 0) else []
        assert names == sorted([f"{group}.available"] * 2 + online)


async def test_policy_without_volume_offlining_keeps_gcp_volumes_online(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    release = "9.15.1"
    policy = {
        "key_manager_config": {"health_monitor_policy": {"gcp": {"manage_volume_offline": False}}}
    }
    outage = {"gcp_kms": {"*": {"state": {"cluster_state": False}}}}
    for body in (policy, outage):
        assert (await patch(session, sim, release, body))[0] == 200
    await _check(session, sim, release, 0)
    await _check(session, sim, release, 7200)
    assert await _offline(session, sim, release) == {}
    assert len(await _events(session, sim, release, "ekmip.gckms.notAvailable")) == 2
    assert await _events(session, sim, release, "ekmip.gckms.volOffline") == []


async def test_kmip_server_not_responding_logs_keyserver_events_and_takes_nothing_offline(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    release = "9.14.1"
    node = f"{name_of(release)}-02"
    servers = {KMIP_SERVERS[1]: {"node_states": {"*": "not_responding"}}}
    down = {"key_managers": {"*": {"servers": servers}}}
    assert (await patch(session, sim, release, down))[0] == 200
    await _check(session, sim, release, 0)
    logged = await _events(session, sim, release, "km.keyserver.*")
    assert len(logged) == 2
    parameters = {p["name"]: p["value"] for p in logged[0]["parameters"]}
    assert parameters == {
        "address": KMIP_SERVERS[1],
        "vserver": "svm_kmip",
        "keyserver_status": "not_responding",
    }
    await _check(session, sim, release, 7200)
    assert await _offline(session, sim, release) == {}  # NetApp documents no such rule for KMIP
    back = {"key_managers": {"*": {"servers": {"*": {"node_states": {node: "available"}}}}}}
    assert (await patch(session, sim, release, back))[0] == 200
    await _check(session, sim, release, 60)
    available = await _events(session, sim, release, "km.keyserver.available")
    assert [e["node"]["name"] for e in available] == [node]


async def test_control_api_logs_km_keyretrieve_failed_with_netapps_parameters(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    path = f"/simulator/clusters/{name_of('9.13.1')}/events"
    status, body = await control(session, sim, "POST", path, {"name": "km.keyretrieve.failed"})
    assert status == 200, body
    (event,) = body["records"]
    assert event["message"]["severity"] == "alert"
    assert [p["name"] for p in event["parameters"]] == [
        "node",
        "vserver",
        "vserverId",
        "vserverUuid",
    ]
    status, body = await control(session, sim, "POST", path, {"name": "ekmip.awskms.keyChg"})
    assert status == 200 and body["records"][0]["parameters"][0]["name"] == "keyId"
    status, body = await control(session, sim, "POST", path, {"name": "km.keyserver.gone"})
    assert status == 400
    assert body["error"].startswith("name: km.keyserver.gone is no km.keyserver event")
    old = f"/simulator/clusters/{name_of('9.11.1')}/events"
    status, body = await control(session, sim, "POST", old, {"name": "ekmip.awskms.notAvailable"})
    assert status == 400 and "(from 9.12.1)" in body["error"]


# --- the generated fleet, the start line and the incidents --------------------------------------


def test_generated_fleet_mixes_key_managers_and_keeps_every_akv() -> None:
    mixed = generate_fleet(300, seed=7)
    akv_only = generate_fleet(300, seed=7, providers="akv")
    kinds = Counter()
    for cluster, plain in zip(mixed, akv_only, strict=True):
        # AKV's view of every cluster is what an AKV-only fleet has.
        assert cluster.akvs == plain.akvs and cluster.akvs
        assert cluster.volumes[: len(plain.volumes)] == plain.volumes
        assert not plain.cloud_kms and not plain.key_managers
        others = [c.provider for c in cluster.cloud_kms] + [m.kind for m in cluster.key_managers]
        kinds.update(others)
        if not others:
            assert cluster == plain
            continue
        # Only where no cluster-scoped AKV configuration holds the other SVMs' keys.
        assert all(a.svm_name for a in cluster.akvs)
        for config in cluster.cloud_kms:
            since = {"gcp": (9, 10, 0), "aws": (9, 12, 0), "barbican": (9, 17, 0)}
            assert cluster.version >= since[config.provider]
            assert encrypted_in(cluster, [config.svm_name]) > 0
        assert sum(m.kind == "okm" for m in cluster.key_managers) <= 1
    assert set(kinds) == {"gcp", "aws", "barbican", "kmip", "okm"}, kinds
    # Most clusters are AKV-only.
    assert sum(kinds.values()) < len(mixed) / 2


@pytest.mark.parametrize("seed", range(5))
def test_a_twelve_cluster_demo_fleet_shows_each_other_key_manager_once(seed: int) -> None:
    fleet = generate_fleet(12, seed)
    kinds = [c.provider for s in fleet for c in s.cloud_kms]
    kinds += [m.kind for s in fleet for m in s.key_managers]
    assert sorted(kinds) == ["aws", "barbican", "gcp", "kmip", "okm"]
    # The same clusters in a larger fleet of the seed.
    assert generate_fleet(13, seed)[:12] == fleet


async def test_start_line_names_each_clusters_other_key_managers(tmp_path: Any) -> None:
    out = io.StringIO()
    options = SimulatorOptions(scenario=_scenario(tmp_path), plain_http=True, out=out)
    running = await start_simulator(options)
    await running.stop()
    line = next(line for line in out.getvalue().splitlines() if "k9-17-1 " in line)
    assert " 1 AKV +gcp,aws,barbican,barbican,kmip,okm  user admin" in line


def test_incidents_break_and_heal_the_other_key_managers(tmp_path: Any) -> None:
    scenario = tmp_path / "others.yml"
    scenario.write_text(
        "clusters:\n"
        "  - {name: only-gcp, version: '9.16.1', akvs: [], gcp_kms: [{svm: svm_db}]}\n"
        "  - {name: only-kmip, version: '9.14.1', akvs: [],\n"
        "     key_managers: [{type: kmip, servers: [10.0.0.1, 10.0.0.2]}]}\n"
    )
    fleet = Fleet(load_scenario(scenario))
    out = io.StringIO()
    scheduler = IncidentScheduler(fleet, seed=3, out=out, clock=lambda: 0.0)
    seen = set()
    for _ in range(60):
        incident = scheduler.start_one()
        assert incident is not None
        state = fleet.clusters[incident.cluster].state
        if incident.kind == "gcp_outage":
            (config,) = state.cloud_kms
            assert config.service.code == "65537730" and not config.service.ok
        elif incident.kind == "kmip_server_down":
            (manager,) = state.key_managers
            server = next(s for s in manager.servers if s.server == incident.server)
            assert server.state_of(incident.node) == "not_responding"
        seen.add(incident.kind)
        scheduler.heal(incident)
        assert fleet.clusters[incident.cluster].state == fleet.clusters[incident.cluster].baseline
    assert {"gcp_outage", "kmip_server_down"} <= seen
    assert "Google Cloud KMS outage on only-gcp SVM svm_db: unreachable" in out.getvalue()
