"""requirements.lock pins, with hashes, every dependency pyproject.toml declares (a
dependency bump without a new lock fails here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, tuple[str, int]]:
    """name -> (pinned version, number of hashes)."""
    text = (ROOT / "requirements.lock").read_text()
    out = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9_.\-]+)==([^\s\\;]+)", block)
        if m:
            out[_norm(m.group(1))] = (m.group(2), block.count("--hash=sha256:"))
    return out


def test_every_declared_dependency_is_pinned_with_hashes_in_a_version_it_allows():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    locked = _locked()
    for text in declared:
        req = Requirement(text)
        name = _norm(req.name)
        assert name in locked, f"{req.name} is declared but not in requirements.lock"
        version, hashes = locked[name]
        assert hashes >= 1, f"{req.name} is pinned without a hash"
        assert SpecifierSet(str(req.specifier)).contains(version, prereleases=True), (
            f"{req.name}=={version} in requirements.lock is outside {req.specifier}")


def test_the_lock_names_no_index_or_path_of_a_machine():
    text = (ROOT / "requirements.lock").read_text()
    assert "--index-url" not in text and "--find-links" not in text
    assert "file://" not in text
