"""Graph import: real-world encodings load as they are; bad files fail with one clear line."""
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from caffe_port import Net
from caffe_port.errors import ModelError, UnsupportedOpError
from caffe_port.onnx_import import load_model
from caffe_port.onnx_util import initializer, make_model, tensor_value_info

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)


def scale_relu_model(opset=13, ir3=False):
    """data * w (w built by a constant subgraph) -> Relu -> Reshape(shape from an initializer)."""
    w = np.array([0.5, -2.0, 3.0], np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w_flat"], value=numpy_helper.from_array(w)),
        helper.make_node("Constant", [], ["w_shape"], value=numpy_helper.from_array(np.array([3, 1, 1], np.int64))),
        helper.make_node("Reshape", ["w_flat", "w_shape"], ["w"]),
        helper.make_node("Mul", ["data", "w"], ["scaled"], name="scale"),
        helper.make_node("Relu", ["scaled"], ["relu"], name="relu"),
        helper.make_node("Reshape", ["relu", "flat_shape"], ["flat"], name="flatten"),
    ]
    inits = [initializer("flat_shape", np.array([0, -1], np.int64))]
    inputs = [tensor_value_info("data", ("N", 3, 4, 5))]
    if ir3:   # IR 3 lists every initializer among the graph inputs
        inputs.append(helper.make_tensor_value_info("flat_shape", onnx.TensorProto.INT64, [2]))
    graph = helper.make_graph(nodes, "scale_relu", inputs, [helper.make_empty_tensor_value_info("flat")],
                              initializer=inits)
    model = make_model(graph, opset)
    if ir3:
        model.ir_version = 3
    return model, w


def expected_grad(w, top_diff):
    mask = (X * w.reshape(3, 1, 1)) > 0
    return top_diff.reshape(X.shape) * mask * w.reshape(3, 1, 1)


@pytest.mark.parametrize("opset", [7, 9, 11, 13, 17, 21])
def test_opsets_fold_constant_weights(opset):
    model, w = scale_relu_model(opset=max(opset, 7))
    normalised = load_model(model)
    assert "Constant" not in [n.op_type for n in normalised.graph.node]
    assert {"w"} <= {t.name for t in normalised.graph.initializer}
    net = Net(model, device="cpu")
    out = net.forward(data=X)["flat"]
    assert out.shape == (2, 60)
    g = RNG.standard_normal(out.shape).astype(np.float32)
    grad = net.backward(flat=g)["data"]
    np.testing.assert_allclose(grad, expected_grad(w, g), rtol=1e-6)


def test_ir3_initializers_listed_as_inputs():
    model, w = scale_relu_model(opset=8, ir3=True)
    net = Net(model, device="cpu")
    assert net.inputs == ["data"]
    out = net.forward(data=X)["flat"]
    grad = net.backward(flat=np.ones_like(out))["data"]
    np.testing.assert_allclose(grad, expected_grad(w, np.ones_like(out)), rtol=1e-6)


def test_model_from_path_and_bytes(tmp_path):
    model, _ = scale_relu_model()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    a = Net(str(path), device="cpu").forward(data=X)["flat"]
    b = Net(model.SerializeToString(), device="cpu").forward(data=X)["flat"]
    np.testing.assert_array_equal(a, b)


def test_truncated_file(tmp_path):
    model, _ = scale_relu_model()
    data = model.SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.onnx"):
        Net(str(path), device="cpu")


def test_not_onnx(tmp_path):
    path = tmp_path / "photo.onnx"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ModelError, match="not"):
        Net(str(path), device="cpu")


def test_missing_and_empty_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Net(str(tmp_path / "nope.onnx"), device="cpu")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        Net(str(empty), device="cpu")


def test_unknown_ops_listed_with_their_nodes():
    nodes = [helper.make_node("Relu", ["data"], ["a"], name="r"),
             helper.make_node("Softsign", ["a"], ["b"], name="soft1"),
             helper.make_node("Softsign", ["b"], ["c"], name="soft2"),
             helper.make_node("LpNormalization", ["c"], ["d"], name="lp")]
    graph = helper.make_graph(nodes, "g", [tensor_value_info("data", (1, 3))],
                              [helper.make_empty_tensor_value_info("d")])
    with pytest.raises(UnsupportedOpError) as info:
        Net(make_model(graph, 13), device="cpu")
    message = str(info.value)
    assert "Softsign" in message and "'soft1'" in message and "'soft2'" in message and "LpNormalization" in message
    assert "\n" not in message


def test_int_side_branches_need_no_kernel():
    """Shape → Gather → Concat → Reshape: integer ops on the side of the diff path are fine."""
    nodes = [helper.make_node("Relu", ["data"], ["r"]),
             helper.make_node("Shape", ["r"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["r", "shape"], ["flat"])]
    inits = [initializer("zero", np.array(0, np.int64)), initializer("axes", np.array([0], np.int64)),
             initializer("minus1", np.array([-1], np.int64))]
    graph = helper.make_graph(nodes, "g", [tensor_value_info("data", ("N", 3, 4, 5))],
                              [helper.make_empty_tensor_value_info("flat")], initializer=inits)
    net = Net(make_model(graph, 13), device="cpu")
    out = net.forward(data=X)["flat"]
    grad = net.backward(flat=np.ones_like(out))["data"]
    np.testing.assert_array_equal(grad, (X > 0).astype(np.float32))
