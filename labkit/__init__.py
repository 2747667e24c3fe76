"""labkit: the helper package behind the Private AI workbook.

One module per concern (config, data, models, fl, dp, he, attacks, plots); the public API is
re-exported here flat, so a chapter needs only ``import labkit as lk``.
"""

from labkit import config  # noqa: F401  (first: it quiets TensorFlow before anything imports it)
from labkit.attacks import *  # noqa: F403
from labkit.config import *  # noqa: F403
from labkit.data import *  # noqa: F403
from labkit.dp import *  # noqa: F403
from labkit.fl import *  # noqa: F403
from labkit.guide import *  # noqa: F403
from labkit.he import *  # noqa: F403
from labkit.models import *  # noqa: F403
from labkit.plots import *  # noqa: F403
from labkit.results import *  # noqa: F403

# isort: split
# Chapter 08's new modules, called as lk.text.*, lk.exposure.*, ... (to be folded into the layers)
from labkit import experiments_text, exposure, plots_text, private_inference, text  # noqa: F401

__version__ = "0.1.0"
