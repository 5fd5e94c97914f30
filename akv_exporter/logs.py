"""Log set-up: text for people, JSON lines for log pipelines. Secrets never reach a record."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

# Attributes a LogRecord always has; anything else was passed as `extra` and is worth keeping.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


# C0 and C1 controls, DEL, the Unicode line separators and the bidirectional overrides: in a text
# log any of them can start a forged line, recolour a terminal or reorder what a reader sees.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def escape_controls(text: str) -> str:
    """Return ``text`` with every control character written as a visible escape (``\\x1b``)."""
    return _CONTROL.sub(_escape, text)


class TextFormatter(logging.Formatter):
    """One line per record: what ONTAP or a configuration says cannot break or forge a line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        record.message = escape_controls(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _logfmt_value(value: object) -> str:
    text = escape_controls(str(value))
    if text and not any(c in text for c in ' "=\\'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LogfmtFormatter(JsonFormatter):
    """One logfmt line per record (``ts=... level=info msg="..."``), as Prometheus logs."""

    def format(self, record: logging.LogRecord) -> str:
        entry = json.loads(super().format(record))
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in entry.items())


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Send logs to stderr in ``fmt`` ("text", "logfmt" or "json") at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif fmt == "logfmt":
        handler.setFormatter(LogfmtFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log is one line per scrape: noise at info level.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
