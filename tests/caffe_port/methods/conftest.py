"""The tiny networks of tests/helpers/tiny_nets.py as the fixture ``tiny``."""
from types import SimpleNamespace

import pytest

from helpers import tiny_nets


@pytest.fixture(scope="session")
def tiny():
    return SimpleNamespace(relu_linear=tiny_nets.relu_linear, gap_fc=tiny_nets.gap_fc,
                           conv_pool_fc=tiny_nets.conv_pool_fc, conv_gap_fc=tiny_nets.conv_gap_fc,
                           net=tiny_nets.net)
