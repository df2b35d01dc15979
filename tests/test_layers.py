"""The package's floors: a module imports only from its own floor or the ones below, the
modules imported at load time form no cycle, and no module grows past ~400 lines.

Read from the source with ``ast`` (nothing is imported), so a new module or a new import
is checked the moment it is written. The floors, from the ground up, are the ones the
README's architecture paragraph describes; a module missing from :data:`FLOORS` fails the
test until it is given one.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple


PACKAGE = Path(__file__).resolve().parent.parent / "otel_carbon"

#: floor of each top-level module or subpackage of otel_carbon (a subpackage's modules
#: share its floor and may import each other, unless a module of it is named here too)
FLOORS: Dict[str, int] = {
    # 0: values, names, settings, clocks, history
    "_log": 0, "_untraced": 0, "_on_import": 0, "_exit": 0, "_speedups": 0, "config": 0, "attributes": 0,
    "units_text": 0, "data": 0, "ledger": 0, "cpu_clock": 0, "task_timing": 0, "host_cpu": 0,
    "intensity.model": 0,  # the Intensity value a tick carries
    "attribution": 0,  # the one pricing function: arithmetic on ticks, which the ledger charges with
    # 1: hardware, grid intensity, CPU time across hand-offs
    "sensors": 1, "intensity": 1, "offload": 1,
    "sensor_reading": 1,  # the sensors read for one tick, and the interval they need
    # 2: the one sampler thread
    "sampler": 2, "process_sampler": 2,
    # 3: what turns ticks into figures on spans, metrics and files
    "processor": 3, "span_pricing": 3, "compiled_path": 3, "span_limits": 3, "span_listeners": 3, "metrics": 3, "record_unsampled": 3, "exporters": 3,
    # 4: the ways in: decorator/context/object, configure(), opentelemetry-instrument
    "track": 4, "provider_registry": 4, "exporter_names": 4, "setup": 4, "instrumentor": 4,
    # 5: the command line, and the pytest plugin (which reports with the CLI's code)
    "cli": 5, "__main__": 5, "pytest_plugin": 5,
}

#: the package's own __init__ is its front door: it names public objects of every floor,
#: loaded on first use (``otel_carbon.configure``), and holds only ``__version__`` itself
FRONT_DOOR = "otel_carbon"

MAX_LINES = 400


def _modules() -> Iterator[Tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    base = PACKAGE.parent / rel
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists() or any(
        base.parent.glob(base.name + ".*.so")
    ) or base.with_suffix(".c").exists()


def _imports(path: Path) -> Iterator[Tuple[str, bool]]:
    """(otel_carbon module imported, whether at load time) for each import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        at_load = id(node) in top_level
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "otel_carbon":
                    yield alias.name, at_load
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            base = node.module or ""
            if base.split(".")[0] != "otel_carbon":
                continue
            for alias in node.names:  # ``from pkg import submodule`` names the submodule
                yield (f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base), at_load


def _floor(module: str) -> int:
    parts = module.split(".")[1:]
    if not parts:
        return 0  # otel_carbon.__version__
    for n in range(len(parts), 0, -1):  # the most specific entry
        floor = FLOORS.get(".".join(parts[:n]))
        if floor is not None:
            return floor
    raise AssertionError(f"{module} has no floor: add it to FLOORS in {__file__}")


def test_every_module_has_a_floor():
    missing = sorted(
        name for name, _ in _modules() if name != FRONT_DOOR and not any(
            ".".join(name.split(".")[1:n]) in FLOORS for n in range(2, name.count(".") + 2)
        )
    )
    assert missing == []


def test_no_module_imports_from_a_higher_floor():
    upward = []
    for name, path in _modules():
        if name == FRONT_DOOR:
            continue
        for target, _ in _imports(path):
            if _floor(target) > _floor(name):
                upward.append(f"{name} (floor {_floor(name)}) imports {target} (floor {_floor(target)})")
    assert upward == []


def test_modules_imported_at_load_time_form_no_cycle():
    graph: Dict[str, Set[str]] = {
        name: {t for t, at_load in _imports(path) if at_load and t != name} for name, path in _modules()
    }
    cycles: List[str] = []
    state: Dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, trail: List[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # a package's __init__ re-exporting its submodules, which import siblings through the
    # package, is how Python packages load; only cycles between different modules count
    real = [c for c in cycles if len(set(c.split(" -> "))) > 2 or not _package_and_child(c)]
    assert real == []


def _package_and_child(cycle: str) -> bool:
    a, b = cycle.split(" -> ")[:2]
    return a.startswith(b + ".") or b.startswith(a + ".")


def test_no_module_is_longer_than_the_limit():
    long = {}
    for name, path in _modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            long[name] = lines
    assert long == {}


def test_the_checks_see_an_upward_import(tmp_path):
    """The parser finds imports in functions and ``from pkg import module`` forms."""
    source = tmp_path / "m.py"
    source.write_text(
        "from otel_carbon import config\n"
        "def f():\n"
        "    from otel_carbon.cli import report\n"
        "    import otel_carbon.setup\n",
        encoding="utf-8",
    )
    assert sorted(_imports(source)) == [
        ("otel_carbon.cli.report", False), ("otel_carbon.config", True), ("otel_carbon.setup", False)
    ]
    assert _floor("otel_carbon.cli.report") > _floor("otel_carbon.ledger")
