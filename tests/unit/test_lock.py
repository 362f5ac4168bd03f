"""The lock files pin everything an install needs, so pip never resolves (or backtracks)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.lock import CHECKOV_LOCK, CHECKOV_REQUIREMENT, PROJECT_LOCK

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(lock: Path) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in lock.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert match, f"{lock.name}: not an exact pin: {line!r}"
        found[canonicalize_name(match[1])] = Version(match[2])
    return found


def closure(roots: list[Requirement]) -> dict[str, Requirement]:
    """Every requirement reachable from `roots` in this environment, extras included."""
    seen: dict[str, Requirement] = {}
    todo = [(req, frozenset(req.extras)) for req in roots]
    while todo:
        req, extras = todo.pop()
        key = f"{canonicalize_name(req.name)}{sorted(extras)}"
        if key in seen:
            continue
        seen[key] = req
        try:
            requires = distribution(req.name).requires or []
        except PackageNotFoundError:
            continue  # reported by the caller: a root that is not even installed
        for text in requires:
            child = Requirement(text)
            if child.marker is None or any(
                child.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            ):
                todo.append((child, frozenset(child.extras)))
    return seen


def project_requirements() -> list[Requirement]:
    declared = [*PYPROJECT["dependencies"], *PYPROJECT["optional-dependencies"]["test"]]
    return [Requirement(text) for text in declared]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pinned = pins(PROJECT_LOCK)
    for req in project_requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in {PROJECT_LOCK.name}: run python -m tests.lock"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"{PROJECT_LOCK.name} pins {name}=={pinned[name]}, pyproject wants {req}"
        )


def test_the_lock_covers_the_whole_dependency_closure() -> None:
    pinned = pins(PROJECT_LOCK)
    missing = {
        canonicalize_name(req.name)
        for req in closure(project_requirements()).values()
        if canonicalize_name(req.name) not in pinned
    } - {"pip", "setuptools", "wheel"}
    assert missing == set(), f"unpinned dependencies, run python -m tests.lock: {missing}"


def test_checkov_lock_pins_checkov_and_only_exact_versions() -> None:
    pinned = pins(CHECKOV_LOCK)
    assert Requirement(CHECKOV_REQUIREMENT).specifier.contains(pinned["checkov"])
    assert len(pinned) > 10  # its dependencies too: installed with --no-deps


def test_both_quick_start_installs_use_the_lock() -> None:
    readme = (ROOT / "README.md").read_text()
    installs = re.findall(r"^python3 -m venv \.venv && .*$", readme, flags=re.MULTILINE)
    assert len(installs) == 2
    assert all("pip install -c constraints.txt " in line for line in installs)
