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
