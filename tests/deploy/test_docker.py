"""The Dockerfile and .dockerignore, read without Docker: the image runs as a user without
privileges, its commands exist in the command line, and the build context holds what the
Dockerfile copies and nothing else."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass

import pytest

from tests.deploy.files import DOCKERFILE, DOCKERIGNORE, ROOT, parse_cli


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    value: str


def _instructions() -> list[Instruction]:
    """The Dockerfile's instructions (continuation lines joined, comments dropped), each with
    the name of its stage."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    assert not pending, "a continuation line ends the file"
    found: list[Instruction] = []
    stage = ""
    for line in logical:
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?: AS (\S+))?", value, re.IGNORECASE)
            assert match is not None, line
            stage = match[2] or ""
        found.append(Instruction(stage, keyword, value))
    return found


def _final(keyword: str) -> list[Instruction]:
    instructions = _instructions()
    last_stage = [i for i in instructions if i.keyword == "FROM"][-1].stage
    return [i for i in instructions if i.stage == last_stage and i.keyword == keyword]


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in _final("ENV"):
        for name, value in re.findall(r"(\w+)=(\S+)", instruction.value):
            env[name] = value
    return env


def _exec_form(keyword: str) -> list[str]:
    (instruction,) = _final(keyword)
    value = json.loads(instruction.value)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), instruction
    return value


def test_multi_stage_and_the_runtime_stage_runs_as_an_unprivileged_user() -> None:
    stages = [i.stage for i in _instructions() if i.keyword == "FROM"]
    assert stages == ["build", "runtime"]
    # The runtime stage copies only the built virtualenv from the build stage.
    copies = _final("COPY")
    assert [c.value for c in copies] == ["--from=build /opt/processgpt /opt/processgpt"]
    (user,) = _final("USER")
    uid, _, gid = user.value.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric, so runAsNonRoot can check it"
    assert gid.isdigit() and int(gid) != 0
    (run,) = _final("RUN")
    assert f"--uid {uid}" in run.value and f"--gid {gid}" in run.value
    # The manifests run the pods as the same user.
    for path in (ROOT / "deploy" / "kubernetes").glob("*.yaml"):
        for found in re.findall(r"runAsUser: (\d+)", path.read_text()):
            assert found == uid, path


def test_the_entrypoint_forwards_signals_and_the_default_command_is_the_api() -> None:
    assert _exec_form("ENTRYPOINT") == ["/usr/bin/tini", "--"]
    assert "tini" in _final("RUN")[0].value
    command = _exec_form("CMD")
    assert parse_cli(command).command == "api"
    (signal,) = _final("STOPSIGNAL")
    assert signal.value == "SIGTERM"


def test_the_commands_the_dockerfile_documents_exist() -> None:
    """The roles listed in the Dockerfile's header parse with the real command line."""
    documented = [
        line.lstrip("#").strip().split("  ")[0]
        for line in DOCKERFILE.read_text().splitlines()
        if re.match(r"#\s+processgpt \w", line)
    ]
    commands = [parse_cli(line.split()).command for line in documented]
    assert {"api", "worker", "migrate"} <= set(commands), documented
    assert "docker run --rm processgpt:0.1.0 processgpt --version" in DOCKERFILE.read_text()


def test_the_api_listens_on_all_interfaces_on_the_exposed_port() -> None:
    env = _env()
    (expose,) = _final("EXPOSE")
    assert env["PROCESSGPT_API_HOST"] == "0.0.0.0"
    assert env["PROCESSGPT_API_PORT"] == expose.value == "8000"
    assert env["PROCESSGPT_DATA_DIR"] == "/var/lib/processgpt"
    assert env["PROCESSGPT_LOG_FORMAT"] == "json"


def test_the_image_tag_in_the_deployment_files_is_the_package_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"processgpt:{version}" in DOCKERFILE.read_text()
    assert f"${{PROCESSGPT_IMAGE:-processgpt:{version}}}" in (ROOT / "compose.yaml").read_text()
    kustomization = (ROOT / "deploy" / "kubernetes" / "kustomization.yaml").read_text()
    assert f"newTag: {version}" in kustomization


# -- .dockerignore --------------------------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression over slash-separated paths (``**``
    crosses directories, ``*`` and ``?`` do not); it also matches everything below a match."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out += "/?"
                i += 1
            continue
        char = pattern[i]
        out += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        i += 1
    return re.compile(f"{out}(/.*)?")


def _in_context(path: str) -> bool:
    """Whether ``path`` reaches the build context: the last matching line decides."""
    included = True
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        if _pattern(pattern).fullmatch(path):
            included = negated
    return included


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "src/processgpt/__init__.py",
        "src/processgpt/db/migrations/0001_init.sql",
        "src/processgpt/db/queries/tasks.sql",
        "src/processgpt/api/static/console.html",
    ],
)
def test_the_build_context_holds_what_the_dockerfile_copies(path: str) -> None:
    assert (ROOT / path).exists(), path
    assert _in_context(path), path


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        ".env",
        "tests/conftest.py",
        "benchmarks/results/x.json",
        "compose.yaml",
        "src/processgpt/__pycache__/app.cpython-311.pyc",
        "src/processgpt.egg-info/PKG-INFO",
    ],
)
def test_the_build_context_leaves_out_everything_else(path: str) -> None:
    assert not _in_context(path), path


def test_every_copied_source_is_in_the_build_context() -> None:
    for copy in _instructions():
        if copy.keyword != "COPY" or copy.value.startswith("--from"):
            continue
        *sources, _dest = copy.value.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert _in_context(source.strip("/")), source
