"""When each AKV configuration's Azure-unreachable streak began, kept across exporter restarts.

ONTAP's own count towards its volume-offline point (ekmip.akv.volOffline) does not restart when
the exporter does, so neither may ours. The file
is small JSON, written atomically (temporary file + rename) only when a streak starts or ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


class UnreachableSince:
    """Streak start times by cluster and configuration uuid, mirrored to a file."""

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
        self._since: dict[str, dict[str, float]] = {}
        self._write_failed = False
        self.write_errors = 0  # failed writes since start
        self._on_write_error = on_write_error

    def load(self) -> None:
        """Read the file; a missing one is empty, a corrupt one is ignored with a warning."""
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            table = data["azure_unreachable_since"]
            self._since = {
                str(cluster): {str(uuid): float(ts) for uuid, ts in entries.items()}
                for cluster, entries in table.items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
            log.warning("state file %s is unreadable (%s); starting afresh", self.path, error)
            self._since = {}

    def of(self, cluster: str) -> Mapping[str, float]:
        return self._since.get(cluster, {})

    def update(self, cluster: str, since: Mapping[str, float]) -> None:
        """Replace ``cluster``'s streaks with ``since``, writing the file if anything changed."""
        if dict(since) == self._since.get(cluster, {}):
            return
        if since:
            self._since[cluster] = dict(since)
        else:
            self._since.pop(cluster, None)
        self._write()

    def keep_only(self, clusters: Iterable[str]) -> None:
        """Forget the clusters that are no longer configured."""
        wanted = set(clusters)
        if set(self._since) - wanted:
            self._since = {c: s for c, s in self._since.items() if c in wanted}
            self._write()

    def move(self, path: Path | None) -> None:
        """Keep the streaks in ``path`` from now on (a reload changed state_file)."""
        self.path = path
        self._write_failed = False
        self._write()

    def _write(self) -> None:
        if self.path is None or self.read_only:
            return
        payload = json.dumps(
            {"version": FORMAT_VERSION, "azure_unreachable_since": self._since},
            sort_keys=True,
            indent=1,
        )
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
