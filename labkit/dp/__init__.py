"""labkit.dp: mechanisms, DP-SGD and accounting, split as TF Privacy splits them."""

from labkit.dp.accounting import *  # noqa: F403
from labkit.dp.accounting import __all__ as _accounting_all
from labkit.dp.dpsgd import *  # noqa: F403
from labkit.dp.dpsgd import __all__ as _dpsgd_all
from labkit.dp.fedavg import *  # noqa: F403
from labkit.dp.fedavg import __all__ as _fedavg_all
from labkit.dp.layers import *  # noqa: F403
from labkit.dp.layers import __all__ as _layers_all
from labkit.dp.mechanisms import *  # noqa: F403
from labkit.dp.mechanisms import __all__ as _mechanisms_all
from labkit.dp.partition import *  # noqa: F403
from labkit.dp.partition import __all__ as _partition_all
from labkit.dp.query import *  # noqa: F403
from labkit.dp.query import __all__ as _query_all
from labkit.dp.schedule import *  # noqa: F403
from labkit.dp.schedule import __all__ as _schedule_all
from labkit.dp.training import *  # noqa: F403
from labkit.dp.training import __all__ as _training_all

__all__ = [*_mechanisms_all, *_accounting_all, *_dpsgd_all, *_training_all, *_fedavg_all,
           *_schedule_all, *_layers_all,
           *_partition_all, *_query_all]  # fmt: skip
