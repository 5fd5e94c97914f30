"""When each unreachable streak began (a key service, a KMIP key server), kept across restarts.

ONTAP's own count towards its volume-offline point (ekmip.akv.volOffline) does not restart when
the exporter does, so neither may ours. The file is small JSON, one table per provider's streak
field (``azure_unreachable_since``, ``google_unreachable_since``, ...; cluster -> key -> time),
written atomically (temporary file + rename) only when a streak starts or ends. A file written
before there were other providers holds just AKV's table, and reads as it always did.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from akv_exporter.ontap.key_manager_registry import PROVIDERS

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
# Every provider's streak field, in registry order (kinds that share one share its table).
FIELDS = tuple(dict.fromkeys(provider.streak_field for provider in PROVIDERS))


class UnreachableSince:
    """Streak start times by field, cluster and key (a configuration's uuid, a key server's
    ``streak_key``), mirrored to a file."""

    def __init__(
        self,
        path: Path | None,
        on_write_error: Callable[[int], None] | None = None,
        *,
        read_only: bool = False,
    ):
        self.path = path
        # `check` reads the streaks the exporter keeps and never writes them: it runs beside the
        # exporter, often in the same read-only pod, where no file may be written at all.
        self.read_only = read_only
        # field -> cluster -> key -> Unix time
        self._since: dict[str, dict[str, dict[str, float]]] = {name: {} for name in FIELDS}
        self._write_failed = False
        self.write_errors = 0  # failed writes since start
        self._on_write_error = on_write_error

    def load(self) -> None:
        """Read the file; a missing one is empty, a corrupt or unreadable one is ignored with a
        warning (a directory the exporter's user cannot enter included: there even asking
        whether the file exists fails)."""
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if FIELDS[0] not in data:  # every file written has the first provider's table
                raise KeyError(FIELDS[0])
            self._since = {
                name: {
                    str(cluster): {str(key): float(ts) for key, ts in entries.items()}
                    for cluster, entries in data.get(name, {}).items()
                }
                for name in FIELDS
            }
        except FileNotFoundError:
            return  # nothing kept yet
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
            log.warning("state file %s is unreadable (%s); starting afresh", self.path, error)
            self._since = {name: {} for name in FIELDS}

    def of(self, cluster: str) -> Mapping[str, float]:
        """Return every streak of ``cluster``, by key (keys are unique across fields)."""
        return {k: ts for table in self._since.values() for k, ts in table.get(cluster, {}).items()}

    def update(self, cluster: str, since: Mapping[str, Mapping[str, float]]) -> None:
        """Replace ``cluster``'s streaks with ``since`` (field -> key -> time), writing the file
        if anything changed."""
        changed = False
        for name, table in self._since.items():
            wanted = dict(since.get(name, {}))
            if wanted == table.get(cluster, {}):
                continue
            changed = True
            if wanted:
                table[cluster] = wanted
            else:
                table.pop(cluster, None)
        if changed:
            self._write()

    def keep_only(self, clusters: Iterable[str]) -> None:
        """Forget the clusters that are no longer configured."""
        wanted = set(clusters)
        if any(set(table) - wanted for table in self._since.values()):
            self._since = {
                name: {c: s for c, s in table.items() if c in wanted}
                for name, table in self._since.items()
            }
            self._write()

    def move(self, path: Path | None) -> None:
        """Keep the streaks in ``path`` from now on (a reload changed state_file)."""
        self.path = path
        self._write_failed = False
        self._write()

    def _write(self) -> None:
        if self.path is None or self.read_only:
            return
        payload = json.dumps({"version": FORMAT_VERSION, **self._since}, sort_keys=True, indent=1)
        temporary = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".state-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            self._write_failed = False
        except OSError as error:
            if temporary is not None:  # a half-written temporary file must not pile up
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
            if not self._write_failed:  # once per failure streak, not once per poll
                log.warning(
                    "cannot write state file %s: %s; polling goes on, streaks are kept in memory",
                    self.path,
                    error,
                )
            self._write_failed = True
            self.write_errors += 1
            if self._on_write_error is not None:
                self._on_write_error(self.write_errors)
