"""Deploy the Flower app over gRPC on loopback: a SuperLink, N SuperNodes, `flwr run`, measure.

Secure by default: a private CA made at start-up (pki.py) signs the SuperLink's certificate; the
SuperNodes and `flwr` trust only that CA (TLS), and the SuperLink runs with
``--enable-supernode-auth``: each SuperNode has its own key pair, its public key is registered
with `flwr supernode register` before it starts, and a node whose key is not registered cannot
join. ``--insecure`` (plaintext, any node may join) exists for comparison and prints a warning.

Every process listens on 127.0.0.1 only, on free ports; Flower's state lives in a temporary
FLWR_HOME; telemetry is off. The script waits for the run with a timeout and stops every process
it started (their whole process groups: SuperExec and ClientApp/ServerApp children too), also
on error or Ctrl-C. The ServerApp writes its measurements to a JSON file the script reads.

Usage (from the repository root):
    uv run --group flower python flower_app/deploy.py                      # 2 rounds, 2 nodes
    uv run --group flower python flower_app/deploy.py --num-rounds 3 --kill-node-after-round 1
    uv run --group flower python flower_app/deploy.py --intruders untrusted-ca,no-key
    uv run --group flower python flower_app/deploy.py --insecure     # plaintext, a warning
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(APP_DIR))  # run as a script: labkit_flower sits next to this file

from pki import make_ca, make_node_key  # noqa: E402
from wire import ByteCounter  # noqa: E402

from labkit_flower.task import TaskConfig, load_partitions  # noqa: E402

__all__ = ["deploy", "DeploymentError", "INTRUDERS"]

# SuperNodes that must be refused, each started before the authorised ones and claiming
# partition 0 (had one joined, the ServerApp would find partition 0 held twice and fail).
INTRUDERS = {
    "untrusted-ca": "trusts another CA, so it cannot verify the SuperLink (TLS handshake fails)",
    "no-key": "verifies the SuperLink but has no registered identity (registration refused)",
    "unregistered-key": "signs with a key pair that was never registered (activation refused)",
    "plaintext": "speaks gRPC without TLS to the TLS SuperLink",
}
INSECURE_WARNING = (
    "WARNING: --insecure deployment: updates cross the network in plain text and the SuperLink "
    "accepts any SuperNode that connects. Use it only to measure what TLS costs."
)


class DeploymentError(RuntimeError):
    """A process did not start, the run failed, or it did not finish within the timeout."""


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    return repr(value)


class _Processes:
    """The processes this script started; ``stop()`` ends each one's process group."""

    def __init__(self, logs: Path, env: dict):
        self.logs, self.env, self.procs = logs, env, {}

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        # Own session: the process and the children it spawns form one group we can end.
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """Kill one process group at once (SIGKILL: a crash, not a clean shutdown)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(timeout=30)

    def stop(self, grace: float = 10.0) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            # Children left in the group after the leader exited (a ClientApp mid-import).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _environment(work: Path) -> dict:
    """The deployment's environment: Flower's state under ``work``, telemetry off, quiet."""
    env = dict(os.environ)
    env.update(
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_HOME=str(work / "flwr-home"),
        TF_CPP_MIN_LOG_LEVEL="3",
        LABKIT_PROGRESS="0",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        # Keeps TensorFlow out of the processes that never use it (see _startup/sitecustomize.py).
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(APP_DIR / "_startup"), env.get("PYTHONPATH")])
        ),
    )
    return env


def deploy(
    cfg: TaskConfig,
    num_supernodes: int | None = None,
    timeout: float = 1200.0,
    kill_node_after_round: int | None = None,
    workdir: str | Path | None = None,
    insecure: bool = False,
    intruders: tuple[str, ...] = (),
) -> dict:
    """Run ``cfg`` on a SuperLink and ``num_supernodes`` SuperNodes on loopback; return results.

    Args:
        cfg: the task; each SuperNode holds one partition, so ``num_supernodes`` must equal
            ``cfg.num_clients`` (the default).
        timeout: seconds for the whole deployment, start-up included.
        kill_node_after_round: SIGKILL SuperNode 1 (and its ClientApp) once this round is
            recorded, i.e. while the next round runs: the fault test.
        workdir: where logs, FLWR_HOME, keys and the results file go (default: a temporary
            folder).
        insecure: plaintext gRPC and no node authentication (warns); the default is TLS with
            authenticated SuperNodes.
        intruders: names from ``INTRUDERS``: SuperNodes that try to join and must be refused.

    Returns:
        the ServerApp's record (``rounds``, ``test_accuracy``, ``wall_time``, bytes,
        ``client_timings``, ``error``) plus ``startup_seconds``, ``total_seconds``, ``killed``,
        ``secure``, ``intruders`` (each one's exit code and the reason in its log),
        ``wire_bytes_up`` / ``wire_bytes_down`` (TCP payload between the authorised SuperNodes
        and the Fleet API, TLS included when on), ``pids`` and ``logs``. Raises
        ``DeploymentError`` when the run does not finish in time.
    """
    num_supernodes = cfg.num_clients if num_supernodes is None else num_supernodes
    if num_supernodes != cfg.num_clients or num_supernodes < 2:
        raise ValueError(
            f"num_supernodes must equal num_clients={cfg.num_clients} and be >= 2, "
            f"got {num_supernodes}"
        )
    unknown = sorted(set(intruders) - set(INTRUDERS))
    if unknown or (intruders and insecure):
        raise ValueError(
            f"intruders must be names from {sorted(INTRUDERS)} on a secure deployment, "
            f"got {intruders!r} with insecure={insecure}"
        )
    load_partitions(cfg)  # refuses an empty client before any process starts
    own_tmp = workdir is None
    work = Path(tempfile.mkdtemp(prefix="flower-deploy-") if own_tmp else workdir)
    work.mkdir(parents=True, exist_ok=True)
    results = work / "results.json"
    results.unlink(missing_ok=True)
    env = _environment(work)
    bin_dir = Path(sys.executable).parent
    serverappio, fleet, control, *appio = _free_ports(3 + num_supernodes + len(intruders))
    procs = _Processes(work, env)
    wire = ByteCounter(fleet)  # the authorised SuperNodes reach the Fleet API through it
    t0 = time.perf_counter()
    tls, federation, pki = _transport(insecure, work, control)
    try:
        procs.start(
            "superlink",
            [
                str(bin_dir / "flower-superlink"),
                *tls,
                f"--serverappio-api-address=127.0.0.1:{serverappio}",
                f"--fleet-api-address=127.0.0.1:{fleet}",
                f"--control-api-address=127.0.0.1:{control}",
            ],
        )
        node_args = [[] for _ in range(num_supernodes)]
        if not insecure:
            keys = [make_node_key(work / "pki", f"supernode-{k}") for k in range(num_supernodes)]
            _await_port(procs, "superlink", control, t0, timeout)
            _register(bin_dir, work, federation, [pub for _, pub in keys], env, timeout)
            node_args = [
                ["--root-certificates", str(pki.ca_cert), "--auth-supernode-private-key", str(key)]
                for key, _ in keys
            ]
            _start_intruders(procs, bin_dir, work, pki, fleet, appio[num_supernodes:], intruders)
        for k in range(num_supernodes):
            procs.start(
                f"supernode-{k}",
                [
                    str(bin_dir / "flower-supernode"),
                    *(["--insecure"] if insecure else node_args[k]),
                    f"--superlink=127.0.0.1:{wire.port}",
                    f"--clientappio-api-address=127.0.0.1:{appio[k]}",
                    f"--node-config=partition-id={k} num-partitions={num_supernodes}",
                ],
            )
        overrides = {**cfg.to_run_config(), "results-path": str(results)}
        run_config = work / "run_config.toml"
        run_config.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in overrides.items()))
        _await_port(procs, "superlink", control, t0, timeout)
        _submit(bin_dir, federation, run_config, env, timeout)
        record, started, killed = _wait(procs, results, cfg, t0, timeout, kill_node_after_round)
        refused = {name: _refusal(procs, name, t0, timeout) for name in intruders}
    finally:
        procs.stop()
        wire.close()
    record.update(
        startup_seconds=started,
        total_seconds=time.perf_counter() - t0,
        killed=killed,
        secure=not insecure,
        intruders=refused,
        wire_bytes_up=wire.up,
        wire_bytes_down=wire.down,
        pids=[p.pid for p in procs.procs.values()],
        logs=str(work),
    )
    return record


def _transport(insecure: bool, work: Path, control: int):
    """Return the SuperLink's TLS flags, `flwr`'s federation settings and the PKI (or None)."""
    address = f"127.0.0.1:{control}"
    if insecure:
        warnings.warn(INSECURE_WARNING, stacklevel=3)
        return ["--insecure"], {"address": address, "insecure": True}, None
    pki = make_ca(work / "pki")
    tls = [
        f"--ssl-certfile={pki.server_cert}",
        f"--ssl-keyfile={pki.server_key}",
        f"--ssl-ca-certfile={pki.ca_cert}",
        "--enable-supernode-auth",
    ]
    return tls, {"address": address, "root-certificates": str(pki.ca_cert)}, pki


def _register(bin_dir, work: Path, federation: dict, public_keys, env, timeout) -> None:
    """Register each SuperNode's public key with the SuperLink (`flwr supernode register`).

    The CLI reads the address and CA from a project's pyproject.toml (it has no
    ``--federation-config``), so it gets a copy of the app's with this deployment's federation.
    """
    project = work / "control"
    project.mkdir(exist_ok=True)
    (project / "pyproject.toml").write_text(
        (APP_DIR / "pyproject.toml").read_text()
        + "\n[tool.flwr.federations.this-deployment]\n"
        + "".join(f"{k} = {_toml_value(v)}\n" for k, v in federation.items())
    )
    cmd = [str(bin_dir / "flwr"), "supernode", "register"]
    tail = [str(project), "this-deployment", "--format", "json"]
    jobs = [
        subprocess.Popen([*cmd, str(pub), *tail], env=env, stdout=subprocess.PIPE, text=True)
        for pub in public_keys
    ]  # in parallel: each CLI call spends seconds importing
    for pub, job in zip(public_keys, jobs, strict=True):
        out, _ = job.communicate(timeout=timeout)
        if '"success": true' not in out:
            raise DeploymentError(f"`flwr supernode register {pub.name}` failed:\n{out}")


def _start_intruders(procs, bin_dir, work, pki, fleet, ports, intruders) -> None:
    """Start the SuperNodes that must be refused (they give up after 2 retries)."""
    other_ca = make_ca(work / "other-ca", name="impostor").ca_cert
    stray_key, _ = make_node_key(work / "pki", "unregistered")
    args = {
        "untrusted-ca": ["--root-certificates", str(other_ca)],
        "no-key": ["--root-certificates", str(pki.ca_cert)],
        "unregistered-key": [
            *("--root-certificates", str(pki.ca_cert)),
            *("--auth-supernode-private-key", str(stray_key)),
        ],
        "plaintext": ["--insecure"],
    }
    for name, port in zip(intruders, ports, strict=False):
        procs.start(
            f"intruder-{name}",
            [
                str(bin_dir / "flower-supernode"),
                *args[name],
                f"--superlink=127.0.0.1:{fleet}",
                f"--clientappio-api-address=127.0.0.1:{port}",
                "--node-config=partition-id=0 num-partitions=1",
                "--max-retries=2",
                "--max-wait-time=30",
            ],
        )


def _refusal(procs: _Processes, name: str, t0: float, timeout: float) -> dict:
    """An intruder's exit code and the line of its log that says why it could not join."""
    proc = procs.procs[f"intruder-{name}"]
    try:
        proc.wait(timeout=max(timeout - (time.perf_counter() - t0), 1.0))
    except subprocess.TimeoutExpired:
        return {"returncode": None, "reason": "still running"}
    log = (procs.logs / f"intruder-{name}.log").read_text(errors="replace")
    # gRPC's verdict (status and details), and the TLS library's when the handshake failed.
    keep = ("status = ", "details = ", "CERTIFICATE_VERIFY_FAILED")
    reasons = [line.strip() for line in log.splitlines() if any(k in line for k in keep)]
    return {"returncode": proc.returncode, "reason": " | ".join(dict.fromkeys(reasons[:4]))}


def _await_port(procs: _Processes, name: str, port: int, t0: float, timeout: float) -> None:
    """Block until ``port`` on loopback accepts connections (the SuperLink imports for seconds)."""
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if procs.procs[name].poll() is not None:
            raise DeploymentError(f"the {name} exited before it listened:\n{procs.tail(name)}")
        if time.perf_counter() - t0 > timeout:
            raise DeploymentError(f"the {name} did not listen on port {port} within {timeout:g} s")
        time.sleep(0.2)


def _submit(
    bin_dir: Path, federation: dict, run_config: Path, env: dict, timeout: float, attempts: int = 3
) -> None:
    """Submit the run with `flwr run`; raise unless the SuperLink confirms it.

    `flwr run` exits 0 even when it fails (it catches every error and prints it), so its exit
    code says nothing: ask for JSON output and check ``success``. A refused connection is retried.
    """
    cmd = [
        str(bin_dir / "flwr"),
        "run",
        str(APP_DIR),
        "local-deployment",
        "--federation-config",
        " ".join(f"{k}={_toml_value(v)}" for k, v in federation.items()),
        "--run-config",
        str(run_config),
        "--format",
        "json",
    ]
    for attempt in range(1, attempts + 1):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        try:
            answer = json.JSONDecoder().raw_decode(out.stdout[out.stdout.index("{") :])[0]
        except ValueError:
            answer = {}
        if out.returncode == 0 and answer.get("success") is True:
            return
        if "unavailable" not in out.stdout.lower() or attempt == attempts:
            raise DeploymentError(f"`flwr run` did not start the run:\n{out.stdout}\n{out.stderr}")
        time.sleep(2.0)


def _read(results: Path) -> dict | None:
    try:
        return json.loads(results.read_text())
    except (OSError, ValueError):
        return None


def _wait(procs: _Processes, results: Path, cfg: TaskConfig, t0, timeout, kill_after):
    """Poll the ServerApp's results file until done, failed, or out of time."""
    killed = started = None
    while True:
        record = _read(results)
        if record is not None:
            if started is None:  # the ServerApp has found its nodes and starts round 1
                started = time.perf_counter() - t0
            if record.get("error") or len(record["rounds"]) >= cfg.num_rounds:
                return record, started, killed
            if kill_after is not None and killed is None and len(record["rounds"]) >= kill_after:
                procs.kill("supernode-1")
                killed = {"node": "supernode-1", "after_round": len(record["rounds"])}
        if procs.procs["superlink"].poll() is not None:
            raise DeploymentError(f"the SuperLink exited:\n{procs.tail('superlink')}")
        if time.perf_counter() - t0 > timeout:
            raise DeploymentError(
                f"the run did not finish within timeout={timeout:g} s; last record: {record}\n"
                f"SuperLink log:\n{procs.tail('superlink')}"
            )
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-clients", type=int, default=2, help="= number of SuperNodes")
    parser.add_argument("--num-rounds", type=int, default=2)
    parser.add_argument("--client-fraction", type=float, default=1.0)
    parser.add_argument("--round-timeout", type=float, default=120.0)
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--kill-node-after-round", type=int, default=None)
    parser.add_argument("--workdir", default=None)
    parser.add_argument(
        "--insecure", action="store_true", help="plaintext gRPC, no node authentication (warns)"
    )
    parser.add_argument(
        "--intruders", default="", help=f"comma-separated SuperNodes to refuse: {list(INTRUDERS)}"
    )
    args = parser.parse_args(argv)
    if args.insecure:
        print(INSECURE_WARNING, file=sys.stderr)
    # A plain `kill` (SIGTERM) also runs deploy()'s clean-up, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cfg = TaskConfig(
        num_clients=args.num_clients,
        num_rounds=args.num_rounds,
        client_fraction=args.client_fraction,
        round_timeout=args.round_timeout,
    )
    out = deploy(
        cfg,
        timeout=args.timeout,
        kill_node_after_round=args.kill_node_after_round,
        workdir=args.workdir,
        insecure=args.insecure,
        intruders=tuple(filter(None, args.intruders.split(","))),
    )
    print(json.dumps({k: v for k, v in out.items() if k != "settings"}, indent=1))
    return 1 if out.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
