"""The package's shape: no import cycles, imports only run down the layers, surfaces use the
front door. Read from the source (every import statement, also those inside functions and under
TYPE_CHECKING), so a lazy import cannot hide a circle. docs/architecture.md explains the layers.
"""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatch
from functools import cache
from pathlib import Path

import pytest

from tests.helpers.repository import REPO

PACKAGE = REPO / "akv_exporter"
# The simulator is its own distribution beside the exporter (simulator/pyproject.toml).
SIMULATOR_PACKAGE = REPO / "simulator" / "ontap_simulator"
OURS = ("akv_exporter", "ontap_simulator")

# Bottom first. A module may import its own layer and the layers below it, never one above.
# A new module goes into the layer that matches what it knows (docs/architecture.md).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "akv_exporter",
            "akv_exporter.labels",
            "akv_exporter.logs",
            "akv_exporter.listen",
            "akv_exporter.certificates",
            "akv_exporter.limits",
            "akv_exporter.heap",
            "akv_exporter.json_schema",
        ),
    ),
    (
        "configuration",
        (
            "akv_exporter.config",
            "akv_exporter.config.*",
            "akv_exporter.secrets",
            "akv_exporter.harvest",
            "akv_exporter.inventory",
            "akv_exporter.shard",
        ),
    ),
    ("ONTAP client and parsers", ("akv_exporter.ontap", "akv_exporter.ontap.*")),
    ("snapshots", ("akv_exporter.snapshot", "akv_exporter.unreachable_streaks")),
    ("poller", ("akv_exporter.poller", "akv_exporter.blast_radius", "akv_exporter.state_changes")),
    (
        "exposition and assessment",
        (
            "akv_exporter.metrics",
            "akv_exporter.metrics.*",
            "akv_exporter.assessment",
            "akv_exporter.assessment_problems",
            "akv_exporter.fleet_assessment",
            "akv_exporter.assessment_json",
        ),
    ),
    ("front door", ("akv_exporter.exporter",)),
    (
        "surfaces",
        (
            "akv_exporter.web",
            "akv_exporter.web.*",
            "akv_exporter.check",
            "akv_exporter.healthcheck",
        ),
    ),
    ("process", ("akv_exporter.service", "akv_exporter.demo")),
    ("command line", ("akv_exporter.cli",)),
)
# Within a layer, steps of one job in order: a module imports only those before it. The catalogue
# is declarations (made from the providers', docs/metrics.md is generated from it), the
# renderers read it, the exposition caches what they render; the states and views come first,
# then the problem lines, the assessment that fills both, and the JSON that renders it.
STEPS: tuple[tuple[str, ...], ...] = (
    (
        "akv_exporter.metrics.catalogue",
        "akv_exporter.metrics.render",
        "akv_exporter.metrics.exposition",
    ),
    (
        "akv_exporter.assessment",
        "akv_exporter.assessment_problems",
        "akv_exporter.fleet_assessment",
        "akv_exporter.assessment_json",
    ),
    # The values, reading YAML, the file's models, their errors in the file's words, the web
    # configuration file, loading (checks and building), the schema.
    (
        "akv_exporter.config.values",
        "akv_exporter.config.yamlfile",
        "akv_exporter.config.model",
        "akv_exporter.config.problems",
        "akv_exporter.config.web_file",
        "akv_exporter.config.load",
        "akv_exporter.config.schema",
    ),
)
# The simulator sits beside the flow: it may use the base layer and itself; only the demo and
# the command line may start it.
SIMULATOR = ("ontap_simulator", "ontap_simulator.*")
SIMULATOR_USERS = ("akv_exporter.demo", "akv_exporter.cli")
# Surfaces ask the Exporter; the poller and the exposition are its parts.
SURFACES = ("akv_exporter.web.*", "akv_exporter.check", "akv_exporter.service")


def module_name(path: Path) -> str:
    root = SIMULATOR_PACKAGE.parent if path.is_relative_to(SIMULATOR_PACKAGE) else REPO
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_of(name: str) -> Path:
    """Return the folder of package ``name``'s modules (for a package, the package itself)."""
    top, *rest = name.split(".")
    root = SIMULATOR_PACKAGE if top == "ontap_simulator" else PACKAGE
    return root.joinpath(*rest)


@cache  # parsed once per session: GRAPH and several tests read every module
def modules() -> dict[str, ast.Module]:
    return {
        module_name(path): ast.parse(path.read_text(encoding="utf-8"), str(path))
        for package in (PACKAGE, SIMULATOR_PACKAGE)
        for path in sorted(package.rglob("*.py"))
    }


def imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Return our modules (exporter and simulator) ``name`` imports, anywhere in its source."""
    package = name if (source_of(name) / "__init__.py").exists() else ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = (package or name.rpartition(".")[0]).split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from akv_exporter.web import probe` imports the module akv_exporter.web.probe.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t.split(".")[0] in OURS)
    found.discard(name)
    return found


def layer_of(name: str) -> int:
    for rank, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch(name, pattern) for pattern in patterns):
            return rank
    raise LookupError(name)


def is_simulator(name: str) -> bool:
    return any(fnmatch(name, pattern) for pattern in SIMULATOR)


GRAPH = {name: imports(name, tree, set(modules())) for name, tree in modules().items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle as a list of modules (first repeated last), or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_lazy_circle():
    # The finder itself, on the shape the package once had (cli <-> demo through a lazy import).
    assert find_cycle({"cli": {"demo"}, "demo": {"cli"}}) == ["cli", "demo", "cli"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_module_has_a_layer():
    unplaced = [n for n in GRAPH if not is_simulator(n) and not _placed(n)]
    assert not unplaced, f"add these modules to a layer in {__file__} (and docs): {unplaced}"


def _placed(name: str) -> bool:
    try:
        layer_of(name)
    except LookupError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if not is_simulator(n)))
def test_imports_run_down_the_layers(name):
    upward = [
        f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for target in sorted(GRAPH[name])
        if not is_simulator(target) and layer_of(target) > layer_of(name)
    ]
    assert not upward, "; ".join(upward)


@pytest.mark.parametrize("steps", STEPS, ids=lambda steps: steps[0])
def test_steps_of_one_job_import_only_earlier_steps(steps):
    backward = [
        f"{name} imports {target}, a later step"
        for rank, name in enumerate(steps)
        for target in sorted(GRAPH[name])
        if target in steps[rank + 1 :]
    ]
    assert not backward, "; ".join(backward)


# The key-manager providers' declarations (plain data in their own modules, beside each parser):
# the catalogue makes each kind's families from them.
PROVIDER_DECLARATIONS = (
    "akv_exporter.ontap.key_manager_provider",
    "akv_exporter.ontap.key_manager_registry",
)


def test_the_metric_catalogue_needs_nothing_but_the_base_layer_and_the_providers():
    # Declarations only: what docs/metrics.md is generated from.
    above = sorted(
        t
        for t in GRAPH["akv_exporter.metrics.catalogue"]
        if layer_of(t) > 0 and t not in PROVIDER_DECLARATIONS
    )
    assert not above, above


LINE_LIMIT = 500


def long_modules_explained() -> dict[str, str]:
    """Return module path -> why it is longer, from docs/architecture.md's own table."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.partition("## Modules over 500 lines")[2].partition("\n## ")[0]
    return dict(re.findall(r"^\| `([^`]+\.py)` \| (.*\S) \|$", section, re.M))


def test_no_module_over_500_lines_without_a_reason_in_the_architecture_page():
    explained = long_modules_explained()
    unexplained = sorted(
        f"{path.relative_to(REPO)} ({lines} lines)"
        for package in (PACKAGE, SIMULATOR_PACKAGE)
        for path in package.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > LINE_LIMIT
        and str(path.relative_to(REPO)) not in explained
    )
    assert not unexplained, (
        "split these by job, or say why in docs/architecture.md (Modules over 500 lines): "
        f"{unexplained}"
    )


def test_only_the_demo_and_the_command_line_reach_the_simulator():
    users = sorted(
        name
        for name, targets in GRAPH.items()
        if not is_simulator(name) and any(is_simulator(t) for t in targets)
    )
    assert set(users) <= set(SIMULATOR_USERS), users


def test_the_simulator_uses_only_the_base_layer():
    outside = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if is_simulator(name)
        for target in targets
        if not is_simulator(target) and layer_of(target) > 0
    )
    assert not outside, outside


def test_surfaces_ask_the_front_door_not_its_parts():
    reaching = sorted(
        f"{name}: .{node.attr} (line {node.lineno})"
        for name, tree in modules().items()
        if any(fnmatch(name, pattern) for pattern in SURFACES)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("poller", "exposition")
    )
    assert not reaching, reaching


def third_party(tree: ast.Module) -> set[str]:
    """Return the top-level names of the packages ``tree`` imports that are not ours."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - set(OURS)


def reachable(*roots: str) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(GRAPH.get(name, ()))
    return seen


def test_the_exporter_needs_no_cryptography():
    # `cryptography` is the simulator's: `run` and `check` must not reach a module using it.
    trees = modules()
    users = {name for name, tree in trees.items() if "cryptography" in third_party(tree)}
    assert users and all(is_simulator(name) for name in users), users
    exporter = reachable("akv_exporter.service", "akv_exporter.check")
    assert "akv_exporter.exporter" in exporter
    assert not exporter & users, sorted(exporter & users)


def test_only_the_registry_knows_the_key_manager_modules():
    # The seam: everything reads KeyManagerStatus; only ontap/key_manager_registry.py lists the
    # endpoint modules (ontap/akv.py now), so a new key manager touches no reader.
    importers = sorted(
        name for name, targets in GRAPH.items() if "akv_exporter.ontap.akv" in targets
    )
    assert importers == ["akv_exporter.ontap.key_manager_registry"], importers


def helper_topics() -> set[str]:
    return {path.stem for path in (REPO / "tests" / "helpers").glob("*.py")} - {"__init__"}


def test_tests_share_helpers_through_the_topic_modules():
    # Fixtures come from conftest.py by name; everything else from one topic module of
    # tests/helpers/ (`from tests.helpers.loopback import wait_until`), one style everywhere.
    allowed = {f"tests.helpers.{topic}" for topic in helper_topics()}
    # `import test_web`, `from conftest import ...` (rootdir on sys.path) count as ours too.
    ours = {path.stem for path in (REPO / "tests").glob("*.py")}
    stray = []
    paths = [*(REPO / "tests").glob("*.py"), *(REPO / "tests" / "helpers").glob("*.py")]
    for path in sorted(paths):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if not node.level else ["(relative import)"]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                ours_too = name.partition(".")[0] in ("tests", "(relative import)")
                if (ours_too or name in ours) and name not in allowed:
                    stray.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert not stray, stray


def test_the_helpers_package_lists_its_topics_and_exports_nothing():
    package = REPO / "tests" / "helpers" / "__init__.py"
    tree = ast.parse(package.read_text(encoding="utf-8"))
    assert len(tree.body) == 1 and ast.get_docstring(tree), "only a docstring, no names"
    unlisted = [t for t in sorted(helper_topics()) if f"``{t}``" not in ast.get_docstring(tree)]
    assert not unlisted, f"describe these modules in {package}'s docstring: {unlisted}"
