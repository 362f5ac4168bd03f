"""The README stays true: every setting documented, CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def env_name(field: str) -> str:
    # A setting with its own variable name (DATABASE_URL, OTEL_TRACES_EXPORTER) is
    # documented under the first name it is read from.
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"ASSAY_{field.upper()}"


def test_every_setting_is_in_the_configuration_table() -> None:
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", README, flags=re.MULTILINE))
    expected = {env_name(name) for name in Settings.model_fields}
    assert expected - documented == set(), "settings missing from the README"
    assert documented - expected == set(), "README documents settings that do not exist"


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```bash\n(.*?)\n```", README, flags=re.DOTALL)
    test_line = next(b for b in blocks if "python -m tests" in b)
    assert test_line in (ROOT / ".ci" / "run").read_text().splitlines()


def test_no_readme_link_leaves_the_repository() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)[^)]*\)", README)
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    outside = [t for t in local if not (ROOT / t).resolve().is_relative_to(ROOT)]
    missing = [t for t in local if not (ROOT / t).exists()]
    assert outside == [], "README links outside the repository"
    assert missing == [], "README links files that do not exist"
    assert "../" not in README, "README names a path outside the repository"
