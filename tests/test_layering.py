"""The architecture as code: the README's Layout is the order, from the ground floor up; no module
imports one listed below it (inside a directory too), and the pure layers import neither Ray nor
anything that does I/O."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "s3dlio_ray"

PURE = (
    "_internal/model/",
    "_internal/tuning/",
    "_internal/settings/values.py",
    "_internal/settings/rules.py",
    "_internal/settings/schema.py",
    "_internal/settings/dlio.py",
    "_internal/lab/plan.py",
)
"""Pure logic: computed from its arguments, testable without a server, a disk or a cluster."""

DOES_IO = {
    "aiohttp",
    "asyncio",
    "boto3",
    "botocore",
    "h2",
    "http",
    "httpx",
    "psutil",
    "ray",
    "requests",
    "socket",
    "ssl",
    "subprocess",
    "urllib.request",
    "uvloop",
    "yaml",
    "zstandard",
}
"""Modules a pure module never imports: networking, processes, Ray, file formats read from disk."""

TOP = "__init__.py"
"""The package itself (its public API): above everything inside it."""


def layout() -> list[str]:
    """Module files, relative to the package, in the README's Layout order, lowest first."""
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Layout") :]
    entries = re.findall(r"^    s3dlio_ray/(\S+)", block, re.MULTILINE)
    return [entry for entry in entries if entry.endswith(".py")] + [TOP]


def module_file(dotted: str) -> str | None:
    """The file (relative to the package) of a dotted module name, or None if there is none."""
    parts = dotted.split(".")[1:]
    if not parts:
        return TOP
    base = PACKAGE.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return str((base / "__init__.py").relative_to(PACKAGE))
    if base.with_suffix(".py").is_file():
        return str(base.with_suffix(".py").relative_to(PACKAGE))
    return None


def public_homes() -> dict[str, str]:
    """`from s3dlio_ray import X` resolved: the module the package takes each public name from."""
    tree = ast.parse((PACKAGE / TOP).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_WHERE":
            return ast.literal_eval(node.value)
    raise AssertionError("s3dlio_ray/__init__.py has no _WHERE")


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Ids of the import nodes inside `if TYPE_CHECKING:` blocks (annotations, not imports)."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids.update(id(inner) for inner in ast.walk(node))
    return ids


def imports(source: str) -> list[str]:
    """Every module a source imports at run time (top level or inside functions), dotted; a
    `from PACKAGE import NAME` names the submodule NAME when there is one."""
    tree = ast.parse(source)
    skip = _type_checking_only(tree)
    homes = None
    found: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if node.module.startswith("s3dlio_ray") and module_file(submodule):
                    found.append(submodule)
                elif node.module == "s3dlio_ray":
                    homes = homes or public_homes()
                    home = homes.get(alias.name)
                    found.append(home or "s3dlio_ray._internal.model.version")
                else:
                    found.append(node.module)
    return found


def problems(relative: str, source: str, order: list[str]) -> list[str]:
    """What is wrong with the imports of the module at `relative` (a path in the package)."""
    mine = order.index(relative)
    pure = relative.startswith(PURE)
    found = []
    for module in imports(source):
        if module.startswith("s3dlio_ray"):
            target = module_file(module)
            if target is None:
                found.append(f"{relative} imports {module}, which does not exist")
            elif target == relative:
                continue
            elif target not in order:
                found.append(f"{relative} imports {target}, which the Layout does not list")
            elif order.index(target) > mine:
                found.append(f"{relative} imports {target}, listed above it")
            elif pure and not target.startswith(PURE):
                found.append(f"{relative} is pure but imports {target}")
        elif pure and any(module == io or module.startswith(io + ".") for io in DOES_IO):
            found.append(f"{relative} is pure but imports {module}")
    return found


def _has_code(path: Path) -> bool:
    """More than a docstring (a package marker carries no imports)."""
    body = ast.parse(path.read_text()).body
    return bool(body) and not (len(body) == 1 and isinstance(body[0], ast.Expr))


def modules() -> list[Path]:
    """Every module with code in it."""
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__main__.py" and _has_code(path)
    ]


def test_every_module_is_in_the_layout_and_imports_only_below_it():
    order = layout()
    unlisted = [
        str(path.relative_to(PACKAGE))
        for path in modules()
        if str(path.relative_to(PACKAGE)) not in order
    ]
    assert not unlisted, f"add these to the README's Layout: {unlisted}"
    found = [
        problem
        for path in modules()
        for problem in problems(str(path.relative_to(PACKAGE)), path.read_text(), order)
    ]
    assert not found, found


def test_at_most_a_dozen_modules_at_the_top_of_the_package():
    top = [path.name for path in PACKAGE.iterdir() if path.suffix == ".py" or path.is_dir()]
    assert len([name for name in top if name != "__pycache__"]) <= 12, top


@pytest.mark.parametrize(
    ("where", "source", "complaint"),
    [
        ("_internal/model/keys.py", "import ray\n", "is pure but imports ray"),
        ("_internal/model/keys.py", "from s3dlio_ray import run\n", "imports _api.py, listed"),
        (
            "_internal/tuning/parts.py",
            "def f():\n    import socket\n",
            "is pure but imports socket",
        ),
        (
            "_internal/model/stats.py",
            "from s3dlio_ray._internal.model.results import RunResult\n",
            "imports _internal/model/results.py, listed above it",
        ),
        (
            "_internal/settings/rules.py",
            "from s3dlio_ray._internal.storage.network import resolve_hosts\n",
            "listed above it",
        ),
        ("_internal/run/runner.py", "from s3dlio_ray import _api\n", "listed above it"),
    ],
)
def test_the_rules_catch_what_they_forbid(where, source, complaint):
    assert any(complaint in problem for problem in problems(where, source, layout()))


def test_annotations_only_imports_are_not_dependencies():
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from s3dlio_ray._internal.run.runner import RunContext\n"
    )
    assert problems("_internal/model/keys.py", source, layout()) == []
