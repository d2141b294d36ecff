"""The shape of the code: the backend fence, the storage contract, no import cycles.

These read the source (``ast``), so they fail on the change that breaks a rule,
not later on a behaviour it happens to affect.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import doqu
from doqu.backend import Storage

ROOT = Path(doqu.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, *, type_checking: bool = False) -> Iterator[tuple[int, str]]:
    """``(line, absolute module)`` of every import in *path*, at any depth, the
    ``if TYPE_CHECKING:`` blocks left out unless *type_checking*."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent)
    skipped: set[int] = set()
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # ``from . import _encoding``
                yield node.lineno, f"{module}.{alias.name}"


def _private(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "doqu" and len(parts) > 1 and parts[1].startswith("_")


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize(
    "path", _sources("ext", "cli"), ids=lambda p: str(p.relative_to(ROOT.parent))
)
def test_backends_and_the_cli_import_only_the_public_fence(path: Path) -> None:
    """``doqu/ext/*`` and ``doqu/cli/*`` import ``doqu``, ``doqu.backend`` and their own
    modules, never a private core module (``doqu._*``)."""
    bad = [
        f"line {line}: {module}"
        for line, module in _imports(path, type_checking=True)
        if _private(module)
    ]
    assert not bad, f"{path.name} imports private core modules: {bad}"


def _storage_private_names() -> set[str]:
    names = {n for n in dir(Storage) if n.startswith("_") and not n.startswith("__")}
    with doqu.connect("memory://") as db:
        names |= {n for n in vars(db) if n.startswith("_")}
    return names


@pytest.mark.parametrize("name", ["_query.py", "_mapping.py"])
def test_query_and_mapping_view_use_public_storage_methods_only(name: str) -> None:
    """``Query`` and the mapping view run on :class:`doqu.backend.Collection`'s public
    methods: no attribute of theirs is named like an underscore member of ``Storage``."""
    private = _storage_private_names()
    tree = ast.parse((ROOT / name).read_text(encoding="utf-8"))
    bad = sorted(
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in private
    )
    assert not bad, f"{name} touches underscore members of Storage: {bad}"


def _core_modules() -> list[str]:
    paths = [p for p in ROOT.glob("*.py") if p.name != "__init__.py"]
    paths += list((ROOT / "_encoding").glob("*.py"))
    return sorted(_module_name(p) for p in paths)


def test_no_import_cycle_among_core_modules() -> None:
    """The graph of the imports core modules run (at any depth, not the type-checking
    ones) has no cycle: each module can be read without another being half-imported."""
    modules = set(_core_modules())
    graph: dict[str, set[str]] = {}
    for module in modules:
        rel = module.removeprefix("doqu.").replace(".", "/")
        path = ROOT / f"{rel}.py"
        if not path.exists():
            path = ROOT / rel / "__init__.py"
        targets = set()
        for _, imported in _imports(path):
            # ``from ._encoding import x`` names the package; its submodules count too.
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != module and imported != "doqu":
                targets.add(imported)
        graph[module] = targets

    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        seen[module] = 1
        for target in sorted(graph[module]):
            if seen.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in seen:
                visit(target, [*path, target])
        seen[module] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [module])


@pytest.mark.parametrize("module", [*_core_modules(), "doqu.backend"])
def test_each_core_module_imports_on_its_own(module: str) -> None:
    """A fresh interpreter imports the module first, before anything else of doqu."""
    done = subprocess.run(
        [sys.executable, "-c", f"import importlib; importlib.import_module({module!r})"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_capability_flag_is_read_by_the_core() -> None:
    """A flag on ``Storage`` is read by the core (or it is gone): ``stores_text``,
    ``stores_sorted``, ``max_document_bytes`` and ``accepted_options``."""
    flags = {
        name
        for name, value in vars(Storage).items()
        if not name.startswith("_") and isinstance(value, (bool, int, type(None), dict))
    }
    flags.discard("scheme")
    core = "\n".join(
        p.read_text(encoding="utf-8") for p in [*ROOT.glob("*.py"), *ROOT.glob("_encoding/*.py")]
    )
    for flag in flags:
        uses = core.count(f".{flag}")
        assert uses >= 1, f"Storage.{flag} is never read by the core"
