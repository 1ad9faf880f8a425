"""No module imports one above it: the README's Layout is the order, from the ground floor up."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

PACKAGE = ROOT / "s3dlio_ray"


def layers() -> list[str]:
    """Module or package paths, as the README's Layout lists them, lowest first."""
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Layout") :]
    return re.findall(r"^    s3dlio_ray/(\S+?)(?:\.py)?/?\s", block, re.MULTILINE)


def layer_of(module: str, order: list[str]) -> int:
    path = module.removeprefix("s3dlio_ray.").replace(".", "/")
    for index, entry in enumerate(order):
        if path == entry or path.startswith(entry + "/"):
            return index
    raise AssertionError(f"{module} is not in the README's Layout")


def imported(path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("s3dlio_ray")
        ):
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(a.name for a in node.names if a.name.startswith("s3dlio_ray"))
    return modules


def test_no_module_imports_one_above_it():
    order = layers()
    assert "results" in order and "cli" in order
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = "s3dlio_ray." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        if (name.endswith("__init__") and path.parent == PACKAGE) or name.endswith("__main__"):
            continue
        name = name.removesuffix(".__init__")
        mine = layer_of(name, order)
        for module in imported(path):
            if module == "s3dlio_ray" or module.startswith(name):
                continue
            if layer_of(module, order) > mine:
                upward.append(f"{name} imports {module}")
    assert not upward, upward
