"""Median, range and quartiles by hand and against numpy; ratios of medians."""
import numpy as np
import pytest

from caffe_port.bench.stats import ratio, summarize


def test_summarize_by_hand_and_against_numpy():
    s = summarize([5, 1, 3, 2, 4])
    assert (s["median"], s["min"], s["max"], s["q1"], s["q3"], s["n"]) == (3, 1, 5, 2, 4, 5)
    assert s["samples"] == [5, 1, 3, 2, 4]               # in the order measured
    values = np.random.default_rng(1).exponential(size=8)
    s = summarize(values)
    assert s["median"] == pytest.approx(np.median(values), rel=1e-12)
    assert s["q1"] == pytest.approx(np.percentile(values, 25), rel=1e-12)
    assert s["q3"] == pytest.approx(np.percentile(values, 75), rel=1e-12)
    with pytest.raises(ValueError):
        summarize([])


def test_ratio_of_medians():
    a, b = summarize([3, 30, 6]), summarize([2, 4, 100])
    assert ratio(a, b) == pytest.approx(6 / 4)
    assert ratio(a, None) is None and ratio(None, b) is None
