"""The model servers a user might pick instead of Assay, serving Assay's own model file.

Each lives in a virtualenv of its own outside the repository (`~/.cache/assay-bench/`, or
`$XDG_CACHE_HOME/assay-bench/`, as PostGraphile does), pip-installed from PyPI on first use
with pinned versions and the scikit-learn that wrote the model file (so the pickle loads), and
is started in a process group of its own that is stopped whole (MLServer's worker process
ignores SIGTERM). Where one cannot be installed, `prepare()` raises `Unavailable` with the
reason and the benchmark goes on without it.

- MLServer 1.7.1 with mlserver-sklearn (the V2 inference protocol), uvloop 0.21.0: with
  uvloop 0.23 MLServer 1.7.1 never loads its model. Once as it comes, once with adaptive
  batching (max_batch_size 32, max_batch_time 0.005).
- LitServe 0.2.19 (bench/litserve_server.py), once as it comes, once with batching (the same
  32 and 5 ms).
- BentoML 1.4.40 (bench/bentoml_service.py), as it comes, with LitServe's API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench import procs
from bench.inference import MODEL_NAME, Wire, litserve_protocol, mlserver_protocol
from bench.postgraphile import Unavailable, cache_directory

MLSERVER = "1.7.1"
UVLOOP_FOR_MLSERVER = "0.21.0"
LITSERVE = "0.2.19"
BENTOML = "1.4.40"
VERSIONS = {"mlserver": MLSERVER, "litserve": LITSERVE, "bentoml": BENTOML}
MAX_BATCH_SIZE = 32
MAX_BATCH_TIME = 0.005  # seconds
INSTALL_TIMEOUT = 1200
READY_TIMEOUT = 240.0
MARKER = "assay-bench-installed.txt"
LITSERVE_SCRIPT = Path(__file__).resolve().parent / "litserve_server.py"
BENTOML_SERVICE = Path(__file__).resolve().parent / "bentoml_service.py"

__all__ = ["PEERS", "Peer", "Unavailable", "prepare", "requirements", "start"]


@dataclass(frozen=True)
class Peer:
    key: str  # as --peers names it
    name: str  # as the table shows it
    kind: str  # "mlserver" or "litserve": which virtualenv and how it is started
    batching: bool


PEERS = {
    p.key: p
    for p in (
        Peer("mlserver", f"MLServer {MLSERVER}", "mlserver", batching=False),
        Peer("mlserver-batching", f"MLServer {MLSERVER}, adaptive batching "
             f"{MAX_BATCH_SIZE} / {MAX_BATCH_TIME * 1000:g} ms", "mlserver", batching=True),
        Peer("litserve", f"LitServe {LITSERVE}", "litserve", batching=False),
        Peer("litserve-batching", f"LitServe {LITSERVE}, batching "
             f"{MAX_BATCH_SIZE} / {MAX_BATCH_TIME * 1000:g} ms", "litserve", batching=True),
        Peer("bentoml", f"BentoML {BENTOML}", "bentoml", batching=False),
    )
}  # fmt: skip
DEFAULT_PEERS = ("mlserver", "mlserver-batching", "litserve", "bentoml")


def joblib_version() -> str:
    return metadata.version("joblib")


def requirements(kind: str, sklearn_version: str, joblib: str) -> tuple[str, ...]:
    """The pinned packages of a peer's virtualenv."""
    model = (f"scikit-learn=={sklearn_version}", f"joblib=={joblib}")
    if kind == "mlserver":
        return (f"mlserver=={MLSERVER}", f"mlserver-sklearn=={MLSERVER}",
                f"uvloop=={UVLOOP_FOR_MLSERVER}", *model)  # fmt: skip
    if kind == "litserve":
        return (f"litserve=={LITSERVE}", *model)
    if kind == "bentoml":
        return (f"bentoml=={BENTOML}", *model)
    raise ValueError(f"no such peer kind: {kind}")


def prepare(kind: str, sklearn_version: str, cache: Path | None = None) -> Path:
    """The peer's virtualenv, made and pip-installed on first use; its directory."""
    wanted = requirements(kind, sklearn_version, joblib_version())
    venv = (cache or cache_directory()) / f"{kind}-{VERSIONS[kind]}-sklearn-{sklearn_version}"
    marker = venv / MARKER
    if marker.exists() and marker.read_text().split() == list(wanted):
        return venv
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], what=f"a virtualenv for {kind}")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, *wanted], what=f"pip install {' '.join(wanted)}")
    marker.write_text("\n".join(wanted) + "\n")
    return venv


def _run(argv: list[str], *, what: str) -> None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise Unavailable(f"{what}: {error}") from error
    if done.returncode != 0:
        raise Unavailable(f"{what} failed: {(done.stderr or done.stdout)[-1500:]}")


def mlserver_settings(
    peer: Peer, model: Path, ports: Sequence[int]
) -> tuple[dict[str, object], dict[str, object]]:
    """(settings.json, <model>/model-settings.json): HTTP, gRPC and metrics ports on the
    loopback (never the defaults, which other servers here may hold)."""
    http, grpc, metrics = ports
    settings = {"host": procs.HOST, "http_port": http, "grpc_port": grpc, "metrics_port": metrics}
    model_settings: dict[str, object] = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model), "version": "1.0.0"},
    }
    if peer.batching:
        model_settings |= {"max_batch_size": MAX_BATCH_SIZE, "max_batch_time": MAX_BATCH_TIME}
    return settings, model_settings


def start(peer: Peer, venv: Path, model: Path, workdir: Path) -> tuple[procs.Child, int, Wire]:
    """Start a peer on a free port and wait until it is ready: (its process, port, wire)."""
    port = procs.free_port()
    env, cwd = procs.clean_env({}), workdir
    if peer.kind == "mlserver":
        repository = workdir / peer.key
        (repository / MODEL_NAME).mkdir(parents=True, exist_ok=True)
        ports = (port, procs.free_port(), procs.free_port())
        settings, model_settings = mlserver_settings(peer, model, ports)
        (repository / "settings.json").write_text(json.dumps(settings))
        (repository / MODEL_NAME / "model-settings.json").write_text(json.dumps(model_settings))
        argv = [str(venv / "bin" / "mlserver"), "start", str(repository)]
        wire, ready = mlserver_protocol(), f"/v2/models/{MODEL_NAME}/ready"
    elif peer.kind == "bentoml":
        cwd = workdir / peer.key
        cwd.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BENTOML_SERVICE, cwd / BENTOML_SERVICE.name)
        env |= {"ASSAY_BENCH_MODEL": str(model), "BENTOML_HOME": str(cwd / "home"),
                "BENTOML_DO_NOT_TRACK": "True"}  # fmt: skip
        argv = [str(venv / "bin" / "bentoml"), "serve", f"{BENTOML_SERVICE.stem}:Iris",
                "--host", procs.HOST, "--port", str(port)]  # fmt: skip
        wire, ready = litserve_protocol(), "/readyz"  # the same JSON as LitServe's
    else:
        argv = [str(venv / "bin" / "python"), str(LITSERVE_SCRIPT), str(model), str(port)]
        if peer.batching:
            argv += [str(MAX_BATCH_SIZE), str(MAX_BATCH_TIME)]
        wire, ready = litserve_protocol(), "/health"
    child = procs.start(peer.key, argv, env, workdir, stops_group=True, cwd=cwd)
    procs.wait_http(child, f"http://{procs.HOST}:{port}{ready}", timeout=READY_TIMEOUT)
    return child, port, wire
