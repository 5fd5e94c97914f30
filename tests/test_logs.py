"""Text logs cannot be forged: what ONTAP or a configuration says stays on its own line."""

from __future__ import annotations

import io
import json
import logging

import pytest
from aiohttp import web

from akv_exporter.exporter import Exporter
from akv_exporter.logs import escape_controls, setup_logging
from tests.helpers.configs import config_for
from tests.helpers.exporter import Clock, closed_port_url, exporter_with_clock
from tests.helpers.ontap import akv_record, volume

HOSTILE_NAME = "evil\n2026-01-01T00:00:00 ERROR akv_exporter: forged\x1b[2J\u2028\x85"
HOSTILE_MESSAGE = "denied\r\x1b[31mroot password is hunter2\x1b[0m\x00\u202e"


def logs_to_memory(fmt: str):
    """Log as `run --log-format FMT` does, into memory; yield the stream; restore afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging("info", fmt)
    stream = io.StringIO()
    root.handlers[0].setStream(stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def text_logs():
    yield from logs_to_memory("text")


@pytest.fixture
def json_logs():
    yield from logs_to_memory("json")


def test_control_characters_are_written_as_visible_escapes():
    assert escape_controls("a\nb\rc\td\x1b[0m\x7f\x9b\u2028\u202e") == (
        "a\\nb\\rc\\td\\x1b[0m\\x7f\\x9b\\u2028\\u202e"
    )
    assert escape_controls("plain ünïcode, no controls") == "plain ünïcode, no controls"


async def test_an_ontap_name_and_message_cannot_forge_or_colour_a_text_log_line(
    make_ontap, tmp_path, text_logs
):
    renamed, refusing = await make_ontap(), await make_ontap()
    renamed.cluster["name"] = HOSTILE_NAME
    refusing.cluster["name"] = HOSTILE_NAME + "2"

    async def refuse(request):
        body = {"error": {"code": "6", "message": HOSTILE_MESSAGE, "target": HOSTILE_NAME}}
        return web.json_response(body, status=500)

    refusing.handler = refuse
    config = config_for(tmp_path, renamed.url, refusing.url, names=False)
    exporter = Exporter(config, process_metrics=False)
    await exporter.poll_all()
    await exporter.stop()
    logging.getLogger("akv_exporter.test").warning("cluster %s said hello", HOSTILE_NAME)

    lines = text_logs.getvalue().splitlines()
    assert lines and all(line[:4].isdigit() for line in lines), lines  # each starts with a time
    assert not any(char in "".join(lines) for char in "\x1b\x00\r\x85\u2028\u202e")
    assert any("root password is hunter2" in line and "\\x1b[31m" in line for line in lines)
    assert any("said hello" in line and "evil\\n2026" in line for line in lines)


def test_json_logs_keep_the_original_text_escaped_by_json(json_logs):
    logging.getLogger("akv_exporter.test").warning("cluster %s", HOSTILE_NAME)
    (line,) = json_logs.getvalue().splitlines()
    assert json.loads(line)["msg"] == f"cluster {HOSTILE_NAME}"


# --- state changes: logged once when they start, once when they end ----------------------------

AKV_PATH = "/api/security/azure-key-vaults"


def said(caplog, level: int = logging.INFO) -> list[tuple[str, str]]:
    """Return (level, message) of every record at ``level`` or above, in order."""
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= level]


def logged(caplog, config, level: int = logging.INFO) -> tuple[Exporter, Clock]:
    """Return an exporter on a hand-moved clock, its logs at ``level`` kept by caplog."""
    caplog.set_level(level, logger="akv_exporter")
    clock = Clock()
    return exporter_with_clock(config, clock), clock


async def polls(exporter, clock, count: int, *, slow: bool = False) -> None:
    for _ in range(count):
        clock.now += 300 if slow else 60
        await exporter.poll_all()
        if slow:
            await exporter.poller.poll_blast_radius("c0")


async def test_an_akv_query_error_is_logged_once_when_it_starts_and_once_when_it_ends(
    fake_ontap, tmp_path, caplog
):
    exporter, clock = logged(caplog, config_for(tmp_path, fake_ontap.url))
    await exporter.poll_all()

    async def refuse(request):
        body = {"error": {"code": "65537549", "message": "unreachable from one or more nodes."}}
        return web.json_response(body, status=500)

    fake_ontap.handler = refuse
    await polls(exporter, clock, 3)
    fake_ontap.handler = None
    await polls(exporter, clock, 2)
    await exporter.stop()
    about_it = [(level, m) for level, m in said(caplog) if AKV_PATH in m]
    assert about_it == [
        (
            "WARNING",
            f"cluster c0: ONTAP answered the {AKV_PATH} query with an error (code 65537549):"
            " unreachable from one or more nodes.; the last known configurations stay",
        ),
        ("INFO", f"cluster c0: ONTAP answers the {AKV_PATH} query again"),
    ]


async def test_outages_are_logged_once_when_they_start_and_once_when_they_end(
    fake_ontap, tmp_path, caplog
):
    exporter, clock = logged(caplog, config_for(tmp_path, fake_ontap.url))
    await exporter.poll_all()
    fake_ontap.records = [akv_record(reachable=False, kek=False, ekmip_down=("n2",))]
    await polls(exporter, clock, 3)
    fake_ontap.records = [akv_record()]
    await polls(exporter, clock, 2)
    await exporter.stop()
    changes = [(level, m) for level, m in said(caplog) if m.startswith("cluster c0: svm vs1: ")]
    assert [(level, m.split(" (code")[0]) for level, m in changes] == [
        ("WARNING", "cluster c0: svm vs1: azure_reachability false"),
        ("WARNING", "cluster c0: svm vs1: EKMIP unreachable from node n2"),
        ("WARNING", "cluster c0: svm vs1: KEK unavailable"),
        ("INFO", "cluster c0: svm vs1: azure_reachability true again"),
        ("INFO", "cluster c0: svm vs1: EKMIP reachable again from node n2"),
        ("INFO", "cluster c0: svm vs1: KEK available again"),
    ]
    assert "(code 65537549): " in changes[0][1]  # ONTAP's code and message, at the start


async def test_encrypted_volumes_going_offline_are_logged_once_and_so_is_their_return(
    fake_ontap, tmp_path, caplog
):
    exporter, clock = logged(caplog, config_for(tmp_path, fake_ontap.url))
    fake_ontap.volumes = [volume("vs1", index=0), volume("vs1", index=1)]
    await polls(exporter, clock, 1, slow=True)
    fake_ontap.volumes = [volume("vs1", index=0), volume("vs1", "offline", index=1)]
    await polls(exporter, clock, 3, slow=True)
    fake_ontap.volumes = [volume("vs1", index=0), volume("vs1", index=1)]
    await polls(exporter, clock, 2, slow=True)
    await exporter.stop()
    assert [(level, m) for level, m in said(caplog) if "encrypted volume" in m] == [
        ("WARNING", "cluster c0: 1 encrypted volumes offline in SVM vs1"),
        ("INFO", "cluster c0: no encrypted volume offline in SVM vs1 any more"),
    ]


async def test_a_failing_cluster_warns_once_and_debug_says_what_each_poll_did(
    fake_ontap, tmp_path, caplog
):
    config = config_for(tmp_path, fake_ontap.url, closed_port_url())
    exporter, clock = logged(caplog, config, logging.DEBUG)
    await polls(exporter, clock, 3)
    await exporter.stop()
    failed = [(level, m) for level, m in said(caplog, logging.DEBUG) if "cluster=c1" in m]
    assert [level for level, _ in failed] == ["WARNING", "DEBUG", "DEBUG"]
    polled = [m for _, m in said(caplog, logging.DEBUG) if m.startswith("polled: cluster=c0")]
    assert len(polled) == 3 and all("configurations=1 refused=none" in m for m in polled), polled
    # A slow poll that keeps failing (here ONTAP's 404 for the EMS log) warns once too.
    slow = [level for level, m in said(caplog, logging.DEBUG) if "endpoint=/api/support/ems" in m]
    assert slow[0] == "WARNING" and set(slow[1:]) == {"DEBUG"}, slow
