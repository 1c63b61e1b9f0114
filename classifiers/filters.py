"""The few signal filters the audio fingerprinter needs, in numpy.

They give the same answers as the SciPy calls they replace (tests/test_fingerprint.py compares
them): importing `scipy.signal` and `scipy.ndimage` costs ~0.6 s and ~0.3 s of CPU, which every
sandboxed transcode child would pay before its first frame (issue 5, "Speed").

- `decimate(x, factor)` = `scipy.signal.resample_poly(x, 1, factor, padtype="constant")`: the
  same 20·factor + 1-tap Kaiser (β = 5) windowed-sinc low-pass, normalized to unit DC gain
  (`scipy.signal.firwin`), applied only where an output sample falls;
- `maximum_filter(a, (rows, cols))` = `scipy.ndimage.maximum_filter(a, size=..., mode="constant",
  cval=-inf)` for odd sizes: separable running maxima by doubling (van Herk's idea, log₂ of the
  window passes per axis);
- `moving_mean_rows(a, size)` = `scipy.ndimage.uniform_filter1d(a, size, axis=0,
  mode="nearest")` for an odd size: a centred running mean over rows, edges repeated.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

KAISER_BETA = 5.0  # resample_poly's default window, ("kaiser", 5.0)
HALF_LENGTH_PER_FACTOR = 10  # resample_poly's filter half-length: 10 × the rate ratio


@functools.cache
def lowpass_taps(factor: int) -> NDArray[np.float32]:
    """The anti-aliasing FIR `resample_poly(x, 1, factor)` designs (firwin, Kaiser β = 5)."""
    half = HALF_LENGTH_PER_FACTOR * factor
    m = np.arange(-half, half + 1, dtype=np.float64)
    cutoff = 1.0 / factor
    taps = cutoff * np.sinc(cutoff * m) * np.kaiser(2 * half + 1, KAISER_BETA)
    result = (taps / taps.sum()).astype(np.float32)
    result.setflags(write=False)  # cached: shared by every caller
    return result


def decimate(x: NDArray[np.float32], factor: int) -> NDArray[np.float32]:
    """Low-pass and keep every `factor`-th sample: ceil(len(x) / factor) outputs, output k
    centred on input k·factor, zeros assumed outside `x`."""
    x = np.asarray(x, dtype=np.float32)
    taps = lowpass_taps(factor)
    half = (len(taps) - 1) // 2
    outputs = -(-len(x) // factor)
    padded = np.zeros(half + outputs * factor + half, np.float32)
    padded[half : half + len(x)] = x
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(taps))[::factor][:outputs]
    return np.asarray(windows @ taps[::-1], dtype=np.float32)


def _running_max_rows(a: NDArray[np.float32], size: int) -> NDArray[np.float32]:
    """Max over rows i - size//2 … i + size//2 of each column (odd `size`; -inf outside)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be odd and positive, not {size}")
    radius = size // 2
    rows = a.shape[0]
    padded = np.full((rows + 2 * radius, *a.shape[1:]), -np.inf, dtype=a.dtype)
    padded[radius : radius + rows] = a
    # span[i] = max(padded[i : i + width]), width doubling up to the largest power of 2 ≤ size
    span, width = padded, 1
    while width * 2 <= size:
        span = np.maximum(span[:-width], span[width:])
        width *= 2
    return np.maximum(span[:rows], span[size - width : size - width + rows])


def maximum_filter(a: NDArray[np.float32], size: tuple[int, int]) -> NDArray[np.float32]:
    """Each element's maximum over the `size[0]` × `size[1]` box centred on it (odd sizes)."""
    rows = _running_max_rows(a, size[0])
    return np.ascontiguousarray(_running_max_rows(rows.T, size[1]).T)


def moving_mean_rows(a: NDArray[np.float32], size: int) -> NDArray[np.float32]:
    """Mean over rows i - size//2 … i + size//2 of each column, edge rows repeated (odd size)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be odd and positive, not {size}")
    radius = size // 2
    padded = np.pad(a.astype(np.float64), [(radius, radius)] + [(0, 0)] * (a.ndim - 1), "edge")
    sums = np.cumsum(padded, axis=0)
    sums = np.concatenate([np.zeros((1, *a.shape[1:])), sums])
    return ((sums[size:] - sums[:-size]) / size).astype(a.dtype)
