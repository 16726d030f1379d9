"""The walk's diff buffer (caffe_port/diff_pool.py): every walk gives the same bits with it as with
each kernel allocating its own diffs (exact equality: the same kernels add in the same order);
no two slots live at once in the same bytes; a chain needs its largest pair of adjacent diffs;
nothing the walk returns lives in the buffer."""
import numpy as np
import pytest

from caffe_port import Net, diff_pool
from caffe_port.kernels import registry
from caffe_port.models import builders

NETS = {  # a small one of each kind: chains, LRN, inception concats and splits, residual adds
    "vgg16": lambda: builders.vgg16(width=0.0625, input_size=32, num_classes=7),
    "caffenet": lambda: builders.caffenet(width=0.125, input_size=67, num_classes=7),
    "googlenet": lambda: builders.googlenet(width=0.125, input_size=64, num_classes=7),
    "residual": lambda: builders.residual_block(width=0.5, input_size=16, num_classes=7),
}


def _nets(name):
    model = NETS[name]()
    pooled, plain = Net(model, device="cpu"), Net(model, device="cpu")
    plain.backend.diff_memory = lambda *args: {}      # every kernel allocates its own diffs
    return pooled, plain


def _image(net, batch, seed=0):
    shape = net.graph.input_shape("data", batch=batch)
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("rule", ["backprop", "guided"])
def test_pooled_walks_give_the_same_bits(name, rule):
    pooled, plain = _nets(name)
    x = _image(pooled, 2)
    score = pooled.graph.score_blob()
    for net in (pooled, plain):
        net.forward(data=x)
    top = np.zeros((3,) + tuple(pooled.blobs[score].shape), np.float32)   # K = 3 stacked
    for k in range(3):
        top[k, :, k] = 1
    got = pooled.backward(**{score: top}, rule=rule)["data"]
    want = plain.backward(**{score: top}, rule=rule)["data"]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["googlenet", "residual"])
def test_every_blob_kept_and_observed(name):
    """keep="all" returns every diff (none may live in the buffer) and debug_info's observer reads
    each layer's diffs: the same bits as without the buffer."""
    model = NETS[name]()
    pooled = Net(model, device="cpu", keep="all", debug_info=True)
    plain = Net(model, device="cpu", keep="all", debug_info=True)
    plain.backend.diff_memory = lambda *args: {}
    x = _image(pooled, 1, seed=3)
    score = pooled.graph.score_blob()
    for net in (pooled, plain):
        net.forward(data=x)
        net.blobs[score].diff[...] = 0
        net.blobs[score].diff[0, 2] = 1
        net.backward(start=score)
    for blob in pooled.blobs:
        np.testing.assert_array_equal(pooled.blobs[blob].diff, plain.blobs[blob].diff)


def _plan(net, batch, keep=("data",), k=1):
    graph = net.graph
    shapes = graph.shapes({"data": graph.input_shape("data", batch=batch)})
    score = graph.score_blob()
    nodes = graph.nodes[:graph.producer[score].index + 1]
    injected = {score: np.zeros((k,) + tuple(shapes[score]), np.float32)}
    layout = diff_pool.plan(graph, nodes, injected, shapes, set(keep),
                            lambda op: registry.controls_of(net.backend.kernel(op)), True)
    return layout, shapes


@pytest.mark.parametrize("name", sorted(NETS))
def test_no_two_live_slots_share_bytes(name):
    layout, _ = _plan(Net(NETS[name](), device="cpu"), batch=3, k=2)
    slots = [s for given in layout.layers.values() for s in given if s is not None]
    assert slots
    for i, a in enumerate(slots):
        assert a.offset % diff_pool.ALIGN == 0 and a.offset + a.nbytes <= layout.size
        for b in slots[i + 1:]:
            if a.start <= b.end and b.start <= a.end and \
                    not (a.offset + a.nbytes <= b.offset or b.offset + b.nbytes <= a.offset):
                # only a diff laid over the top diff its layer reads, from one image before it
                top, over = (a, b) if a.start < b.start else (b, a)
                image = over.nbytes // (over.shape[0] * over.shape[1])
                assert over.start == top.end and over.offset + image <= top.offset, (a, b)


def test_a_chain_needs_its_largest_adjacent_pair():
    """VGG16's diffs grow towards the image. The largest two alive at once would be conv1_2's top
    and bottom diffs, both (N, 64, H, W), but the bottom one is laid over the top one from one
    image before it; the most then is pool1's diff beside relu1_2's and that one image."""
    net = Net(NETS["vgg16"](), device="cpu")
    layout, shapes = _plan(net, batch=2)
    largest = 4 * int(np.prod(shapes["conv1_2"]))
    assert layout.size == largest + largest // 2 + 4 * int(np.prod(shapes["pool1"]))
    total = sum(s.nbytes for given in layout.layers.values() for s in given if s is not None)
    assert total > 2.5 * layout.size      # the sum of all slots: what fresh arrays would take


def test_kept_blobs_get_no_slot():
    net = Net(NETS["vgg16"](), device="cpu")
    layout, _ = _plan(net, batch=1, keep=("data", "pool3", "relu2_2"))
    graph = net.graph
    for name, given in layout.layers.items():
        for i, slot in zip(graph.by_name[name].inputs, given):
            assert slot is None or i not in ("data", "pool3", "relu2_2")
    # pool3's diff is the Relu-free chain's: the MaxPool below pool3 writes relu3_3's diff into a slot
    assert layout.layers["pool3"][0] is not None


def test_returned_diffs_are_not_in_the_buffer():
    net = Net(NETS["googlenet"](), device="cpu")
    handed = []
    plan_memory = net.backend.diff_memory

    def recording(*args):
        memory = plan_memory(*args)
        handed.extend(a for given in memory.values() for a in given if a is not None)
        return memory

    net.backend.diff_memory = recording
    net.forward(data=_image(net, 2))
    score = net.graph.score_blob()
    top = np.ones((2,) + tuple(net.blobs[score].shape), np.float32)
    result = net.backward(**{score: top}, diffs=["pool2/3x3_s2", "conv1/7x7_s2"])
    assert handed
    for name, d in result.items():
        assert not any(np.shares_memory(d, a) for a in handed), name


def test_convolutions_laid_over_their_top_diffs(monkeypatch):
    """VGG16's 3×3 convolutions that keep their channels write their input diff over the top diff
    they read (out_overlaps_top), one image at a time: the same bits as into memory of their own."""
    from caffe_port import ort_conv
    seen = []
    route = ort_conv.ConvInputDiff.backward

    def recording(self, top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes,
                  out=None, out_overlaps_top=False):
        seen.append(out_overlaps_top)
        return route(self, top_diff, bottom_data, top_data, attrs, propagate_down=propagate_down,
                     bottom_shapes=bottom_shapes, out=out, out_overlaps_top=out_overlaps_top)

    monkeypatch.setattr(ort_conv.ConvInputDiff, "backward", recording)
    pooled, plain = _nets("vgg16")
    x = _image(pooled, 3, seed=4)
    for net in (pooled, plain):
        net.forward(data=x)
    top = np.ones((2,) + tuple(pooled.blobs["fc8"].shape), np.float32)
    seen.clear()
    got = pooled.backward(fc8=top)["data"]
    assert sum(seen) >= 5           # conv1_2, conv2_2, conv3_2, conv3_3, conv4_2 …
    np.testing.assert_array_equal(got, plain.backward(fc8=top)["data"])


def test_the_heap_goes_back_before_a_large_buffer(monkeypatch):
    """A buffer of TRIM_BYTES or more is mapped fresh: the heap's free pages are handed back first
    (once per walk), and a smaller one does without."""
    trims = []
    monkeypatch.setattr(diff_pool, "return_freed_heap", lambda: trims.append(1))
    net = Net(NETS["vgg16"](), device="cpu")
    x = _image(net, 2)
    net.forward(data=x)
    top = np.ones(tuple(net.blobs["fc8"].shape), np.float32)
    net.backward(fc8=top)
    assert trims == []
    monkeypatch.setattr(diff_pool, "TRIM_BYTES", 1)
    net.backward(fc8=top)
    assert trims == [1]


def test_returning_the_heap_is_harmless():
    from caffe_port.memory import return_freed_heap
    kept = np.arange(1 << 20, dtype=np.float32)
    return_freed_heap()
    assert kept[-1] == (1 << 20) - 1


def test_a_walk_of_the_same_shapes_reuses_its_plan(monkeypatch):
    """The layout is planned once per (layers, injected diffs, shapes, kept diffs): the second walk
    of one batch size plans nothing and gives the same bits; another batch size or another kept
    diff is planned afresh; the cache holds at most ``size`` plans."""
    net = Net(NETS["googlenet"](), device="cpu")
    planned = []
    real_plan = diff_pool.plan
    monkeypatch.setattr(diff_pool, "plan", lambda *args: planned.append(args) or real_plan(*args))
    score = net.graph.score_blob()

    def walk(batch, **kwargs):
        net.forward(data=_image(net, batch))
        top = np.ones((1,) + tuple(net.blobs[score].shape), np.float32)
        return net.backward(**{score: top}, **kwargs)["data"]

    first = walk(2)
    assert len(planned) == 1
    np.testing.assert_array_equal(walk(2), first)
    assert len(planned) == 1
    walk(1)
    walk(2, diffs=["pool2/3x3_s2"])
    assert len(planned) == 3
    net.backend.plans.size = 2
    walk(3)
    assert len(net.backend.plans) == 2
    walk(2)                                    # the oldest plan (batch 2, no extra diff) was dropped
    assert len(planned) == 5
