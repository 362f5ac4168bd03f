"""The README stays a short entry point whose links lead somewhere; the deploy guide
documents every context key the CDK app reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_readme_is_under_15_kb() -> None:
    assert len(README.read_bytes()) < 15 * 1024


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in anchors(resolved.read_text()), f"{page.name}: {target}"


def test_readme_links_the_moved_guides() -> None:
    links = set(LINK.findall(README.read_text()))
    for guide in ("docs/deploy.md", "docs/performance.md", "docs/architecture.md"):
        assert guide in links, guide


def test_deploy_guide_documents_every_context_key() -> None:
    config = (ROOT / "infra" / "assay_infra" / "config.py").read_text()
    keys = set(re.findall(r'get\("([A-Za-z]+)"\)', config))
    assert "certificateArn" in keys
    guide = (ROOT / "docs" / "deploy.md").read_text()
    first_cells = re.findall(r"^\| (`[^|]+`) \|", guide, flags=re.MULTILINE)
    documented = {key for cell in first_cells for key in re.findall(r"`(\w+)`", cell)}
    assert keys - documented == set()
