"""Run at start-up by every Python process of the gRPC deployment (deploy.py puts this folder on
PYTHONPATH); it only acts in Flower's infrastructure processes.

Flower 1.23 imports TensorFlow whenever it is installed (`flwr/server/utils/tensorboard.py`),
about 15 s of CPU per process. The SuperLink, the SuperNodes, their SuperExecs and the `flwr` CLI
never use it; the ServerApp and ClientApps (`flwr-serverapp`, `flwr-clientapp`) do and are left
alone. Ray (about 3 s more, in every process) is only for the simulation engine, which a
deployment does not use. A ``None`` entry in ``sys.modules`` makes ``import tensorflow`` raise
ImportError, and ``find_spec("ray")`` return None, which Flower handles as "not installed".
"""

import os
import sys

_INFRASTRUCTURE = {"flower-superlink", "flower-supernode", "flower-superexec", "flwr"}
_APPS = {"flwr-serverapp", "flwr-clientapp"}

_program = os.path.basename(sys.argv[0]) if sys.argv else ""
if _program in _INFRASTRUCTURE:
    sys.modules["tensorflow"] = None
if _program in _INFRASTRUCTURE | _APPS:
    sys.modules["ray"] = None
