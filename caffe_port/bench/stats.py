"""The statistics every timing of ``caffe-port bench`` is reported with: median, range, quartiles."""
from __future__ import annotations


def summarize(samples) -> dict:
    """Median, min, max and the quartiles (linear interpolation, as numpy's default) of samples."""
    values = sorted(float(v) for v in samples)
    if not values:
        raise ValueError("no samples to summarize")

    def quantile(q):
        pos = q * (len(values) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(values) - 1)
        return values[lo] + (values[hi] - values[lo]) * (pos - lo)

    return {"median": quantile(0.5), "min": values[0], "max": values[-1], "q1": quantile(0.25),
            "q3": quantile(0.75), "n": len(values), "samples": [float(v) for v in samples]}


def ratio(numerator, denominator):
    """median(numerator) / median(denominator) of two summaries (None when either is missing)."""
    if not numerator or not denominator or not denominator["median"]:
        return None
    return numerator["median"] / denominator["median"]
