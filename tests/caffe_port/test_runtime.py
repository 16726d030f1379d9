"""caffe_port/runtime.py: a large batch's forward split into calls of a few images."""
import numpy as np
import pytest
from onnx import helper

from caffe_port import Net, runtime
from caffe_port.onnx_util import initializer, make_model, tensor_value_info
from tests.caffe_port.test_net import small_classifier


def _calls(monkeypatch):
    """Record the batch of every IOBinding call the runtime makes."""
    seen = []
    bound = runtime.Runtime._bound_into

    def recording(self, sess, feeds, fetch, out):
        seen.append(next(iter(feeds.values())).shape[0])
        return bound(self, sess, feeds, fetch, out)

    monkeypatch.setattr(runtime.Runtime, "_bound_into", recording)
    return seen


@pytest.mark.parametrize("images, calls", [(0, [1] * 5), (2.5, [2, 2, 1]), (5, [5])])
def test_a_large_batch_runs_a_few_images_a_call(images, calls, monkeypatch):
    """Split or whole, the kept blobs and scores are the whole batch's, bit for bit; the budget
    is counted in the fetched tensors' bytes per image (room for no image still runs one)."""
    x = np.random.default_rng(1).standard_normal((5, 3, 8, 7)).astype(np.float32)
    whole = Net(small_classifier(), device="cpu", keep="all")
    expected = whole.forward(data=x)["prob"].copy()
    blobs = {name: whole.blobs[name].data.copy() for name in whole.blobs}
    per_image = sum(whole.blobs[name].data[0].nbytes for name in whole.blobs if name != "data")
    monkeypatch.setattr(runtime, "FORWARD_CHUNK_BYTES", int(images * per_image))
    net = Net(small_classifier(), device="cpu", keep="all")
    net.forward(data=x[:1])
    net.forward(data=x)                        # the blobs have their batch-5 memory from here on
    seen = _calls(monkeypatch)
    np.testing.assert_array_equal(net.forward(data=x)["prob"], expected)
    assert seen == calls
    for name, data in blobs.items():
        np.testing.assert_array_equal(net.blobs[name].data, data, err_msg=name)


def test_a_graph_with_its_batch_fixed_is_not_split(monkeypatch):
    """Only a symbolic batch is split: a graph declaring batch 4 gets its four images in one call."""
    nodes = [helper.make_node("Relu", ["data"], ["r"]), helper.make_node("Neg", ["r"], ["out"])]
    graph = helper.make_graph(nodes, "g", [tensor_value_info("data", (4, 3, 8, 7))],
                              [helper.make_empty_tensor_value_info("out")])
    monkeypatch.setattr(runtime, "FORWARD_CHUNK_BYTES", 1)
    net = Net(make_model(graph, 13), device="cpu", keep="all")
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 7)).astype(np.float32)
    net.forward(data=x)
    seen = _calls(monkeypatch)
    np.testing.assert_array_equal(net.forward(data=x)["out"], -np.maximum(x, 0))
    assert seen == [4]
