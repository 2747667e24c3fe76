"""labkit's federated task as a Flower app: simulation, gRPC deployment, DP and SecAgg+ variants.

Import the submodules you need (``labkit_flower.engine`` for Python callers); importing this
package alone does not import Flower or TensorFlow.
"""
