"""One cluster's key-manager configurations, read from ONTAP: the fetch half of a poll.

A read asks GET /api/cluster when the release is not known or an hour old, then every
key-manager endpoint of the registry that the release has, and parses each answer once: an
answer byte for byte the last one is neither decoded nor parsed again. The poller
(poller.py) owns the schedule, the timeout and what a read's outcome makes of the snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from akv_exporter.ontap.answers import OntapError
from akv_exporter.ontap.client import UNCHANGED, OntapClient
from akv_exporter.ontap.cluster import ClusterIdentity, Release, release_of
from akv_exporter.ontap.key_manager_endpoint import (
    Check,
    KeyManagerEndpoint,
    KeyManagerStatus,
    ParsedRecords,
    parse_records,
)
from akv_exporter.ontap.key_manager_registry import ENDPOINTS

IDENTITY_REFRESH = 3600.0  # re-read GET /api/cluster this often (renames, upgrades)


class KeyManagerReader:
    """Reads one cluster's key managers through its client; keeps its identity and last parses.

    Mutable, and private to the cluster's entry in the poller: polls of a cluster take turns.
    """

    def __init__(self, client: OntapClient):
        self.client = client
        self.identity: ClusterIdentity | None = None
        self.identity_at = 0.0  # when the identity was read (the clock's time)
        # Per endpoint path: the last parse and what it was parsed from (answer digest, release),
        # reused while the cluster answers the same bytes, which is most polls (parsing was a
        # fifth of a poll's CPU).
        self._parsed: dict[str, tuple[tuple, ParsedRecords]] = {}

    def keep_identity(self, previous: KeyManagerReader) -> None:
        """Take over the identity ``previous`` read (the same cluster, reloaded)."""
        self.identity, self.identity_at = previous.identity, previous.identity_at

    async def read(
        self, deadline: float, now: float, last_known: Callable[[], tuple[KeyManagerStatus, ...]]
    ) -> ParsedRecords:
        """Return every configuration the cluster reports, and why any record was skipped.

        An endpoint that answers with an error NetApp documents for its GET is ``refused``, its
        kind's configurations in ``last_known()`` kept; any other failure raises OntapError.
        """
        early: dict[str, Any] = {}  # endpoint path -> records or error, asked beside /api/cluster
        if self.identity is None or now - self.identity_at > IDENTITY_REFRESH:
            early = await self._identity_and_first(deadline, now)
        release = release_of(self.identity.version)
        key_managers: list[KeyManagerStatus] = []
        skipped: list[str] = []
        refused: dict[str, Check] = {}
        for endpoint in ENDPOINTS:
            if release is not None and release < endpoint.introduced:
                continue  # a release without this endpoint; an unknown release is asked
            try:
                if endpoint.path in early:
                    records = early[endpoint.path]
                    if isinstance(records, BaseException):
                        raise records
                else:
                    records = await self.client.key_manager_records(
                        endpoint,
                        deadline,
                        release,
                        unchanged_if=self._parsed_digest(endpoint, release),
                    )
            except OntapError as error:
                if error.ontap_code not in endpoint.get_errors:
                    raise
                # The cluster answered, about this key manager: no records this time, the last
                # known stay.
                refused[endpoint.kind] = Check(False, error.ontap_code, error.ontap_message)
                key_managers += (s for s in last_known() if s.kind == endpoint.kind)
                continue
            parsed = self._parse(endpoint, records, release)
            key_managers += parsed.key_managers
            skipped += parsed.skipped
        return ParsedRecords(tuple(key_managers), tuple(skipped), refused)

    async def _identity_and_first(self, deadline: float, now: float) -> dict[str, Any]:
        """Ask GET /api/cluster and the endpoints every release has at once; store the identity.

        Return those endpoints' records (or errors) by path. Asking one after the other doubled
        a first poll's time (the fleet's first view). Until the release is known they are asked
        with ``fields=**``: every field the release has, so none is refused for being newer than
        the release. The identity's error wins, as it would if asked first. Its connection is
        not kept: one idle connection per cluster, not two, is what memory at fleet scale
        allows (each TLS connection costs tens of KiB).
        """
        client = self.client
        known = release_of(self.identity.version) if self.identity else None
        oldest = min(endpoint.introduced for endpoint in ENDPOINTS)
        endpoints = [
            e for e in ENDPOINTS if e.introduced == oldest or (known and e.introduced <= known)
        ]
        identity, *answers = await asyncio.gather(
            client.cluster_identity(deadline, close=True),
            *(
                client.key_manager_records(e, deadline, known, every_field=known is None)
                for e in endpoints
            ),
            return_exceptions=True,
        )
        if isinstance(identity, BaseException):
            raise identity
        self.identity, self.identity_at = identity, now
        return {e.path: answer for e, answer in zip(endpoints, answers, strict=True)}

    def _parsed_digest(self, endpoint: KeyManagerEndpoint, release: Release | None) -> bytes | None:
        """Return the digest of the answer last parsed for this release; None if there is none.

        The client skips decoding an answer with this digest (UNCHANGED): it would parse the
        same, and decoding was a third of a steady poll's CPU.
        """
        cached = self._parsed.get(endpoint.path)
        return cached[0][0] if cached is not None and cached[0][1] == release else None

    def _parse(
        self, endpoint: KeyManagerEndpoint, records: list | object, release: Release | None
    ) -> ParsedRecords:
        """Return the endpoint's records parsed, or the last parse when nothing changed."""
        digest = self.client.digests.get(endpoint.path)
        cached = self._parsed.get(endpoint.path)
        if digest is not None and cached is not None and cached[0] == (digest, release):
            return cached[1]
        if records is UNCHANGED:  # cannot be: UNCHANGED is the digest of the cached parse
            raise RuntimeError(f"{endpoint.path}: unchanged answer without its parse")
        parsed = parse_records(endpoint, records, release)
        if digest is not None:
            self._parsed[endpoint.path] = ((digest, release), parsed)
        return parsed
