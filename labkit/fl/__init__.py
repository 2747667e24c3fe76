"""labkit.fl: federated averaging, split as Flower's examples split it.

``client`` (a client's local training and evaluation), ``loop`` (sampling, the FedAvg / FedSGD
loop, histories and costs) and the private vectorised trainer ``_cohort``. The server's rule is a
``labkit.aggregation.Aggregator``; this package imports neither ``dp`` nor ``he``.
"""

from labkit.fl.client import (
    ClientUpdate,
    OneByOne,
    make_client_update,
    make_evaluator,
    model_update,
)
from labkit.fl.loop import (
    FLHistory,
    client_datasets,
    client_schedule,
    fedavg,
    fedsgd,
    model_bytes,
    num_sampled_clients,
    sample_clients,
)

__all__ = [
    "fedavg",
    "fedsgd",
    "FLHistory",
    "make_client_update",
    "make_evaluator",
    "ClientUpdate",
    "OneByOne",
    "client_datasets",
    "num_sampled_clients",
    "sample_clients",
    "model_bytes",
    "model_update",
    "client_schedule",
]
