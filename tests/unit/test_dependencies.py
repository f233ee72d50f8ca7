"""pyproject.toml declares exactly what the code imports: every third-party module imported by
the packages maps to a declared dependency, and every declared dependency is imported
somewhere (or is on the short list below of those used another way)."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sentiment", "orchestration", "dashboard", "replay")  # what the wheel ships
TEST_CODE = ("tests", "bench", "scripts")  # the development tools

# Declared but never imported: each is used another way, which the test checks.
#   dagster-webserver: `dagster dev` (make up) serves the Dagster UI from it.
#   pytest-timeout: a pytest plugin, configured by `timeout` in [tool.pytest.ini_options].
#   dagster-postgres: the PostgreSQL-backed Dagster instance loads it by name (the
#     `storage: postgres:` of deploy/dagster/dagster.yaml).
#   ruff, mypy: make lint.   pip-tools: make lock (pip-compile).
RUNTIME_NOT_IMPORTED = {"dagster-webserver": ("Makefile", "dagster dev"),
                        "dagster-postgres": ("deploy/dagster/dagster.yaml",
                                             "storage:\n  postgres:\n")}
DEV_NOT_IMPORTED = {
    "pytest-timeout": ("pyproject.toml", "\ntimeout = "),
    "ruff": ("Makefile", "$(BIN)/ruff check"),
    "mypy": ("Makefile", "$(BIN)/mypy"),
    "pip-tools": ("Makefile", "$(BIN)/pip-compile"),
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {_norm(Requirement(t).name) for t in texts}


def _imported(dirs: tuple[str, ...]) -> dict[str, str]:
    """Top-level third-party module -> one file importing it (every import, also the ones
    inside functions and ``if TYPE_CHECKING``)."""
    files = sorted(path for d in dirs for path in (ROOT / d).rglob("*.py"))
    first_party = set(PACKAGES)
    if dirs == TEST_CODE:  # tests, benchmarks and scripts import each other's modules by name
        first_party |= {path.stem for path in files}
    found: dict[str, str] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in first_party:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@functools.cache
def _owners() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions(module: str) -> set[str]:
    return {_norm(d) for d in _owners().get(module, [])}


def test_every_module_the_packages_import_is_a_declared_dependency():
    runtime = _declared()
    for module, where in _imported(PACKAGES).items():
        dists = _distributions(module)
        assert dists, f"{module} (imported in {where}) comes from no installed distribution"
        assert dists & runtime, (
            f"{module} (imported in {where}) comes from {sorted(dists)}, which "
            "pyproject.toml's dependencies do not declare")


def test_every_module_the_tests_import_is_declared():
    declared = _declared() | _declared("dev")
    for module, where in _imported(TEST_CODE).items():
        dists = _distributions(module)
        assert dists & declared, (
            f"{module} (imported in {where}) comes from {sorted(dists)}, declared neither "
            "as a dependency nor in the dev extra")


def _check_unimported(declared: set[str], imported: set[str],
                      allowed: dict[str, tuple[str, str]]) -> None:
    unused = declared - imported
    assert unused <= set(allowed), (
        f"declared but never imported: {sorted(unused - set(allowed))}")
    for name, (file, usage) in allowed.items():
        assert name in declared, f"{name} is listed as used indirectly but not declared"
        assert name not in imported, f"{name} is imported: drop it from the indirect list"
        assert usage in (ROOT / file).read_text(), f"{name}: {file} has no {usage!r}"


def _distributions_of(modules: dict[str, str]) -> set[str]:
    return {d for module in modules for d in _distributions(module)}


def test_every_declared_dependency_is_imported_by_the_packages():
    _check_unimported(_declared(), _distributions_of(_imported(PACKAGES)),
                      RUNTIME_NOT_IMPORTED)


def test_every_dev_dependency_is_imported_by_the_tests_or_run_by_make():
    _check_unimported(_declared("dev"), _distributions_of(_imported(TEST_CODE)),
                      DEV_NOT_IMPORTED)


def test_the_scan_sees_the_imports_it_must():
    # Guards the walker itself: a module-level, a nested and a from-import.
    modules = _imported(PACKAGES)
    assert {"numpy", "pandas", "websocket", "websockets", "numba", "talib"} <= set(modules)
    assert not {"sentiment", "replay", "json", "os"} & set(modules)
