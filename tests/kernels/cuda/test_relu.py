"""CUDA ReLU family against the CPU kernels: the three rules, stacked K, float32, exact."""
import numpy as np
import pytest

from helpers.kernel_calls import layer

SHAPE = (2, 3, 5, 4)   # N != C != H != W
RULES = ["backprop", "deconvnet", "guided"]


def case(op_type, rng):
    x = rng.standard_normal(SHAPE).astype(np.float32)
    x[0, 0, 0, :2] = 0                                    # the kink itself: f'(0) is the CPU's choice
    if op_type == "Relu":
        return [x], [np.maximum(x, 0)], {}
    if op_type == "LeakyRelu":
        return [x], [np.where(x > 0, x, np.float32(0.2) * x)], {"alpha": 0.2}
    if op_type == "PRelu":
        slope = np.array([0.1, -0.3, 0.5], np.float32).reshape(3, 1, 1)
        return [x, slope], [np.where(x > 0, x, x * slope)], {}
    bounds = [np.array(-1.0, np.float32), np.array(2.0, np.float32)]
    x = 3 * x
    return [x] + bounds, [np.clip(x, -1, 2)], {}


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("op_type", ["Relu", "LeakyRelu", "PRelu", "Clip"])
def test_matches_cpu(op_type, rule, both, close):
    rng = np.random.default_rng(4)
    bottoms, tops, attrs = case(op_type, rng)
    g = rng.standard_normal((3,) + SHAPE).astype(np.float32)   # K = 3 stacked diffs
    a = layer(attrs, bottoms, tops, propagate_down=[True] + [False] * (len(bottoms) - 1), rule=rule)
    cpu, gpu = both(op_type, [g], bottoms, tops, a)
    close(cpu, gpu, rtol=0, atol=0)                   # one multiply per element: bit for bit


def test_clip_attribute_bounds(both, close):
    x = np.linspace(-3, 3, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    y = np.clip(x, -1, 2)
    g = np.ones((2,) + x.shape, np.float32)
    a = layer({"min": -1.0, "max": 2.0}, [x], [y], opset=6)
    cpu, gpu = both("Clip", [g], [x], [y], a)
    close(cpu, gpu, rtol=0, atol=0)


def test_unknown_rule_is_refused():
    from caffe_port.kernels.cuda import device, relu
    x = device.upload(np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="unknown rule"):
        relu.relu_backward([device.upload(np.ones((1, 1, 2), np.float32))], [None], [x], {},
                           rule="smooth")
