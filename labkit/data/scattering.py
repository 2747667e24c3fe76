"""ScatterNet features: a fixed wavelet scattering transform, then per-example group norm.

Tramer & Boneh (2021) train DP-SGD on these hand-crafted features instead of on pixels. The
transform has no trainable or data-dependent parameters and normalises every image by its own
statistics only (GroupNorm without affine weights, applied once here rather than as a layer),
so computing it costs no privacy: feature ``i`` depends on image ``i`` alone, never on labels
or on other examples. The scattering transform itself is kymatio's (Andreux et al. 2020).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from labkit._checks import ParameterError, check_finite_array, check_int, check_positive
from labkit.config import progress

__all__ = ["scattering_channels", "group_norm", "scattering_features"]

_CHUNK = 1000  # images per kymatio call: bounded memory, progress to show


def scattering_channels(J: int = 2, L: int = 8) -> int:
    """Return the number of channels of a second-order scattering transform on one channel.

    Order 0, 1 and 2 coefficients: ``1 + J*L + L*L*J*(J-1)/2`` (81 for J=2, L=8).
    """
    J = check_int("J", J, 1)
    L = check_int("L", L, 1)
    return 1 + J * L + L * L * J * (J - 1) // 2


def group_norm(features: np.ndarray, num_groups: int, eps: float = 1e-5) -> np.ndarray:
    """Normalise each example's channels-last ``features`` (N, H, W, C) group by group.

    The C channels are split into ``num_groups`` consecutive groups; each group of each example
    is shifted to mean 0 and scaled to variance 1 over its H*W*C/num_groups values (PyTorch's
    ``GroupNorm(num_groups, C, affine=False)``). Only the example's own values enter.
    """
    x = check_finite_array("features", features, np.float32)
    if x.ndim != 4:
        raise ParameterError("features", x, "an array of shape (N, H, W, C)", f"ndim {x.ndim}")
    channels = x.shape[-1]
    num_groups = check_int("num_groups", num_groups, 1, channels)
    if channels % num_groups:
        raise ParameterError("num_groups", num_groups, f"a divisor of the {channels} channels")
    eps = check_positive("eps", eps)
    g = x.reshape(x.shape[:3] + (num_groups, channels // num_groups)).astype(np.float64)
    mean = g.mean(axis=(1, 2, 4), keepdims=True)
    var = g.var(axis=(1, 2, 4), keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(x.shape).astype(np.float32)


def scattering_features(
    images: np.ndarray,
    J: int = 2,
    L: int = 8,
    num_groups: int | None = 27,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """Return ScatterNet features (N, H/2^J, W/2^J, C) of grey-scale ``images`` (N, H, W).

    Args:
        images: finite pixel arrays, e.g. MNIST in [0, 1]; H and W multiples of 2**J.
        J: scales of the wavelets (the output is 2**J times smaller per side).
        L: orientations per scale; C = ``scattering_channels(J, L)`` (81 for J=2, L=8).
        num_groups: ``group_norm`` groups over the C channels (Tramer & Boneh: 27), or None
            for the raw coefficients.
        cache_dir: a directory (outside the repository, e.g. ``~/.cache/labkit``) where the
            result is stored under a hash of the images and arguments and read back next
            time; None computes every time.

    Returns:
        float32 features, channels last, one row per image, in the images' order.
    """
    x = check_finite_array("images", images, np.float32)
    if x.ndim != 3:
        raise ParameterError("images", x, "grey-scale images of shape (N, H, W)", f"{x.shape}")
    J = check_int("J", J, 1, 6)
    L = check_int("L", L, 1, 16)
    h, w = x.shape[1:]
    if h % 2**J or w % 2**J or min(h, w) < 2 ** (J + 1):
        raise ParameterError("J", J, f"2**J dividing the image sides {h}x{w}, 2**(J+1) <= side")
    channels = scattering_channels(J, L)
    if num_groups is not None:
        num_groups = check_int("num_groups", num_groups, 1, channels)
        if channels % num_groups:
            raise ParameterError("num_groups", num_groups, f"a divisor of the {channels} channels")
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(x.tobytes() + repr((x.shape, J, L, num_groups)).encode()).hexdigest()
        path = Path(cache_dir).expanduser() / f"scattering_{key[:24]}.npy"
        if path.exists():
            return np.load(path)
    out = _scatter(x, J, L)
    if num_groups is not None:
        out = group_norm(out, num_groups)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(path)  # atomic: a concurrent reader sees the whole file or none
    return out


def _scatter(x: np.ndarray, J: int, L: int) -> np.ndarray:
    # kymatio.numpy also imports the 3-D harmonic frontend, which needs scipy.special.sph_harm
    # (removed in SciPy 1.17, which the lock holds); the 2-D frontend module needs neither.
    from kymatio.scattering2d.frontend.numpy_frontend import ScatteringNumPy2D

    scattering = ScatteringNumPy2D(J=J, shape=x.shape[1:], L=L)
    chunks = []
    for start in progress(range(0, len(x), _CHUNK), desc="scattering", leave=False):
        coeffs = scattering(x[start : start + _CHUNK])  # (n, C, H', W')
        chunks.append(np.transpose(coeffs, (0, 2, 3, 1)).astype(np.float32))
    if not chunks:
        side = (x.shape[1] // 2**J, x.shape[2] // 2**J)
        return np.zeros((0,) + side + (scattering_channels(J, L),), np.float32)
    return np.concatenate(chunks)
