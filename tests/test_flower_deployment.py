"""The Flower app deployed over gRPC with TLS and authenticated SuperNodes: rounds, refused
intruders, a killed SuperNode, and every process stopped.

The fixture starts real processes (a SuperLink, two authorised SuperNodes and four intruders on
127.0.0.1) once for the module; about three minutes on 2 cores, most of it ClientApp processes
importing TensorFlow. Without flwr installed the whole module is skipped.
"""

import os
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "flower_app"))

from deploy import (  # noqa: E402
    INTRUDERS,
    DeploymentError,
    _environment,
    _free_ports,
    _submit,
    _transport,
    deploy,
)

from labkit_flower.engine import labkit_loop  # noqa: E402
from labkit_flower.task import TaskConfig  # noqa: E402


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """3 rounds on 2 SuperNodes over TLS, with every kind of intruder trying to join; SuperNode 1
    is killed (SIGKILL) once round 2 is recorded."""
    cfg = TaskConfig(
        num_clients=2,
        client_fraction=1.0,
        num_rounds=3,
        num_train=1200,
        num_test=500,
        round_timeout=240.0,
    )
    return cfg, deploy(
        cfg,
        timeout=600.0,
        kill_node_after_round=2,
        workdir=tmp_path_factory.mktemp("deploy"),
        intruders=tuple(INTRUDERS),
    )


def test_deployment_runs_rounds_over_grpc(deployment):
    cfg, out = deployment
    assert out["secure"]
    # What crossed the wire: the payload Flower counted plus TLS and gRPC framing and polling.
    assert out["wire_bytes_up"] > out["bytes_up"] > 0
    assert out["rounds"][:2] == [1, 2]
    history, _ = labkit_loop(cfg.replace(num_rounds=2))
    assert abs(out["test_accuracy"][1] - history.test_accuracy[1]) <= 2 / cfg.num_test
    assert out["bytes_up"] > 0 and all(t["process-age"] > 0 for t in out["client_timings"])


def _superlink_log(out) -> str:
    return (Path(out["logs"]) / "superlink.log").read_text(errors="replace")


def test_only_registered_supernodes_join(deployment):
    """Each intruder gives up with Flower's refusal; the run went on with the two others."""
    _, out = deployment
    expected = {
        "untrusted-ca": "CERTIFICATE_VERIFY_FAILED",
        "no-key": "All SuperNodes must be registered",
        "unregistered-key": "No SuperNode found with the given public key",
        "plaintext": "StatusCode.UNAVAILABLE",
    }
    assert set(out["intruders"]) == set(expected)
    for name, reason in expected.items():
        assert out["intruders"][name]["returncode"] not in (0, None), name
        assert reason in out["intruders"][name]["reason"], (name, out["intruders"][name])
    log = _superlink_log(out)
    # Exactly the two registered nodes were activated; an intruder claiming partition 0 would
    # also have made the ServerApp fail with "partition-id 0 is held by two nodes".
    assert log.count("[Fleet.ActivateNode] Activated node_id=") == 2
    assert "SuperNode registration is disabled through Fleet API" in log  # the no-key node
    assert out["rounds"][:2] == [1, 2] and "held by two" not in (out["error"] or "")


def test_plaintext_grpc_cannot_talk_to_the_tls_superlink(deployment):
    """The plaintext SuperNode got no answer at all: its RPCs failed before reaching Flower.

    tests/test_flower_pki.py checks the same on a bare gRPC server, RPC by RPC.
    """
    _, out = deployment
    reason = out["intruders"]["plaintext"]["reason"]
    assert "StatusCode.UNAVAILABLE" in reason and "FAILED_PRECONDITION" not in reason


def test_transport_is_tls_unless_insecure_is_asked_for(tmp_path):
    tls, federation, pki = _transport(False, tmp_path, 9093)
    assert "--enable-supernode-auth" in tls and "--insecure" not in tls
    assert federation == {"address": "127.0.0.1:9093", "root-certificates": str(pki.ca_cert)}
    assert oct(pki.server_key.stat().st_mode & 0o777) == "0o600"
    with pytest.warns(UserWarning, match="plain text"):
        tls, federation, pki = _transport(True, tmp_path, 9093)
    assert tls == ["--insecure"] and federation["insecure"] is True and pki is None
    with pytest.raises(ValueError, match="intruders"):
        deploy(TaskConfig(num_clients=2), insecure=True, intruders=("no-key",))


def test_killed_supernode_fails_the_round_clearly(deployment):
    cfg, out = deployment
    assert out["killed"] == {"node": "supernode-1", "after_round": 2}
    assert out["rounds"] == [1, 2]
    assert "round 3" in out["error"] and "partitions [1]" in out["error"]
    # Failed within the round timeout (or the SuperLink's 60 s heartbeat verdict), not later.
    assert out["total_seconds"] - out["startup_seconds"] - out["wall_time"][1] < (
        cfg.round_timeout + 60
    )


def test_deployment_stops_every_process(deployment):
    _, out = deployment

    def alive(pid: int) -> bool:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return False
        return True

    # A group's last member may take a moment to exit after SIGTERM; give it 20 s, no more.
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in out["pids"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in out["pids"] if alive(pid)]


def test_a_run_nobody_accepted_is_an_error(tmp_path):
    """`flwr run` exits 0 when the SuperLink is unreachable; the script must not believe it."""
    (port,) = _free_ports(1)  # nothing listens here
    config = tmp_path / "run_config.toml"
    config.write_text("num-rounds = 1\n")
    env = _environment(tmp_path)
    with pytest.raises(DeploymentError, match="did not start the run") as err:
        _submit(
            Path(sys.executable).parent,
            {"address": f"127.0.0.1:{port}", "insecure": True},
            config,
            env,
            timeout=120,
            attempts=1,
        )
    assert "unavailable" in str(err.value).lower()
