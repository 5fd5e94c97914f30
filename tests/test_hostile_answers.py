"""Hostile answers: whatever bytes a server sends, a poll ends in one of the classified reasons.

A raw TCP server on loopback writes exactly the bytes each case chooses, so the real client
(aiohttp, decompression, the strict JSON decoder) and the real poller see them as they would
from a broken or malicious ONTAP. "Unexpected error" is for bugs; no answer may reach it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import zlib
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akv_exporter.config import Config, PollConfig, WebConfig
from akv_exporter.ontap import akv
from akv_exporter.ontap.akv import AKV_PATH
from akv_exporter.ontap.client import OntapClient, OntapError
from akv_exporter.poller import Poller
from akv_exporter.snapshot import REASONS
from akv_exporter.unreachable_streaks import UnreachableSince
from tests.helpers.configs import cluster_config
from tests.helpers.ontap import akv_record

IDENTITY = json.dumps({"name": "c1", "uuid": "u", "version": {"generation": 9, "major": 14}})
LIMIT = 64 * 1024


def http_answer(
    body: bytes,
    *,
    status: str = "200 OK",
    headers: tuple[str, ...] = ("Content-Type: application/hal+json",),
    length: int | None = None,
) -> bytes:
    """Return a whole HTTP/1.1 answer; ``length`` overrides Content-Length (a lie, if asked)."""
    declared = len(body) if length is None else length
    head = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {declared}", "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RawServer:
    """Answers each request with the bytes ``answer(path)`` returns, then closes the socket."""

    def __init__(self, answer: Callable[[str], bytes]):
        self.answer = answer
        self.server: asyncio.Server | None = None
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode("latin-1")
            writer.write(self.answer(path))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def akv_answer(answer: bytes) -> Callable[[str], bytes]:
    """Answer GET /api/cluster properly and the AKV collection with ``answer``."""
    return lambda path: answer if path.startswith(AKV_PATH) else http_answer(IDENTITY.encode())


async def client_error(answer: bytes) -> OntapError:
    async with RawServer(akv_answer(answer)) as server:
        client = OntapClient(cluster_config(server.url), max_response_bytes=LIMIT)
        try:
            with pytest.raises(OntapError) as caught:
                await client.key_manager_records(
                    akv.ENDPOINT, asyncio.get_running_loop().time() + 10
                )
            return caught.value
        finally:
            await client.close()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[" * 20_000 + b"]" * 20_000, "nested too deeply"),
        (b'{"records": [], "x": "\xff\xfe"}', "utf-8"),
        (b'{"records": [], "num_records": NaN}', "NaN is not JSON"),
        (b'{"records": [], "num_records": -Infinity}', "-Infinity is not JSON"),
        (b'{"records": [], "num_records": 1e999}', "out of range"),
        (b'{"records": [], "records": [{"uuid": "x"}]}', 'duplicate key "records"'),
        (b'["records"]', "is an array, not an object"),
        (b'"records"', "is a string, not an object"),
        (b"null", "is null, not an object"),
        (b"", "not JSON"),
    ],
    ids=[
        "deep-nesting",
        "invalid-utf8",
        "nan",
        "infinity",
        "overflowing-number",
        "duplicate-keys",
        "array",
        "string",
        "null",
        "empty",
    ],
)
async def test_a_hostile_json_body_is_an_invalid_response(body: bytes, says: str):
    error = await client_error(http_answer(body))
    assert error.reason == "invalid_response"
    assert says in str(error) and AKV_PATH in str(error)


async def test_a_gzip_bomb_is_cut_off_at_the_limit_it_inflates_past():
    bomb = gzip.compress(b'{"records": ["' + b"a" * (LIMIT * 64) + b'"]}')
    assert len(bomb) < LIMIT  # small on the wire: only the inflated size can trip the limit
    error = await client_error(http_answer(bomb, headers=("Content-Encoding: gzip",)))
    assert error.reason == "invalid_response"
    assert f"exceeds the {LIMIT}-byte limit" in str(error)


async def test_a_compressed_body_that_does_not_decompress_is_an_invalid_response():
    packed = gzip.compress(json.dumps({"records": [akv_record()]}).encode())
    corrupt = packed[:10] + b"\xff" * 16 + packed[26:]  # a gzip header, then no valid deflate
    error = await client_error(http_answer(corrupt, headers=("Content-Encoding: gzip",)))
    assert error.reason == "invalid_response" and "decompress" in str(error)


async def test_a_body_over_the_limit_is_an_invalid_response():
    body = json.dumps({"records": ["a" * LIMIT]}).encode()
    error = await client_error(http_answer(body))
    assert error.reason == "invalid_response" and "exceeds" in str(error)


async def test_a_connection_closed_mid_body_is_a_connect_failure():
    truncated = http_answer(b'{"records": [', length=4096)  # promises 4096 bytes, sends 13
    error = await client_error(truncated)
    assert error.reason == "connect" and "mid-answer" in str(error)


async def test_an_answer_that_is_not_http_is_an_invalid_response():
    error = await client_error(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    assert error.reason == "invalid_response" and "malformed HTTP" in str(error)


async def test_a_retry_after_of_nan_is_not_a_tight_loop():
    answers = []

    def answer(path: str) -> bytes:
        answers.append(path)
        return http_answer(b"{}", status="429 Too Many Requests", headers=("Retry-After: nan",))

    async with RawServer(answer) as server:
        client = OntapClient(cluster_config(server.url))
        with pytest.raises(OntapError) as caught:
            await client.get(AKV_PATH, asyncio.get_running_loop().time() + 10)
        await client.close()
    assert caught.value.reason == "rate_limited" and len(answers) == 1


# --- the property: random bytes and random JSON through the real poll path -------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
record_keys = st.sampled_from(
    [
        "uuid",
        "svm",
        "scope",
        "enabled",
        "state",
        "azure_reachability",
        "ekmip_reachability",
        "name",
        "code",
        "message",
        "reachable",
        "available",
        "cluster_state",
        "node",
    ]
)
# Records shaped like ONTAP's, with any value anywhere: the parser's tolerance is under test too.
ontap_like = st.recursive(
    json_values,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(record_keys, children, max_size=6)
    ),
    max_leaves=30,
)
collections = st.one_of(
    st.builds(lambda records: {"records": records}, st.lists(ontap_like, max_size=4)),
    st.builds(
        lambda record, patch: {"records": [{**record, **patch}]},
        st.just(akv_record()),
        st.dictionaries(record_keys, ontap_like, max_size=3),
    ),
    ontap_like,
)


@st.composite
def bodies(draw) -> bytes:
    """A body: random bytes, or JSON of a random shape, perhaps mangled or compressed."""
    kind = draw(st.sampled_from(["bytes", "json", "mangled-json", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "deep":  # nesting, inside a plausible answer, from harmless to decoder-breaking
        depth = draw(st.integers(1, 30_000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        return b'{"records": [' + opener * depth + b"1" + closer * depth + b"]}"
    text = json.dumps(draw(collections)).encode()
    if kind == "mangled-json":
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.binary(max_size=8)) + text[cut:]
    return text


@st.composite
def answers(draw) -> bytes:
    """A whole answer: raw bytes, or HTTP with a random status, encoding and (lying) length."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))  # not HTTP at all
    body = draw(bodies())
    headers = ["Content-Type: application/hal+json"]
    encoding = draw(st.sampled_from([None, "gzip", "deflate", "br", "x-unknown"]))
    if encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "deflate":
        body = zlib.compress(body)
    if encoding is not None:
        headers.append(f"Content-Encoding: {encoding}")
    status = draw(st.sampled_from(["200 OK", "200 OK", "200 OK", "404 Not Found", "500 Oops"]))
    length = draw(st.none() | st.integers(0, len(body) + 10))
    return http_answer(body, status=status, headers=tuple(headers), length=length)


class UnexpectedErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())


async def poll_once(identity: bytes, answer: bytes) -> tuple[str | None, list[str]]:
    """Poll a raw server once through the real Poller; return the reason and error logs."""

    def respond(path: str) -> bytes:
        return answer if path.startswith(AKV_PATH) else identity

    async with RawServer(respond) as server:
        poll = replace(PollConfig(), timeout=5.0, max_response_bytes=LIMIT)
        config = Config(None, WebConfig(), poll, (cluster_config(server.url),), None)
        poller = Poller(
            config, state=UnreachableSince(None), publish=lambda *_: None, retire=lambda _: None
        )
        handler = UnexpectedErrors()
        logging.getLogger("akv_exporter").addHandler(handler)
        try:
            (snapshot,) = (await poller.poll_all()).values()
        finally:
            logging.getLogger("akv_exporter").removeHandler(handler)
            await poller.stop()
    return (None if snapshot.up else snapshot.last.reason), handler.seen


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    identity=st.one_of(st.just(http_answer(IDENTITY.encode())), answers()),
    answer=answers(),
)
def test_any_answer_ends_a_poll_classified_never_as_an_unexpected_error(identity, answer):
    reason, errors = asyncio.run(poll_once(identity, answer))
    assert errors == []
    assert reason is None or reason in REASONS
