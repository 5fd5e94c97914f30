"""The one HTTP client wrapper for ONTAP: auth, TLS, pagination, error bodies, retries, limits.

Every failure leaves this module as an ``OntapError`` (ontap/answers.py) whose ``reason`` is one
of the reasons of ``akv_exporter_cluster_poll_errors_total`` and whose message is one line
naming the endpoint.
Secrets never enter a message: credentials travel only in the Authorization header or the TLS
client certificate.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
from aiohttp.http_exceptions import ContentEncodingError
from yarl import URL

from akv_exporter import __version__
from akv_exporter.config import ClusterConfig, SecretSource
from akv_exporter.ontap.answers import (
    INVALID_FIELD,
    OntapError,
    decode_json,
    json_type,
    one_line,
    ontap_error_detail,
    retry_after_seconds,
)
from akv_exporter.ontap.cluster import (
    CLUSTER_FIELDS,
    CLUSTER_PATH,
    ClusterIdentity,
    Release,
    parse_identity,
)
from akv_exporter.ontap.key_manager_endpoint import KeyManagerEndpoint
from akv_exporter.ontap.tls import tls_context
from akv_exporter.secrets import HARVEST_SCRIPT, Login, SecretError, resolve_login

log = logging.getLogger(__name__)

USER_AGENT = f"akv-exporter/{__version__}"


class _Unchanged:
    """What get() and key_manager_records() return for an answer byte for byte the caller's last."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()
# NetApp's REST reference: `fields=**` is "all fields including those requiring additional
# server processing" (the advanced ones), whatever the release has: no field can be refused.
EVERY_FIELD = "**"
CONNECT_TIMEOUT = 10.0
_MAX_RETRY_AFTER = 60.0
_COMMAND_MARGIN = 0.25  # seconds kept from a poll's budget to report a hung credentials_command


class OntapClient:
    """Talks to one ONTAP cluster over one keep-alive session with a small connection cap."""

    def __init__(
        self,
        cluster: ClusterConfig,
        *,
        connections: int = 2,
        max_response_bytes: int = 32 * 1024 * 1024,
        max_pages: int = 1000,
        max_records: int = 1000,
        requests: Counter[str] | None = None,
        user_agent: str = USER_AGENT,
    ):
        self.cluster = cluster
        self.user_agent = user_agent
        self.base_url = cluster.url
        # Answers by HTTP status, for akv_exporter_ontap_requests_total.
        self.requests: Counter[str] = requests if requests is not None else Counter()
        # Endpoints asked and not answered; a cancelled request stays listed so that a poll's
        # timeout can name what never answered, even with two requests running at once.
        self._asking: list[str] = []
        self._resolving: str | None = None  # the credentials source whose command is running
        self._connections = connections
        self._max_response_bytes = max_response_bytes
        self._max_pages = max_pages
        self._max_records = max_records
        self._session: aiohttp.ClientSession | None = None
        self._login: Login | None = None
        # Per endpoint path: the release whose fields this cluster refused (error 262197).
        self._refused_release: dict[str, Release | None] = {}
        self._login_lock = asyncio.Lock()
        # The deadline of the poll whose credentials resolution failed, and why: the poll's other
        # requests take that failure instead of running the command again.
        self._login_failure: tuple[float, str] | None = None
        self._urls: dict[str, URL] = {}  # path and query -> checked absolute URL
        # Per endpoint path, a digest of its last answer (every page): the poller parses the
        # records again only when it changed, which in steady state it rarely does.
        self.digests: dict[str, bytes] = {}
        self._links: dict[tuple, str] = {}  # a collection's parameters -> its first link
        self._origin = urlsplit(self.base_url)

    def _ssl(self) -> ssl.SSLContext | bool:
        if self._origin.scheme != "https":
            return False
        cluster = self.cluster
        return tls_context(cluster.tls, cluster.client_cert_file, cluster.client_key_file)

    async def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            try:
                ssl_context = self._ssl()
            except (OSError, ssl.SSLError) as error:
                raise OntapError("tls", self.base_url, f"TLS setup failed: {error}") from None
            connector = aiohttp.TCPConnector(
                limit=self._connections, ssl=ssl_context, keepalive_timeout=120
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # The poll's own deadline bounds the whole request; this bounds the handshake.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
                headers={
                    "User-Agent": self.user_agent,
                    "X-Dot-Client-App": USER_AGENT,
                    "Accept": "application/hal+json, application/json",
                },
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _auth(self, refresh: bool, deadline: float) -> dict[str, str]:
        """Return the Authorization header for basic auth; none for certificate auth."""
        source: SecretSource | None = self.cluster.secret
        # A Harvest credentials_script may name the user itself.
        if source is None or (self.cluster.username is None and source.kind != HARVEST_SCRIPT):
            return {}  # certificate authentication
        now = asyncio.get_running_loop().time()
        login = self._login
        if login is None or refresh or login.expired(now):
            # A first poll asks several endpoints at once: one credentials command for all of
            # them, its failure included. Run again for each request (all share the poll's
            # deadline), a failing command multiplied its time within the one budget.
            async with self._login_lock:
                failed = self._login_failure
                if failed is not None and failed[0] == deadline:
                    raise OntapError("auth", self.base_url, failed[1])
                if self._login is login:  # not renewed by another request meanwhile
                    try:
                        # The command gets what is left of the poll's budget (after any wait for
                        # the lock), less a moment to say so: a hung command is then reported as
                        # such, not as ONTAP not answering.
                        remaining = deadline - asyncio.get_running_loop().time() - _COMMAND_MARGIN
                        self._resolving = source.kind  # left set if cancelled: it never answered
                        self._login = await resolve_login(
                            self.cluster.username, source, max(remaining, _COMMAND_MARGIN)
                        )
                        self._resolving, self._login_failure = None, None
                    except SecretError as error:
                        self._resolving, self._login_failure = None, (deadline, str(error))
                        raise OntapError("auth", self.base_url, str(error)) from None
        return {"Authorization": self._login.authorization}

    def _url(self, path_and_query: str) -> URL:
        url = self._urls.get(path_and_query)
        if url is not None:
            return url
        text = urljoin(self.base_url + "/", path_and_query)
        parts = urlsplit(text)
        if (parts.scheme, parts.netloc) != (self._origin.scheme, self._origin.netloc):
            # Never follow a link that would carry our credentials to another host.
            raise OntapError(
                "invalid_response", path_and_query, "link points at another host; refused"
            )
        if len(self._urls) >= 8:  # the same few URLs every poll; next links may vary
            self._urls.clear()
        url = self._urls[path_and_query] = URL(text)
        return url

    @property
    def in_flight(self) -> str | None:
        """Return what was asked and not answered (cancelled included): a credentials command
        still running, else the endpoints; None when nothing is outstanding."""
        return self._resolving or ", ".join(dict.fromkeys(self._asking)) or None

    def unanswered(self) -> str | None:
        """Return ``in_flight`` and forget it: what a timed-out poll never heard back from."""
        where = self.in_flight
        self._asking.clear()
        self._resolving = None
        return where

    async def get(
        self,
        path_and_query: str,
        deadline: float,
        *,
        close: bool = False,
        digest: hashlib.blake2b | None = None,
        unchanged_if: bytes | None = None,
    ) -> Any:
        """Return the decoded JSON object answering a GET; OntapError when it cannot.

        Honours Retry-After on 429/503 while the wait fits before ``deadline`` (loop time), and
        re-reads the credentials once on a 401 when they come from a command, file or variable.
        ``close`` asks for the connection to be closed after the answer instead of kept alive;
        ``digest`` is updated with the answer's body. When the digest then equals
        ``unchanged_if``, the body is not decoded and ``UNCHANGED`` is returned.
        """
        endpoint = path_and_query.split("?", 1)[0]
        self._asking.append(endpoint)
        try:
            answer = await self._get(
                path_and_query, endpoint, deadline, close, digest, unchanged_if
            )
        except asyncio.CancelledError:
            raise  # left in _asking: the poll's timeout message names it
        except BaseException:
            self._asking.remove(endpoint)
            raise
        self._asking.remove(endpoint)
        return answer

    async def _get(
        self,
        path_and_query: str,
        endpoint: str,
        deadline: float,
        close: bool,
        digest: hashlib.blake2b | None,
        unchanged_if: bytes | None,
    ) -> Any:
        refreshed = False
        while True:
            session = await self._open()
            headers = await self._auth(refresh=False, deadline=deadline)
            if close:
                headers["Connection"] = "close"
            try:
                async with session.get(self._url(path_and_query), headers=headers) as response:
                    status = response.status
                    self.requests[str(status)] += 1
                    body = await self._read(response, endpoint)
                    answer_headers = response.headers
            except TimeoutError:
                raise OntapError("timeout", endpoint, "timed out") from None
            except aiohttp.ClientConnectorCertificateError as error:
                raise OntapError(
                    "tls", endpoint, f"certificate not trusted: {error.certificate_error}"
                ) from None
            except aiohttp.ClientSSLError as error:
                raise OntapError("tls", endpoint, f"TLS error: {one_line(error)}") from None
            except aiohttp.ClientConnectorError as error:
                raise OntapError(
                    "connect", endpoint, f"cannot connect: {one_line(error.strerror or error)}"
                ) from None
            except aiohttp.ClientPayloadError as error:
                if isinstance(error.__cause__, ContentEncodingError):
                    raise OntapError(
                        "invalid_response", endpoint, f"answer cannot be decompressed: {error}"
                    ) from None
                raise OntapError(
                    "connect", endpoint, f"connection dropped mid-answer: {one_line(error)}"
                ) from None
            except aiohttp.ServerDisconnectedError as error:
                raise OntapError(
                    "connect", endpoint, f"connection dropped: {one_line(error)}"
                ) from None
            except aiohttp.ClientResponseError as error:
                # The status line or headers are not HTTP (aiohttp's parser refused them).
                raise OntapError(
                    "invalid_response", endpoint, f"malformed HTTP answer: {one_line(error, 120)}"
                ) from None
            except aiohttp.ClientError as error:
                raise OntapError("connect", endpoint, one_line(error)) from None

            if status == 401:
                source = self.cluster.secret
                if not refreshed and source is not None and source.kind != "password":
                    refreshed = True
                    await self._auth(refresh=True, deadline=deadline)
                    continue
                raise OntapError("auth", endpoint, "HTTP 401: credentials rejected", status)
            wait = retry_after_seconds(answer_headers) if status in (429, 503) else None
            if wait is not None:
                remaining = deadline - asyncio.get_running_loop().time()
                if wait <= min(remaining - 0.5, _MAX_RETRY_AFTER):
                    await asyncio.sleep(wait)
                    continue
            if status >= 400:
                # A Retry-After longer than this poll may wait: the schedule honours it.
                raise self._http_error(status, endpoint, body, wait)
            if digest is not None:
                digest.update(body)
                if unchanged_if is not None and digest.digest() == unchanged_if:
                    return UNCHANGED  # the very bytes already decoded and parsed: not again
            return self._decode(body, endpoint, response.content_type)

    async def _read(self, response: aiohttp.ClientResponse, endpoint: str) -> bytes:
        limit = self._max_response_bytes
        if response.content_length is not None and response.content_length > limit:
            raise OntapError(
                "invalid_response",
                endpoint,
                f"answer of {response.content_length} bytes exceeds the {limit}-byte limit",
                response.status,
            )
        if response.content_length is not None and "Content-Encoding" not in response.headers:
            return await response.read()  # its length is known and within the limit
        chunks, size = [], 0
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise OntapError(
                    "invalid_response",
                    endpoint,
                    f"answer exceeds the {limit}-byte limit",
                    response.status,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _decode(self, body: bytes, endpoint: str, content_type: str) -> Mapping[str, Any]:
        """Return the answer's JSON object; every ONTAP answer is one."""
        try:
            value = decode_json(body)
        except ValueError as error:
            raise OntapError(
                "invalid_response",
                endpoint,
                f"answer is not JSON ({content_type or 'no content type'}): {one_line(error, 80)}",
                200,
            ) from None
        if not isinstance(value, dict):
            raise OntapError(
                "invalid_response", endpoint, f"answer is {json_type(value)}, not an object", 200
            )
        return value

    def _http_error(
        self, status: int, endpoint: str, body: bytes, retry_after: float | None = None
    ) -> OntapError:
        try:
            decoded = decode_json(body) if body else None
        except ValueError:
            decoded = None
        code, message = ontap_error_detail(decoded)
        reason = {403: "forbidden", 429: "rate_limited", 503: "rate_limited"}.get(status)
        if reason is None:
            reason = "ontap_error" if code is not None else "http"
        detail = f"HTTP {status}"
        if code is not None:
            detail += f", ONTAP error {code}"
        if message:
            detail += f": {message}"
        if retry_after is not None:
            detail += f" (Retry-After {retry_after:g}s)"
        error = OntapError(reason, endpoint, detail, status)
        error.ontap_code = code
        error.ontap_message = message or ""
        error.retry_after = retry_after
        return error

    async def get_collection(
        self,
        path: str,
        params: Mapping[str, str],
        deadline: float,
        digest: hashlib.blake2b | None = None,
        unchanged_if: bytes | None = None,
    ) -> Any:
        """Return every record of a collection, following ``_links.next`` exactly as given.

        ``params`` are the query's own; the page size (poll.max_records) and ONTAP's
        return_timeout (what is left before ``deadline``, at most 120 s) are added here.
        ``UNCHANGED`` instead when the first page's digest equals ``unchanged_if``: the digest
        of an earlier answer of one page, byte for byte this one (so no next page either).
        """
        remaining = max(1, int(deadline - asyncio.get_running_loop().time()))
        params = {
            **params,
            "max_records": str(self._max_records),
            "return_timeout": str(min(120, remaining)),
        }
        key = (path, *params.items())
        link: str | None = self._links.get(key)
        if link is None:
            if len(self._links) >= 8:  # the same few collections every poll
                self._links.clear()
            link = self._links[key] = f"{path}?{urlencode(params, safe=',*')}"
        seen: set[str] = set()
        records: list[Any] = []
        for page in range(self._max_pages):
            if link is None:
                return records
            seen.add(link)
            body = await self.get(
                link, deadline, digest=digest, unchanged_if=None if page else unchanged_if
            )
            if body is UNCHANGED:
                return UNCHANGED
            if not isinstance(body, Mapping) or not isinstance(body.get("records", []), list):
                raise OntapError("invalid_response", path, "answer has no records list", 200)
            records.extend(body.get("records", []))
            link = _next_link(body)
            if link in seen:
                return records  # a server that repeats itself: what we have is all there is
        raise OntapError(
            "invalid_response", path, f"more than {self._max_pages} pages; giving up", 200
        )

    async def cluster_identity(self, deadline: float, *, close: bool = False) -> ClusterIdentity:
        """Return the cluster's name, uuid and release from GET /api/cluster.

        ``close``: the connection is not kept alive (for a request asked beside another that
        will be, so that the cluster holds one idle connection of ours, not two).
        """
        body = await self.get(f"{CLUSTER_PATH}?fields={CLUSTER_FIELDS}", deadline, close=close)
        identity = parse_identity(body)
        if identity is None:
            raise OntapError("invalid_response", CLUSTER_PATH, "answer has no cluster name", 200)
        return identity

    async def key_manager_records(
        self,
        endpoint: KeyManagerEndpoint,
        deadline: float,
        release: Release | None = None,
        *,
        every_field: bool = False,
        unchanged_if: bytes | None = None,
    ) -> Any:
        """Return every record of a key-manager endpoint, with the fields the release has.

        The fields asked for are those the cluster's release has (from GET /api/cluster). Should
        the cluster refuse one anyway (error 262197), the endpoint's fallback set is asked
        instead, and again for as long as the cluster stays on that release. ``every_field``
        asks ``fields=**`` (every field the release has, advanced ones included), for when the
        release is not known yet. ``digests[endpoint.path]`` identifies the answer; when it
        equals ``unchanged_if`` (the digest of an answer the caller still holds parsed), the
        answer is not decoded and ``UNCHANGED`` is returned instead of records.
        """
        # Never ** where it returns what must not be asked (key-managers' key backup).
        every_field = every_field and endpoint.every_field_allowed
        fields = EVERY_FIELD if every_field else endpoint.fields(release)
        if release is not None and release == self._refused_release.get(endpoint.path):
            fields = endpoint.fallback_fields
        params = {"fields": fields}
        self.digests.pop(endpoint.path, None)
        digest = hashlib.blake2b(digest_size=16)
        try:
            records = await self.get_collection(
                endpoint.path, params, deadline, digest, unchanged_if
            )
        except OntapError as error:
            if error.ontap_code != INVALID_FIELD or fields == endpoint.fallback_fields:
                raise
            log.warning(
                "cluster %s: %s refused a field of ONTAP %s (%s); asking for the 9.8 fields",
                self.cluster.key,
                endpoint.path,
                "of unknown release" if release is None else f"{release[0]}.{release[1]}",
                error,
            )
            self._refused_release[endpoint.path] = release
            params["fields"] = endpoint.fallback_fields
            digest = hashlib.blake2b(digest_size=16)
            records = await self.get_collection(endpoint.path, params, deadline, digest)
        self.digests[endpoint.path] = digest.digest()
        return records


def _next_link(body: Mapping) -> str | None:
    links = body.get("_links")
    if not isinstance(links, Mapping):
        return None
    nxt = links.get("next")
    href = nxt.get("href") if isinstance(nxt, Mapping) else None
    return href if isinstance(href, str) and href else None
