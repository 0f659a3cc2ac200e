"""The code's layout rules, checked from source with ``ast`` (nothing is imported).

- no import cycle among ``engine/`` modules (a package's ``__init__`` counts as a module);
- ``engine/`` never imports Ray or the Ray glue (``actors``, ``serve_apps``, ``omnialign``);
- no private name (``_x``) is imported from another module of the project;
- no module is longer than 600 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "actors", "serve_apps", "omnialign", "benchmarks")
MAX_LINES = 600
RAY_GLUE = ("ray", "actors", "serve_apps", "omnialign")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(*packages: str) -> dict[str, Path]:
    return {_module_name(p): p for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(path: Path, name: str) -> list[tuple[str, list[str], int]]:
    """Every import in the file as (absolute module, imported names, line), wherever it stands.

    Imports inside functions and ``if TYPE_CHECKING:`` count too: a lazy or type-only import that
    closes a cycle still ties the two modules together.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                out.extend((a.name, [], child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                mod = child.module or ""
                if child.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    mod = ".".join(base + ([mod] if mod else []))
                out.append((mod, [a.name for a in child.names], child.lineno))
            visit(child)

    visit(tree)
    return out


def _targets(mod: str, names: list[str], known: dict[str, Path], importer: str = "") -> set[str]:
    """The project modules an import statement loads: the module, imported submodules, and the
    packages above them that the importer is not already inside (importing ``a.b.c`` runs
    ``a/__init__`` and ``a/b/__init__`` first)."""
    hits = {mod} if mod in known else set()
    hits |= {f"{mod}.{n}" for n in names if f"{mod}.{n}" in known}
    inside = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 2)}
    for hit in list(hits):
        parts = hit.split(".")
        hits |= {p for i in range(1, len(parts)) if (p := ".".join(parts[:i])) in known and p not in inside}
    return hits


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (cyc := dfs(v)):
                return cyc
        stack.pop()
        state[u] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cyc := dfs(node)):
            return cyc
    return None


def engine_import_graph() -> dict[str, set[str]]:
    known = _modules("engine")
    graph: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        for mod, names, _ in _imports(path, name):
            graph[name] |= _targets(mod, names, known, name) - {name}
    return graph


def test_engine_has_no_import_cycle() -> None:
    cycle = _find_cycle(engine_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cycle_through_a_package_init_counts() -> None:
    # engine/x/__init__ imports engine.y.m, whose package engine/y/__init__ imports engine.x.n:
    # importing engine.y.m runs engine/y/__init__ first, so x and y need each other.
    known = {m: Path() for m in ("engine", "engine.x", "engine.x.n", "engine.y", "engine.y.m")}
    assert _targets("engine.y.m", [], known, "engine.x") == {"engine.y.m", "engine.y"}
    assert _targets("engine.x.n", [], known, "engine.x.other") == {"engine.x.n"}  # already inside engine.x


def test_cycle_finder_finds_a_cycle() -> None:
    # The checker itself must be able to fail.
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_engine_does_not_import_ray_or_glue() -> None:
    bad = []
    for name, path in _modules("engine").items():
        for mod, _, line in _imports(path, name):
            if mod.split(".")[0] in RAY_GLUE:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_no_private_names_imported_across_modules() -> None:
    known = _modules(*PACKAGES, "tests")
    bad = []
    for name, path in known.items():
        for mod, names, line in _imports(path, name):
            if mod.split(".")[0] not in PACKAGES + ("tests",):
                continue
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {n} from {mod}")
            if any(part.startswith("_") and not part.startswith("__") for part in mod.split(".")):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports private module {mod}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES + ("tests",))
def test_modules_are_at_most_600_lines(package: str) -> None:
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for p in (ROOT / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, ", ".join(long)


def test_every_engine_stage_documents_itself() -> None:
    # Each stage package says what it does, what flows in and out, and its public names.
    missing = []
    for init in sorted((ROOT / "engine").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if not all(word in doc for word in ("In:", "Out:", "Public names:")):
            missing.append(str(init.relative_to(ROOT)))
    assert not missing, "stage docstrings lack In:/Out:/Public names: " + ", ".join(missing)


def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_stage_docstrings_name_only_names_that_exist() -> None:
    """Every ``module: name, ...`` line under "Public names:" of a stage names real things."""
    import re

    stale = []
    for init in sorted((ROOT / "engine").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        block = doc.split("Public names:", 1)[1].split("\n\n", 1)[0] if "Public names:" in doc else ""
        entries = re.findall(r"^    (\S[^:\n]*):((?:.*)(?:\n {8,}.*)*)", block, flags=re.M)
        for modules, listed in entries:
            paths = [init.parent / (m.strip().replace(".", "/") + ".py") for m in modules.split("/")]
            have = set().union(*(_top_level_names(p) for p in paths if p.exists()))
            for name in re.sub(r"\([^)]*\)", "", listed).replace("\n", " ").split(","):
                name = name.strip()
                if name and name not in have:
                    stale.append(f"{init.relative_to(ROOT)}: {modules.strip()}.{name}")
    assert not stale, "stage docstrings name what is not there: " + ", ".join(stale)
