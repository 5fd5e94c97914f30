"""One cluster's key-manager configurations, read from ONTAP: the fetch half of a poll.

A read asks GET /api/cluster when the release is not known or an hour old, then the key-manager
endpoints the cluster has (its key stores say which, read every inventory interval; before
9.10.1, or while key-stores cannot be read, every endpoint the release has once per interval,
then those that had configurations), never one newer than the release, and parses each answer
once: an answer byte for byte the last one is neither decoded nor parsed again. The poller
(poller.py) owns the schedule, the timeout and what a read's outcome makes of the snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from akv_exporter.ontap import key_stores
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
from akv_exporter.ontap.key_stores import KeyStore

log = logging.getLogger(__name__)
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
        # Which key-manager endpoints (paths) the cluster has something behind, learned on each
        # discovery round (every inventory interval); None: not learned yet.
        self.present: frozenset[str] | None = None
        self.discovery_due = 0.0  # the clock's time of the next discovery round
        self.key_stores: tuple[KeyStore, ...] | None = None  # the last read; None: not readable

    def keep_identity(self, previous: KeyManagerReader) -> None:
        """Take over the identity ``previous`` read (the same cluster, reloaded)."""
        self.identity, self.identity_at = previous.identity, previous.identity_at

    async def read(
        self,
        deadline: float,
        now: float,
        last_known: Callable[[], tuple[KeyManagerStatus, ...]],
        inventory_interval: float = 300.0,
    ) -> ParsedRecords:
        """Return every configuration the cluster reports, and why any record was skipped.

        An endpoint that answers with an error NetApp documents for its GET is ``refused``, its
        kind's configurations in ``last_known()`` kept; any other failure raises OntapError.
        """
        early: dict[str, Any] = {}  # endpoint path -> records or error, asked beside /api/cluster
        if self.identity is None or now - self.identity_at > IDENTITY_REFRESH:
            early = await self._identity_and_first(deadline, now)
        release = release_of(self.identity.version)
        discovering = now >= self.discovery_due or self.present is None
        if discovering:
            self.discovery_due = now + inventory_interval
        asked = await self._endpoints_to_ask(deadline, release, discovering)
        blind = discovering and self.key_stores is None  # no key stores to say what is there
        key_managers: list[KeyManagerStatus] = []
        skipped: list[str] = []
        refused: dict[str, Check] = {}
        answered: set[str] = set()  # paths with configurations, or a documented GET error
        for endpoint in ENDPOINTS:
            if endpoint.path not in early and endpoint not in asked:
                continue  # newer than the release, or nothing behind it (key stores say)
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
                if endpoint not in asked:
                    continue  # asked beside /api/cluster, before the key stores said it is not
                missing = error.reason == "forbidden" or error.status == 404
                if blind and missing and endpoint is not ENDPOINTS[0]:
                    # Asked without key stores to say whether the cluster has this key manager:
                    # a role made before the exporter asked this endpoint (it always asked the
                    # first provider's), or a release without it, has none to watch here. Not a
                    # failed poll; asked again on the next discovery round.
                    log.info("cluster %s: not asked further: %s", self.client.cluster.key, error)
                    continue
                if error.ontap_code not in endpoint.get_errors:
                    raise
                # The cluster answered, about this key manager: no records this time, the last
                # known stay.
                refused[endpoint.kind] = Check(False, error.ontap_code, error.ontap_message)
                kinds = endpoint.key_store_types
                key_managers += (s for s in last_known() if s.kind in kinds)
                answered.add(endpoint.path)
                continue
            parsed = self._parse(endpoint, records, release)
            key_managers += parsed.key_managers
            skipped += parsed.skipped
            if parsed.key_managers:
                answered.add(endpoint.path)
        if blind:
            # No key stores to say: the endpoints that had something are the cluster's.
            self.present = frozenset(answered)
        return ParsedRecords(tuple(key_managers), tuple(skipped), refused)

    async def _endpoints_to_ask(
        self, deadline: float, release: Release | None, discovering: bool
    ) -> list[KeyManagerEndpoint]:
        """Return the key-manager endpoints to ask in this read.

        Never one newer than the release. On a discovery round: the endpoints of the key-manager
        types the cluster's key stores list (9.10.1+), else (an older release, or key-stores
        cannot be read) every endpoint the release has; in between, those the last round found
        something behind. So an AKV-only cluster costs ONTAP one request more per inventory
        interval than AKV alone: GET key-stores.
        """
        available = [e for e in ENDPOINTS if release is None or e.introduced <= release]
        if not discovering and self.present is not None:
            return [e for e in available if e.path in self.present]
        self.key_stores = await self._key_stores(deadline, release)
        if self.key_stores is None:
            return available
        types = key_stores.kinds(self.key_stores)
        self.present = frozenset(e.path for e in available if e.key_store_types & types)
        return [e for e in available if e.path in self.present]

    async def _key_stores(
        self, deadline: float, release: Release | None
    ) -> tuple[KeyStore, ...] | None:
        """Return the cluster's key stores; None before 9.10.1 or when ONTAP does not give them
        (an older or unknown release, a role without the endpoint): never a failed read."""
        if release is None or release < key_stores.INTRODUCED:
            return None
        params = {"fields": key_stores.fields_query(release)}
        try:
            records = await self.client.get_collection(key_stores.PATH, params, deadline)
        except OntapError as error:
            if self.key_stores is not None or self.present is None:  # once per streak
                log.warning(
                    "cluster %s: %s cannot be read (%s); asking every key-manager endpoint of "
                    "its release once per inventory interval",
                    self.client.cluster.key,
                    key_stores.PATH,
                    error,
                )
            return None
        return key_stores.parse_key_stores(records if isinstance(records, list) else [])

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
        if known is None:
            # The endpoints every release has that may be asked fields=** (never key-managers:
            # its ** holds the Onboard Key Manager's key backup).
            allowed = [e for e in ENDPOINTS if e.every_field_allowed]
            oldest = min(e.introduced for e in allowed)
            endpoints = [e for e in allowed if e.introduced == oldest]
        else:
            endpoints = [
                e
                for e in ENDPOINTS
                if e.introduced <= known and (self.present is None or e.path in self.present)
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
