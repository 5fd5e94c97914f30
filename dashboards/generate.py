"""Render the dashboards to dashboards/*.json: `python -m dashboards.generate [--check]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dashboards import cluster, exporter, fleet, keymanagers
from dashboards.panels import render

OUTPUT_DIR = Path(__file__).resolve().parent
BOARDS = {
    "akv-fleet.json": fleet.dashboard,
    "akv-cluster.json": cluster.dashboard,
    "akv-exporter.json": exporter.dashboard,
    "key-managers.json": keymanagers.dashboard,
}


def render_all() -> dict[str, str]:
    """File name -> dashboard JSON text: sorted keys, 2-space indent, trailing newline."""
    return {
        name: json.dumps(render(build()), indent=2, sort_keys=True) + "\n"
        for name, build in BOARDS.items()
    }


def write_all(directory: Path) -> list[Path]:
    """Write every dashboard into `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(directory: Path) -> list[str]:
    """Names of dashboard files in `directory` that differ from a fresh render, or are missing."""
    return [
        name
        for name, text in render_all().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.generate", description=__doc__)
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR, help="default: %(default)s")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the committed JSON differs from a fresh render",
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.output)
        for name in stale:
            print(f"{args.output / name}: out of date, run `make dashboards`", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all(args.output):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
