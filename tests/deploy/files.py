"""The deployment files as the tests read them: the Dockerfile, compose.yaml and the Kubernetes
manifests of ``deploy/kubernetes``, and what they must agree with in the package (its command
line, the worker's shutdown timings)."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path
from typing import Any

import yaml

from processgpt.cli.parser import build_parser
from processgpt.runtime.worker import WorkerOptions

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
KUBERNETES = ROOT / "deploy" / "kubernetes"

Doc = dict[str, Any]


def load_yaml(path: Path) -> list[Doc]:
    """The documents of a YAML file (empty ones left out)."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def kustomization() -> Doc:
    (doc,) = load_yaml(KUBERNETES / "kustomization.yaml")
    return doc


def manifests(*, examples: bool = False) -> list[tuple[str, Doc]]:
    """``(file name, document)`` of every resource the kustomization lists, in order; with
    ``examples``, also those of the ``*.example.yaml`` files beside it."""
    names = list(kustomization()["resources"])
    if examples:
        names += sorted(p.name for p in KUBERNETES.glob("*.example.yaml"))
    return [(name, doc) for name in names for doc in load_yaml(KUBERNETES / name)]


def find(docs: list[tuple[str, Doc]], kind: str, name: str) -> Doc:
    found = [d for _, d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def parse_cli(argv: list[str]) -> argparse.Namespace:
    """``argv`` (``["processgpt", …]``) parsed by the real command line; fails the test with
    argparse's message when the command or an option does not exist."""
    assert argv[:1] == ["processgpt"], argv
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        raise AssertionError(f"{argv} is not a processgpt command: {stderr.getvalue()}") from exc


def agents_of(argv: list[str]) -> list[str]:
    """The agents a ``processgpt worker`` command serves."""
    args = parse_cli(argv)
    assert args.command == "worker", argv
    return list(args.agent or [])


def worker_stop_seconds(shutdown_grace: float, agents: int) -> float:
    """The longest a worker takes to exit after SIGTERM (runtime/worker.py ``_shutdown``):
    the grace period, the hand-backs of the runs still going (their cancel timeout + 5 s),
    the helpers (cancel timeout), each agent's executor closing (cancel timeout each), and
    5 s for the writer's last batch and closing the pools."""
    cancel = WorkerOptions().cancel_timeout
    return shutdown_grace + (cancel + 5) + cancel + cancel * agents + 5


def duration_seconds(value: str) -> float:
    """A compose duration (``60s``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, value
    return sum(float(n) * units[u] for n, u in parts)
