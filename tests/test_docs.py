"""Every shell block of README.md and docs/*.md runs as written, from a fresh copy of the project.

A ```sh, ```bash or ```shell block is pasted by someone into a shell: this runs it, on loopback
only, with `bash -e -o pipefail` (a failing command fails the block), in a copy of the tracked
files whose `.venv` is this test's own environment. A comment line `# => TEXT` in a block says
what the block prints: TEXT must appear in its output. A block that cannot run here (a real
ONTAP, Docker, kubectl, systemctl) carries, directly above its fence,

    <!-- docs-test: skip: <reason> -->

and a marker without a reason, or anywhere else, fails the test. Blocks run at the same time,
except those that name the same loopback port (`127.0.0.1:8090`), which run one after another.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.repository import REPO

SHELL_LANGUAGES = {"sh", "bash", "shell"}
FENCE = re.compile(r"^```\s*([\w-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:(?P<body>.*?)-->\s*$")
SKIP = re.compile(r"^\s*skip:\s*(?P<reason>\S.*?)\s*$")
# A fixed loopback port a block listens on or asks: blocks sharing one must not overlap.
LOOPBACK_PORT = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\]):(\d{2,5})\b")
EXPECT = re.compile(r"^\s*# => (?P<text>.+?)\s*$", flags=re.MULTILINE)
# A block's background servers are ended with it; this bounds one block, servers included.
BLOCK_TIMEOUT_S = 180


class DocsMarkerError(ValueError):
    """A docs-test marker that names no reason, or stands where no shell block follows."""


@dataclass(frozen=True)
class ShellBlock:
    """One fenced shell block: where it is, its text, and why it is skipped (None: it runs)."""

    path: Path
    line: int  # 1-based line of the opening fence
    text: str
    skip: str | None

    @property
    def where(self) -> str:
        name = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path.name
        return f"{name}:{self.line}"


def shell_blocks(path: Path) -> list[ShellBlock]:
    """The shell blocks of one Markdown file; raises DocsMarkerError naming file and line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[ShellBlock] = []
    fence_language: str | None = None  # inside a fence: its language ("" for a bare fence)
    body: list[str] = []
    start = 0
    pending: tuple[int, str] | None = None  # a marker waiting for the fence right below it
    for number, line in enumerate(lines, start=1):
        if fence_language is not None:
            if line.strip() == "```":
                if fence_language in SHELL_LANGUAGES:
                    skip = pending[1] if pending and pending[0] == start - 1 else None
                    blocks.append(ShellBlock(path, start, "\n".join(body) + "\n", skip))
                    pending = None
                fence_language = None
            else:
                body.append(line)
            continue
        fence = FENCE.match(line)
        # A marker binds to the very next line only.
        if pending is not None and not (fence and fence.group(1) in SHELL_LANGUAGES):
            raise DocsMarkerError(
                f"{path.name}:{pending[0]}: a docs-test marker must stand directly above a"
                " ```sh, ```bash or ```shell fence"
            )
        marker = MARKER.match(line)
        if marker:
            skip = SKIP.match(marker.group("body"))
            if skip is None:
                raise DocsMarkerError(
                    f"{path.name}:{number}: a docs-test marker needs a reason:"
                    " <!-- docs-test: skip: <reason> -->"
                )
            pending = (number, skip.group("reason"))
            continue
        if fence:
            fence_language, body, start = fence.group(1), [], number
    if pending is not None:
        raise DocsMarkerError(
            f"{path.name}:{pending[0]}: a docs-test marker at the end of the file"
        )
    return blocks


def documentation() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def fresh_copy(destination: Path) -> Path:
    """The tracked files (and new, unignored ones) copied, with this test's .venv beside them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)  # old mtimes: make sees nothing to rebuild
    # `make` finds its tools in .venv; this environment is the one running the tests.
    (destination / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return destination


def block_environment(home: Path, stamp: Path) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "VIRTUAL_ENV"}
    }
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    environment["HOME"] = str(home)  # a block's state files stay in the test's directory
    # The Makefile installs into .venv when its stamp is missing; in a copy whose .venv is this
    # very environment that would re-point it at a temporary directory. A fresh stamp, given as
    # a command-line variable through MAKEFLAGS, tells make the environment is installed.
    environment["MAKEFLAGS"] = f"STAMP={stamp}"
    return environment


def end_process_group(group: int) -> None:
    """SIGTERM every process a block left running (its background servers), SIGKILL stragglers."""
    for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def run_block(block: ShellBlock, directory: Path) -> tuple[int, str]:
    """Runs one block in a fresh copy; returns its exit status and its output."""
    copy = fresh_copy(directory / "repo")
    home = directory / "home"
    home.mkdir()
    stamp = directory / "installed.stamp"
    stamp.touch()
    output = directory / "output.txt"
    with output.open("wb") as sink:  # a file, not a pipe: background servers keep theirs open
        process = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", block.text],
            cwd=copy,
            env=block_environment(home, stamp),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            status = process.wait(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            status = -1
        finally:
            end_process_group(process.pid)
            process.wait()
    return status, output.read_text(encoding="utf-8", errors="replace")


def check_block(block: ShellBlock, directory: Path) -> list[str]:
    """What is wrong with one block as run here, as lines naming file and line."""
    status, output = run_block(block, directory)
    where = block.where
    problems = []
    if status != 0:
        reason = "timed out" if status == -1 else f"exited {status}"
        problems.append(f"{where}: the block {reason}; its output:\n{output}")
    if "Traceback (most recent call last)" in output:
        problems.append(f"{where}: a traceback in the output:\n{output}")
    for expected in EXPECT.findall(block.text):
        if expected not in output:
            problems.append(f"{where}: {expected!r} not in the output:\n{output}")
    return problems


# --- the markers ------------------------------------------------------------------------------


def test_every_docs_test_marker_names_its_reason_and_stands_above_a_shell_block():
    blocks = [block for path in documentation() for block in shell_blocks(path)]
    assert blocks, "no shell block found in README.md or docs/*.md"
    assert [b for b in blocks if b.skip is None], "every shell block is skipped"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "marker",
    [
        "<!-- docs-test: skip -->",
        "<!-- docs-test: skip: -->",
        "<!-- docs-test: skip:    -->",
        "<!-- docs-test: -->",
    ],
)
def test_a_skip_without_a_reason_is_refused(tmp_path, marker):
    page = write(tmp_path, f"Text.\n\n{marker}\n```sh\nfalse\n```\n")
    with pytest.raises(DocsMarkerError, match=r"page\.md:3: a docs-test marker needs a reason"):
        shell_blocks(page)


def test_a_marker_not_directly_above_a_shell_fence_is_refused(tmp_path):
    page = write(tmp_path, "<!-- docs-test: skip: no ONTAP here -->\n\n```sh\nfalse\n```\n")
    with pytest.raises(DocsMarkerError, match=r"page\.md:1: .* directly above"):
        shell_blocks(page)
    page = write(tmp_path, "<!-- docs-test: skip: no ONTAP here -->\n```yaml\na: 1\n```\n")
    with pytest.raises(DocsMarkerError, match=r"page\.md:1: .* directly above"):
        shell_blocks(page)


def test_a_skip_with_a_reason_skips_only_its_own_block(tmp_path):
    page = write(
        tmp_path,
        "<!-- docs-test: skip: needs a Docker engine -->\n```sh\ndocker ps\n```\n\n"
        "```bash\necho two\n```\n\n```\nnot a shell block\n```\n\n```console\n$ no\n```\n",
    )
    assert [(b.line, b.text, b.skip) for b in shell_blocks(page)] == [
        (2, "docker ps\n", "needs a Docker engine"),
        (6, "echo two\n", None),
    ]


# --- the blocks -------------------------------------------------------------------------------


def test_a_failing_block_and_a_missing_promised_output_are_reported(tmp_path):
    page = write(
        tmp_path, "```sh\necho hello\n# => goodbye\n```\n\n```sh\nfalse\necho never\n```\n"
    )
    first, second = shell_blocks(page)
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    assert [p.split("\n")[0] for p in check_block(first, tmp_path / "1")] == [
        f"{first.where}: 'goodbye' not in the output:"
    ]
    assert [p.split("\n")[0] for p in check_block(second, tmp_path / "2")] == [
        f"{second.where}: the block exited 1; its output:"
    ]


def by_shared_ports(blocks: list[ShellBlock]) -> list[list[ShellBlock]]:
    """Return the blocks in chains: blocks naming a common loopback port share one chain."""
    chains: list[tuple[set[str], list[ShellBlock]]] = []
    for block in blocks:
        ports = set(LOOPBACK_PORT.findall(block.text))
        joined = [chain for chain in chains if chain[0] & ports]
        merged: tuple[set[str], list[ShellBlock]] = (ports, [])
        for chain in joined:
            merged[0].update(chain[0])
            merged[1].extend(chain[1])
            chains.remove(chain)
        merged[1].append(block)
        chains.append(merged)
    return [sorted(chain, key=lambda b: (str(b.path), b.line)) for _, chain in chains]


def test_blocks_naming_the_same_port_run_in_one_chain(tmp_path):
    page = write(
        tmp_path,
        "```sh\ncurl 127.0.0.1:8090/a\n```\n```sh\necho 127.0.0.1:18080\n```\n"
        "```sh\ncurl localhost:8090 127.0.0.1:18081\n```\n```sh\necho none\n```\n"
        "```sh\necho 127.0.0.1:18081\n```\n",
    )
    chains = by_shared_ports(shell_blocks(page))
    assert sorted([b.line for b in chain] for chain in chains) == [[1, 7, 13], [4], [10]]


@pytest.mark.slow
def test_every_shell_block_runs_as_written(tmp_path):
    blocks = [b for page in documentation() for b in shell_blocks(page) if b.skip is None]

    def run_chain(index: int, chain: list[ShellBlock]) -> list[str]:
        problems = []
        for number, block in enumerate(chain):
            directory = tmp_path / f"{index}-{number}"
            directory.mkdir()
            problems += check_block(block, directory)
        return problems

    chains = by_shared_ports(blocks)
    # Threads: each block is a shell and its servers, waited for; the work is in those processes.
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run_chain, range(len(chains)), chains))
    problems = [problem for result in results for problem in result]
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_make_demo_serves_the_status_page(tmp_path):
    # The quick start's first command, which serves until Ctrl-C (hence skipped above), on a free
    # port: DEMO_FLAGS is how the Makefile passes flags on to `akv-exporter demo`.
    copy = fresh_copy(tmp_path / "repo")
    (tmp_path / "home").mkdir()
    stamp = tmp_path / "installed.stamp"
    stamp.touch()
    output = tmp_path / "output.txt"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            ["make", "demo", "DEMO_FLAGS=--listen 127.0.0.1:0"],
            cwd=copy,
            env=block_environment(tmp_path / "home", stamp),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + BLOCK_TIMEOUT_S
            url = None
            while url is None and process.poll() is None and time.monotonic() < deadline:
                found = re.search(
                    r"status page:\s+(http://\S+)", output.read_text(errors="replace")
                )
                url = found.group(1) if found else None
                time.sleep(0.1)
            assert url, (
                f"make demo printed no status page URL:\n{output.read_text(errors='replace')}"
            )
            with urllib.request.urlopen(url, timeout=30) as response:
                assert response.status == 200
                assert b"akv-exporter" in response.read()
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as the demo says
            process.wait(timeout=60)  # make reports the interrupt in its own exit status
        finally:
            end_process_group(process.pid)
            process.wait()
    assert "Traceback" not in output.read_text(errors="replace")


# What a user reads names no internal work item: no "issue 10", no "spec section 7", no "(QA)",
# and no file outside the repository a clone lacks ("../shared/...", "the project's workspace").
INTERNAL_REFERENCE = re.compile(
    r"\bissue #?\d+|\bspec(?:ification)?(?:'s)? (?:section|alert)|\bthe spec\b|\(QA\)"
    r"|\.\./shared/|project's workspace",
    flags=re.IGNORECASE,
)


@pytest.mark.parametrize(
    "page", [REPO / "CHANGELOG.md", *documentation()], ids=lambda path: path.name
)
def test_the_documentation_speaks_a_users_words_not_internal_references(page):
    found = [
        f"{page.name}:{number}: {match.group()!r}"
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1)
        for match in INTERNAL_REFERENCE.finditer(line)
    ]
    assert not found, found
