"""The package's layers (docs/architecture.md): no module imports one of a higher layer.

The layer list is read from the architecture page, so the page and the code cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sesemi"


def layers() -> dict[str, int]:
    """Top-level module or package -> its layer number, from the architecture page's list."""
    section = (ROOT / "docs" / "architecture.md").read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    found = {}
    for number, names in re.findall(r"^(\d+)\. (.+)$", section, flags=re.MULTILINE):
        for name in re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", names)):
            found[name] = int(number)
    return found


def lazy_user_aliases(tree: ast.Module) -> set[ast.AST]:
    """The imports inside a package `__init__`'s module-level `__getattr__`: names resolved for a
    user who reads them, which no module of the package depends on."""
    return {
        node
        for function in tree.body
        if isinstance(function, ast.FunctionDef) and function.name == "__getattr__"
        for node in ast.walk(function)
    }


def imported_sesemi_modules(path: Path) -> list[tuple[int, str]]:
    """(line, top-level sesemi module) of each import that runs, lazy ones included; imports under
    `if TYPE_CHECKING:` never run and are left out."""
    tree = ast.parse(path.read_text())
    skipped = lazy_user_aliases(tree) if path.name == "__init__.py" else set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped.update(ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name.split(".")[1]) for name in names if name.startswith("sesemi.")]
    return found


def test_every_module_has_a_layer():
    known = layers()
    modules = {path.stem for path in PACKAGE.glob("*.py")} | {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    modules.discard("__init__")
    assert sorted(modules - set(known)) == [], "add these to the Layers list of docs/architecture.md"


def test_no_module_imports_a_higher_layer():
    known = layers()
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if parts == ("__init__.py",):
            continue  # the package root re-exports the public API
        owner = parts[0].removesuffix(".py")
        if owner not in known:
            continue  # test_every_module_has_a_layer names it
        for line, imported in imported_sesemi_modules(path):
            if known.get(imported, 0) > known[owner]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({owner}, layer {known[owner]}) imports {imported} (layer {known[imported]})")
    assert upward == []
