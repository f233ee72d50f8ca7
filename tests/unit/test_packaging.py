"""The package data: every SQL file the store loads ships in the wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_sql_file_is_package_data():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["sentiment"]
    package = ROOT / "sentiment"
    shipped = {path for pattern in globs for path in package.glob(pattern)}
    files = set((package / "sql").rglob("*.sql"))
    assert files and files <= shipped, sorted(str(f.relative_to(package))
                                              for f in files - shipped)
    assert any(f.parent.name == "postgresql" for f in files)  # the dialect variants too
