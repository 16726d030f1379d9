"""ONNX Model Zoo files as they are (issue "Models", §4).

Each Caffe-lineage family of the zoo, built small in its original encoding (``tests/helpers/zoo.py``) at
every opset the zoo published it in, must:

* be the encoding it claims (IR 3 / listed initializers, is_test, consumed_inputs, broadcast=1,
  Reshape's shape attribute, spatial, …), so the importer is really tested on it;
* load into ``Net``, normalised to opset ≥ 7 with no initializer inputs and no constant subgraph;
* forward as ONNX Runtime runs the normalised file (max |Δ| ≤ 1e-5 · max(1, max |logit|): both are
  ONNX Runtime float32, in differently optimised sessions) and as the float64 PyTorch interpreter
  runs the *raw* newest encoding of the same weights (same bound): the upgrade kept the meaning;
* back-propagate the logits' diff under backprop, deconvnet and guided to an input diff within
  relative L2 1e-4 of the float64 oracle (masks and switches from our forward). The oracle covers
  every op these nets use, so no finite-difference fallback is needed.

Then the importer's rewrites one at a time: legacy broadcast with and without a symbolic batch,
BatchNormalization's spatial=0 with per-channel parameters, and a graph that hard-codes batch 1
fed two images.
"""
import functools

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from caffe_port import Net
from caffe_port.errors import ModelError
from caffe_port.onnx_import import load_model
from caffe_port.onnx_util import ir_for_opset
from caffe_port.bench.torch_peer import TorchNet
from helpers import zoo
from helpers.onnx_models import run_onnxruntime
from helpers.torch_reference import reference_input_grad

torch = pytest.importorskip("torch")

RULES = ("backprop", "deconvnet", "guided")
GRAD_TOL = 1e-4       # relative L2 of the input diff vs the float64 oracle
LOGIT_TOL = 1e-5      # max |Δlogit| ≤ LOGIT_TOL · max(1, max |logit|)

# reduced width and input size; sizes keep Caffe's ceil pooling non-trivial and the maps even where
# the Caffe2 exporter's end pads would otherwise reach the kernel size
SMALL = {
    "bvlc_alexnet": dict(width=1 / 16, input_size=99),
    "bvlc_reference_caffenet": dict(width=1 / 16, input_size=99),
    "bvlc_reference_rcnn_ilsvrc13": dict(width=1 / 16, input_size=99),
    "bvlc_googlenet": dict(width=1 / 16, input_size=99),
    "inception_v1": dict(width=1 / 16, input_size=99),
    "inception_v2": dict(width=1 / 16, input_size=64),
    "densenet121": dict(width=1 / 8, input_size=45),
    "resnet50_caffe2": dict(width=1 / 16, input_size=61),
    "resnet50_v1": dict(width=1 / 16, input_size=61),
    "resnet50_v2": dict(width=1 / 16, input_size=61),
    "squeezenet1_0": dict(width=1 / 8, input_size=67),
    "squeezenet1_1": dict(width=1 / 8, input_size=67),
    "shufflenet": dict(width=1 / 8, input_size=59),
    "shufflenet_v2": dict(width=1 / 8, input_size=59),
    "vgg16": dict(width=1 / 16, input_size=64, pooled=1),
    "vgg19": dict(width=1 / 16, input_size=64),
    "vgg19_caffe2": dict(width=1 / 16, input_size=64),
    "zfnet512": dict(width=1 / 16, input_size=101),
}
STYLE = {"resnet50_v1": "mxnet", "resnet50_v2": "mxnet", "squeezenet1_1": "mxnet",
         "vgg16": "torch", "vgg19": "torch", "shufflenet_v2": "torch"}
OPSETS = {"mxnet": (7,), "torch": (9,), "caffe2": zoo.STYLE_OPSETS["caffe2"]}
CASES = [(name, opset) for name in SMALL
         for opset in ((10,) if name == "shufflenet_v2" else OPSETS[STYLE.get(name, "caffe2")])]
NUM_CLASSES = 10


def build(name, opset, **overrides):
    return zoo.ZOO[name](opset=opset, **{**SMALL[name], "num_classes": NUM_CLASSES, **overrides})


def image(model, n=1, seed=0):
    """Caffe-lineage nets take mean-subtracted pixels (±50 here, so LRN is not the identity);
    MXNet and torch ones normalised pixels (±1)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = (n,) + tuple(d.dim_value for d in dims[1:])
    scale = 50.0 if model.producer_name == "onnx-caffe2" else 1.0
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def rel_l2(got, expected):
    return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))


def attrs_of(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class Case:
    """One family at one opset: the raw model, its normalised form, a Net with one forward done."""

    def __init__(self, name, opset, batch=1, n=1):
        self.model = build(name, opset, batch=batch)
        self.normalised = load_model(self.model)
        self.input = self.model.graph.input[0].name
        self.x = image(self.model, n)
        self.logits = zoo.logits_blob(self.normalised)
        self.net = Net(self.model, device="cpu")
        self.outputs = self.net.forward(**{self.input: self.x})
        shape = self.net.blobs[self.logits].data.shape
        self.top_diff = np.random.default_rng(1).standard_normal(shape).astype(np.float32)

    def diff(self, rule):
        return self.net.backward(rule=rule, **{self.logits: self.top_diff})[self.input]


@functools.lru_cache(maxsize=None)
def case(name, opset):
    return Case(name, opset)


# --- the encodings are the zoo's -------------------------------------------------------------------

@pytest.mark.parametrize("name,opset", CASES)
def test_encoding_is_the_zoo_files(name, opset):
    model = build(name, opset)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == opset
    assert model.ir_version == (3 if STYLE.get(name, "caffe2") != "torch" else ir_for_opset(opset))
    inputs = {i.name for i in model.graph.input}
    assert {t.name for t in model.graph.initializer} <= inputs          # initializers listed as inputs
    assert len(inputs) == len(model.graph.initializer) + 1
    ops = {n.op_type for n in model.graph.node}
    for node in model.graph.node:
        a = attrs_of(node)
        if node.op_type == "BatchNormalization":
            assert ("consumed_inputs" in a) == (opset < 6)
            assert a.get("is_test") == (1 if opset < 7 else None)
            if STYLE.get(name) == "mxnet":
                assert a["spatial"] == 0 and all(len(t.dims) == 1 for t in model.graph.initializer
                                                 if t.name in node.input[1:])
            else:
                assert a.get("spatial") == (1 if 7 <= opset < 9 else None)
        if node.op_type == "Dropout":
            assert a["ratio"] > 0 and a.get("is_test") == (1 if opset < 7 else None)
        if node.op_type == "Gemm":
            assert a["transB"] == 1 and a.get("broadcast") == (1 if opset < 7 else None)

        if node.op_type == "Reshape":
            assert (len(node.input), "shape" in a) == ((1, True) if opset < 5 else (2, False))
        if node.op_type in ("Mul", "Add") and opset < 7 and name in ("densenet121", "inception_v2"):
            assert a == {"broadcast": 1, "axis": 1}
        if node.op_type in ("MaxPool", "AveragePool") and STYLE.get(name, "caffe2") == "caffe2":
            assert "ceil_mode" not in a
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    if gemms and STYLE.get(name, "caffe2") == "caffe2":
        # the first FC reads a map: flattened by a Reshape from opset 6, handed over as it is at 3
        producer = next(n for n in model.graph.node if gemms[0].input[0] in n.output)
        assert (producer.op_type == "Reshape") == (opset >= 6)
    if name in ("densenet121", "inception_v2") and opset >= 7:
        assert "Unsqueeze" in ops                  # Scale layers by constant subgraphs
    if name in ("shufflenet", "shufflenet_v2"):
        assert {"Transpose", "Reshape"} <= ops
    if name in ("resnet50_caffe2", "shufflenet"):
        assert "Sum" in ops


def test_caffe_ceil_pooling_is_asymmetric_padding():
    model = build("bvlc_reference_caffenet", 3)
    pool1 = next(n for n in model.graph.node if n.op_type == "MaxPool")
    # conv1 at 99: (99 − 11)/4 + 1 = 23; Caffe pools 3/2 to ceil(20/2) + 1 = 11, ONNX's floor to 11 only
    # with an end pad; the Caffe2 exporter's pad_end = 11·2 − 0 − 1 + 3 − 23 = 1
    assert attrs_of(pool1)["pads"] == [0, 0, 1, 1]
    assert zoo.caffe2_pool_pads(54, 3, 2, 0) == (27, 0, 2)          # AlexNet's pool1 at 224
    with pytest.raises(ValueError, match="end pad"):
        zoo.caffe2_pool_pads(45, 2, 2, 0)                           # 2 ≥ kernel: ORT would refuse the file


# --- load, forward, backward --------------------------------------------------------------------------

@pytest.mark.parametrize("name,opset", CASES)
def test_loads_normalised(name, opset):
    c = case(name, opset)
    g = c.normalised.graph
    assert c.normalised.opset_import[0].version >= 7 and c.normalised.ir_version >= 3
    assert [i.name for i in g.input] == [c.input] and c.net.inputs == [c.input]
    # the listing of initializers gone, the file is IR 4, where inference sees every weight
    assert c.normalised.ir_version >= 4
    inferred = onnx.shape_inference.infer_shapes(c.normalised, strict_mode=True, data_prop=True)
    shaped = {v.name for v in list(inferred.graph.value_info) + list(inferred.graph.output)
              if v.type.tensor_type.HasField("shape")}
    if "Shape" not in {n.op_type for n in g.node}:    # a traced view's shape is known at run time only
        assert {n.output[0] for n in g.node} <= shaped      # (Dropout-7's unused masks are not inferred)
    constants = {t.name for t in g.initializer}
    for node in g.node:
        assert not all(i in constants for i in node.input if i), f"constant subgraph left: {node}"
        assert "broadcast" not in attrs_of(node) and "is_test" not in attrs_of(node)
        if node.op_type == "BatchNormalization" and c.normalised.opset_import[0].version < 9:
            assert attrs_of(node).get("spatial", 1) == 1


@pytest.mark.parametrize("name,opset", CASES)
def test_forward_matches_onnxruntime_and_the_newest_encoding(name, opset):
    c = case(name, opset)
    ours = c.net.blobs[c.logits].data
    bound = LOGIT_TOL * max(1.0, float(np.abs(ours).max()))
    ort = run_onnxruntime(c.normalised, {c.input: c.x})
    assert np.abs(c.outputs[c.net.outputs[0]] - ort[0]).max() <= bound
    # the same weights in the newest encoding, run raw (no import) by the float64 interpreter
    newest = build(name, max(o for n, o in CASES if n == name))
    reference = TorchNet(newest, dtype="float64")
    reference.forward(**{c.input: c.x})
    expected = reference.blob(c.logits)
    assert ours.shape == expected.shape
    assert np.abs(ours - expected).max() <= bound


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name,opset", CASES)
def test_backward_matches_oracle(name, opset, rule):
    c = case(name, opset)
    got = c.diff(rule)
    expected = reference_input_grad(c.normalised, c.x, c.logits, c.top_diff, rule, kept=c.net.blobs)
    assert got.shape == c.x.shape and got.dtype == np.float32 and np.any(got)
    error = rel_l2(got, expected)
    assert error <= GRAD_TOL, f"{name} opset {opset} {rule}: relative L2 {error:.2e}"


class _Sample:
    """Net.blobs seen through one image of the batch, for the oracle of a batch-1 graph."""

    def __init__(self, blobs, n):
        self.blobs, self.n = blobs, n

    def __getitem__(self, name):
        return self.blobs[name].data[self.n:self.n + 1]


@pytest.mark.parametrize("name,opset", [("shufflenet", 3), ("bvlc_alexnet", 6), ("shufflenet_v2", 10)])
def test_symbolic_batch_over_hard_coded_reshapes(name, opset):
    """A file whose input says N but whose Reshapes say 1 (channel shuffles, Caffe2's FC reshape)
    runs image by image; diffs equal each image's own oracle."""
    c = Case(name, opset, batch=None, n=2)
    assert c.net.runtime.per_sample
    one = Net(build(name, opset), device="cpu")
    for n in range(2):
        alone = one.forward(**{c.input: c.x[n:n + 1]})[one.outputs[0]]
        np.testing.assert_allclose(c.outputs[c.net.outputs[0]][n:n + 1], alone, rtol=1e-5, atol=1e-6)
    for rule in RULES:
        got = c.diff(rule)
        for n in range(2):
            expected = reference_input_grad(c.normalised, c.x[n:n + 1], c.logits, c.top_diff[n:n + 1], rule,
                                            kept=_Sample(c.net.blobs, n))
            assert rel_l2(got[n:n + 1], expected) <= GRAD_TOL


# --- the importer's rewrites, one at a time ------------------------------------------------------------

def legacy_affine(opset, op_type, axis, b_shape, batch):
    """x (batch, 3, 4, 5) → Relu → op_type(·, B, broadcast=1[, axis]) in opset ``opset``'s encoding."""
    rng = np.random.default_rng(3)
    b = (rng.uniform(0.5, 1.5, b_shape)).astype(np.float32)
    legacy = dict(broadcast=1) if axis is None else dict(broadcast=1, axis=axis)
    old = dict(consumed_inputs=[0]) if opset < 6 else {}
    nodes = [helper.make_node("Relu", ["data"], ["relu"], **old),
             helper.make_node(op_type, ["relu", "b"], ["y"], **legacy,
                              **(dict(consumed_inputs=[0, 0]) if opset < 6 else {}))]
    graph = helper.make_graph(nodes, "affine", [helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT,
                                                                             [batch, 3, 4, 5]),
                                                helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT,
                                                                             list(b_shape))],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 3
    # the legacy rule: B's axes sit at A's axes axis … axis + k − 1 (trailing when axis is absent)
    start = 4 - len(b_shape) if axis is None else axis % 4
    aligned = b.reshape((1,) * start + b_shape + (1,) * (4 - start - len(b_shape)))
    return model, aligned


@pytest.mark.parametrize("batch", [2, "N"])
@pytest.mark.parametrize("axis,b_shape", [(1, (3,)), (1, (3, 4)), (2, (4, 5)), (0, (2, 3)), (-3, (3,)),
                                          (None, (4, 5))])
@pytest.mark.parametrize("opset", [1, 3, 5, 6])
def test_legacy_broadcast_is_aligned_at_axis(opset, axis, b_shape, batch):
    """ONNX's own 6→7 adapter would unsqueeze B at axes k … r−1 whatever the axis (right only for
    axis 0), needs every shape known (opset-1 schemas infer none) and every dimension fixed."""
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 5)).astype(np.float32)
    for op_type, fn in (("Mul", np.multiply), ("Add", np.add), ("Sub", np.subtract), ("Div", np.divide)):
        model, aligned = legacy_affine(opset, op_type, axis, b_shape, batch)
        net = Net(model, device="cpu")
        y = net.forward(data=x)["y"]
        np.testing.assert_allclose(y, fn(np.maximum(x, 0), aligned), rtol=1e-6)
        top_diff = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
        grad = net.backward(y=top_diff)["data"]
        local = {"Mul": aligned, "Add": 1.0, "Sub": 1.0, "Div": 1 / aligned}[op_type]
        np.testing.assert_allclose(grad, top_diff * local * (x > 0), rtol=1e-6)
        assert [i.dim_param or i.dim_value for i in
                net.graph.input_info["data"].type.tensor_type.shape.dim][0] == batch


def test_legacy_broadcast_that_cannot_fit_names_the_node():
    model, _ = legacy_affine(6, "Mul", 3, (4, 5), 2)     # (4, 5) at axis 3 of a rank-4 A
    model.graph.node[1].name = "scale3"
    with pytest.raises(ModelError, match="scale3.*does not fit"):
        Net(model, device="cpu")


def test_legacy_broadcast_of_unknown_rank_names_the_node():
    """A's rank unknown (a Reshape to a shape fed at run time): the rewrite cannot place B."""
    nodes = [helper.make_node("Reshape", ["data", "shape"], ["r"]),
             helper.make_node("Mul", ["r", "b"], ["y"], name="scale", broadcast=1, axis=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, [2, 12]),
                                           helper.make_tensor_value_info("shape", onnx.TensorProto.INT64, [None])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(np.ones(3, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)])
    model.ir_version = 3
    with pytest.raises(ModelError, match="'scale'.*rank"):
        load_model(model)


@pytest.mark.parametrize("listed", [True, False])
@pytest.mark.parametrize("opset", [3, 6])
def test_gemm_fed_a_map_flattens_it(opset, listed):
    """Caffe2's opset-3 FC exports: Gemm(A = (N, C, H, W) map); Caffe2's FC flattened at axis 1.
    (``listed``: the IR-3 file lists its initializers among the inputs, as it should.)"""
    rng = np.random.default_rng(9)
    w = rng.standard_normal((5, 3 * 4 * 2)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    nodes = [helper.make_node("Relu", ["data"], ["pool5"]),
             helper.make_node("Gemm", ["pool5", "fc6_w", "fc6_b"], ["fc6"], name="fc6", transB=1, broadcast=1)]
    graph = helper.make_graph(nodes, "fc", [helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT,
                                                                         ["N", 3, 4, 2])],
                              [helper.make_tensor_value_info("fc6", onnx.TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(w, "fc6_w"), numpy_helper.from_array(b, "fc6_b")])
    if listed:
        graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in graph.initializer)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 3
    x = rng.standard_normal((2, 3, 4, 2)).astype(np.float32)
    net = Net(model, device="cpu")
    flat = np.maximum(x, 0).reshape(2, -1)
    np.testing.assert_allclose(net.forward(data=x)["fc6"], flat @ w.T + b, rtol=1e-5, atol=1e-5)
    top_diff = rng.standard_normal((2, 5)).astype(np.float32)
    np.testing.assert_allclose(net.backward(fc6=top_diff)["data"], (top_diff @ w).reshape(x.shape) * (x > 0),
                               rtol=1e-5, atol=1e-6)


def old_batchnorm_model(opset, outputs=1, **attrs):
    """x → BatchNormalization (per channel, opset < 7 attributes) → Relu."""
    rng = np.random.default_rng(10)
    s, b, m = (rng.standard_normal(3).astype(np.float32) for _ in range(3))
    v = rng.uniform(0.5, 2.0, 3).astype(np.float32)
    tops = ["bn", "running_mean", "running_var", "saved_mean", "saved_var"][:outputs]
    nodes = [helper.make_node("BatchNormalization", ["data", "s", "b", "m", "v"], tops, name="bn_conv1",
                              epsilon=1e-5, **attrs),
             helper.make_node("Relu", ["bn"], ["relu"])]
    inits = [numpy_helper.from_array(a, n) for a, n in zip((s, b, m, v), "sbmv")]
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT,
                                                                         [2, 3, 4, 5])],
                              [helper.make_tensor_value_info("relu", onnx.TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 3
    gain = (s / np.sqrt(v + 1e-5)).reshape(3, 1, 1)
    return model, lambda x: (x - m.reshape(3, 1, 1)) * gain + b.reshape(3, 1, 1), gain


@pytest.mark.parametrize("attrs", [{}, {"is_test": 0}], ids=["default", "explicit"])
@pytest.mark.parametrize("opset", [3, 6])
def test_old_batchnorm_in_training_mode_is_refused(opset, attrs):
    """is_test=0 (the default) normalises by batch statistics; ONNX's converter would make the
    node an inference one without a word (default) or fail on an assertion (explicit)."""
    extra = {"consumed_inputs": [0, 0, 0, 1, 1]} if opset < 6 else {}
    model, _, _ = old_batchnorm_model(opset, **attrs, **extra)
    with pytest.raises(ModelError, match="'bn_conv1'.*is_test=0 means training mode"):
        Net(model, device="cpu")


def test_old_batchnorm_test_mode_statistics_outputs_go():
    """Opset 6 test mode may list the statistics outputs; kept at opset 7 they would make ONNX
    Runtime normalise by the batch (a different forward) and the kernel refuse the node."""
    model, expected, gain = old_batchnorm_model(6, outputs=5, is_test=1)
    x = np.random.default_rng(11).standard_normal((2, 3, 4, 5)).astype(np.float32)
    net = Net(model, device="cpu")
    assert [len(n.outputs) for n in net.graph.nodes] == [1, 1]
    np.testing.assert_allclose(net.forward(data=x)["relu"], np.maximum(expected(x), 0), rtol=1e-5, atol=1e-6)
    top_diff = np.ones((2, 3, 4, 5), np.float32)
    np.testing.assert_allclose(net.backward(relu=top_diff)["data"], gain * (expected(x) > 0), rtol=1e-5)


@pytest.mark.parametrize("opset", [5, 6])
def test_old_dropout_is_test_0_is_the_identity(opset):
    """The converter asserts is_test=1; a deployed Dropout is the identity either way."""
    nodes = [helper.make_node("Dropout", ["data"], ["drop"], name="drop6", is_test=0, ratio=0.5)]
    graph = helper.make_graph(nodes, "drop", [helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("drop", onnx.TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 3
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    net = Net(model, device="cpu")
    np.testing.assert_array_equal(net.forward(data=x)["drop"], x)
    np.testing.assert_array_equal(net.backward(drop=np.full((2, 3), 2.0, np.float32))["data"], np.full((2, 3), 2.0))


def batchnorm_model(spatial, param_shape, opset=7):
    rng = np.random.default_rng(6)
    params = [rng.uniform(0.5, 1.5, param_shape).astype(np.float32),
              (rng.standard_normal(param_shape) * 0.1).astype(np.float32),
              (rng.standard_normal(param_shape) * 0.1).astype(np.float32),
              rng.uniform(0.5, 2.0, param_shape).astype(np.float32)]
    node = helper.make_node("BatchNormalization", ["data", "s", "b", "m", "v"], ["y"], name="bn_data",
                            epsilon=1e-5, momentum=0.9, spatial=spatial)
    graph = helper.make_graph([node], "bn", [helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT,
                                                                         ["N", 3, 4, 5])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(p, n) for p, n in zip(params, "sbmv")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 3
    shape = param_shape + (1,) * (3 - len(param_shape))
    s, b, m, v = (p.reshape(shape) for p in params)
    return model, lambda x: (x - m) / np.sqrt(v + 1e-5) * s + b


def test_mxnet_spatial0_with_channel_parameters_is_per_channel():
    model, expected = batchnorm_model(0, (3,))
    x = np.random.default_rng(7).standard_normal((2, 3, 4, 5)).astype(np.float32)
    with pytest.raises(Exception, match="scale"):      # as exported, ONNX Runtime refuses it
        run_onnxruntime(model, {"data": x})
    net = Net(model, device="cpu")
    np.testing.assert_allclose(net.forward(data=x)["y"], expected(x), rtol=1e-5, atol=1e-6)
    top_diff = np.ones((2, 3, 4, 5), np.float32)
    grad = net.backward(y=top_diff)["data"]
    np.testing.assert_allclose(grad, expected(top_diff) - expected(np.zeros_like(top_diff)), rtol=1e-5)


def test_spatial0_with_activation_parameters_stays():
    model, expected = batchnorm_model(0, (3, 4, 5))
    assert attrs_of(load_model(model).graph.node[0])["spatial"] == 0
    x = np.random.default_rng(8).standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(Net(model, device="cpu").forward(data=x)["y"], expected(x), rtol=1e-5, atol=1e-6)
