"""Counter-based noise: random numbers that are a pure function of (seed, stream, index).

The physiological model must give the same value for the same patient and time however
it is asked (one second at a time by a live device, or a whole session at once by a
test), so noise cannot come from a stateful generator. A splitmix64 hash of the index
gives independent uniforms per index; smooth noise interpolates hashed knots.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _key(seed: int, stream: int) -> np.uint64:
    # Fold seed and stream into one 64-bit key with Python ints (no numpy overflow warnings).
    k = (seed * 0x9E3779B97F4A7C15 + stream * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) & _MASK
    return np.uint64(k)


def uniform(seed: int, stream: int, index: ArrayLike) -> NDArray[np.float64]:
    """Uniform [0, 1) for each integer index, fixed by (seed, stream)."""
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64)).astype(np.uint64)
    with np.errstate(over="ignore"):
        x = _mix(idx * _GOLDEN + _key(seed, stream))
        x = _mix(x + _GOLDEN)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def gauss(seed: int, stream: int, index: ArrayLike) -> NDArray[np.float64]:
    """Standard normal for each integer index (Box-Muller on two hashed uniforms)."""
    u1 = 1.0 - uniform(seed, stream * 2 + 1, index)  # (0, 1]: log is finite
    u2 = uniform(seed, stream * 2 + 2, index)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def smooth(seed: int, stream: int, t: ArrayLike, scale: float) -> NDArray[np.float64]:
    """Smooth noise (about unit variance) varying over ``scale`` seconds: hashed normal
    knots every ``scale`` seconds joined by smoothstep, so it is continuous in t."""
    x = np.atleast_1d(np.asarray(t, dtype=np.float64)) / scale
    k = np.floor(x)
    f = x - k
    w = f * f * (3.0 - 2.0 * f)
    g0 = gauss(seed, stream, k.astype(np.int64))
    g1 = gauss(seed, stream, k.astype(np.int64) + 1)
    # Interpolating two independent normals shrinks the variance mid-way; rescale so the
    # amplitude a caller asks for is the amplitude it gets, on average.
    return (g0 + (g1 - g0) * w) / np.sqrt((1.0 - w) ** 2 + w**2)
