"""Ops without a kernel: refused in one line with the nearest alternative where they sit between
the input and the score; never refused where no diff needs them (after the score, shape maths)."""
import numpy as np
import pytest
from onnx import helper

from caffe_port import Net
from caffe_port.errors import UnsupportedOpError
from caffe_port.onnx_util import initializer, make_model, tensor_value_info

X = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)


def model(nodes, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", [tensor_value_info("data", (2, 3))],
                              [helper.make_empty_tensor_value_info(o) for o in outputs],
                              initializer=list(initializers))
    return make_model(graph, 17)


def test_refusal_names_op_node_and_alternative():
    nodes = [helper.make_node("Einsum", ["data", "w"], ["scores"], name="head", equation="nc,kc->nk")]
    with pytest.raises(UnsupportedOpError) as info:
        Net(model(nodes, ["scores"], [initializer("w", np.ones((4, 3), np.float32))]), device="cpu")
    message = str(info.value)
    assert "Einsum" in message and "'head'" in message and "nearest supported: MatMul" in message
    assert "\n" not in message


def test_custom_domain_is_named_with_its_domain():
    nodes = [helper.make_node("FusedGemm", ["data", "w"], ["scores"], name="fused", domain="com.microsoft")]
    m = model(nodes, ["scores"], [initializer("w", np.ones((3, 4), np.float32))])
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(UnsupportedOpError, match="com.microsoft.FusedGemm .*ONNX Runtime's graph optimisations"):
        Net(m, device="cpu")


def test_close_names_are_suggested():
    nodes = [helper.make_node("Relu", ["data"], ["a"]), helper.make_node("HardShrink", ["a"], ["b"])]
    with pytest.raises(UnsupportedOpError, match="nearest supported: "):
        Net(model(nodes, ["b"]), device="cpu")


def test_op_after_the_score_does_not_block():
    """scores → Softmax → prob → Softsign: the score blob is the Softmax's input, so the Softsign
    after it needs no kernel to load or to explain a class; a diff sent into it is refused."""
    nodes = [helper.make_node("MatMul", ["data", "w"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["prob"], axis=1),
             helper.make_node("Softsign", ["prob"], ["soft"], name="after")]
    net = Net(model(nodes, ["prob", "soft"], [initializer("w", np.ones((3, 4), np.float32))]), device="cpu")
    net.forward(data=X)
    onehot = np.zeros((2, 4), np.float32)
    onehot[:, 1] = 1
    grad = net.backward(start="scores", scores=onehot)["data"]
    np.testing.assert_array_equal(grad, np.ones((2, 3), np.float32))
    with pytest.raises(UnsupportedOpError, match="Softsign \\(node 'after'; nearest supported: Tanh or Softplus\\)"):
        net.backward(soft=np.ones((2, 4), np.float32))


def test_score_blob_names_the_pre_softmax_scores():
    nodes = [helper.make_node("MatMul", ["data", "w"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["prob"], axis=1)]
    net = Net(model(nodes, ["prob"], [initializer("w", np.ones((3, 4), np.float32))]), device="cpu")
    assert net.score_blob == "scores" and net.inputs == ["data"] and net.outputs == ["prob"]
