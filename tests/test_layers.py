"""The layers keep their order: a module imports only its own layer and those below it, and the job core,
the record logic and the spec import no Ray, no vLLM and no torch, not even inside a function.

    record < spec < core < engine        (engine may also import toy)
    lake: record, spec, core (PyIceberg's edge)   views: record, spec, core, lake
    cluster: all but cli                 cli: all
    toy: nothing of batchgen but itself

Every import counts: module-level and function-level, `import x` and `from x import y`, `from batchgen
import core` and `from batchgen.core import prefix`, and relative imports. Each folder of `batchgen/` must
have a rule here, so a new folder is placed in the order when it is made.
"""

from __future__ import annotations

import ast
from pathlib import Path

import batchgen

PACKAGE = Path(batchgen.__file__).parent

# What each layer may import of batchgen (its own layer always). None: the package root, which may import
# every layer (it resolves its public names lazily).
ALLOWED: dict[str | None, set[str]] = {
    "record": set(),
    "spec": {"record"},
    "core": {"record", "spec"},
    "engine": {"record", "spec", "core", "toy"},
    "views": {"record", "spec", "core", "lake"},
    "lake": {"record", "spec", "core"},
    "cluster": {"record", "spec", "core", "engine", "views", "lake", "toy"},
    "cli": {"record", "spec", "core", "engine", "views", "lake", "cluster", "toy"},
    "toy": set(),
    None: {"record", "spec", "core", "engine", "views", "lake", "cluster", "cli", "toy"},
}
NO_HEAVY = {"record", "spec", "core", "lake"}  # plain code, covered by the fast tests
HEAVY = {"ray", "vllm", "torch"}


def _layer_of(module: str) -> str | None:
    """`batchgen.core.prefix` -> "core"; the package root (`batchgen`) -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _imports(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) of every import in `source` (at any depth), with `from x import y` giving
    `x.y` when x is the package root (`from batchgen import core` imports the layer `core`) and relative
    imports resolved against `module`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base == "batchgen":
                found += [(node.lineno, f"batchgen.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return sorted(found)


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Why `source`, the text of `module` (`batchgen.core.prefix`), breaks the layers: one line per import
    that reaches a higher (or unplaced) layer, or Ray, vLLM or torch from a layer that must stay plain."""
    layer = _layer_of(module)
    found = []
    for line, imported in _imports(source, module, is_package):
        top = imported.split(".")[0]
        if top == "batchgen":
            target = _layer_of(imported)
            if target is not None and target != layer and target not in ALLOWED.get(layer, set()):
                found.append(f"{module}:{line} imports {imported}: layer {layer} may not import {target}")
        elif top in HEAVY and layer in NO_HEAVY:
            found.append(f"{module}:{line} imports {imported}: {layer} imports no Ray, vLLM or torch")
    return found


def _modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append((".".join(parts), path))
    return modules


def test_every_folder_has_a_layer_rule():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(ALLOWED), f"place these folders in tests/test_layers.py's ALLOWED: {folders - set(ALLOWED)}"
    stale = {layer for layer in ALLOWED if layer is not None} - folders
    assert not stale, f"rules for folders that do not exist: {stale}"


def test_no_layer_imports_a_higher_one_and_the_core_imports_no_ray_or_vllm():
    modules = _modules()
    assert len(modules) > 30  # the walk found the package
    found = [v for module, path in modules
             for v in violations(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")]
    assert not found, "layer rules broken (see batchgen/*/__init__.py):\n" + "\n".join(found)


def test_the_checker_reports_upward_and_heavy_imports():
    source = '''
import json
from batchgen.record.rows import OUTPUT_SCHEMA
from batchgen.core import blocks


def lazily():
    from batchgen.cluster import pipeline
    import vllm
    from ray.data import Dataset


def relatively():
    from ..engine import replica
    from . import blocks
'''
    found = violations(source, "batchgen.core.example")
    assert found == [
        "batchgen.core.example:8 imports batchgen.cluster: layer core may not import cluster",
        "batchgen.core.example:9 imports vllm: core imports no Ray, vLLM or torch",
        "batchgen.core.example:10 imports ray.data: core imports no Ray, vLLM or torch",
        "batchgen.core.example:14 imports batchgen.engine: layer core may not import engine",
    ]
    assert violations("from batchgen import cluster\n", "batchgen.views.survey") == [
        "batchgen.views.survey:1 imports batchgen.cluster: layer views may not import cluster"]
    assert violations("from batchgen.engine import models\nimport ray\n", "batchgen.cluster.pipeline") == []
    assert violations("from batchgen.record import rows\n", "batchgen.toy.build") == [
        "batchgen.toy.build:1 imports batchgen.record: layer toy may not import record"]
