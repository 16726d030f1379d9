"""Determinism and isolation: the same call gives bit-identical maps run to run; two Nets in two
threads give what each gives alone; one Net refuses a second thread instead of mixing two passes;
Numba's workqueue layer (which aborts on concurrent parallel kernels) is serialised."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from caffe_port import Net
from caffe_port.errors import CaffePortError
from caffe_port.methods import GuidedBackprop, Saliency
from caffe_port.models import builders

RULES = ("backprop", "deconvnet", "guided")


@pytest.fixture(scope="module")
def models():
    return (builders.caffenet(width=0.25, input_size=67, num_classes=10, seed=1),
            builders.residual_block(width=0.5, input_size=16, num_classes=7, seed=2))


def maps(net, seed):
    """Every rule's input diff for class 1 of a seeded batch of 2."""
    shape = net.graph.input_shape(net.inputs[0], batch=2)
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    scores = net.forward(**{net.inputs[0]: data})
    top = next(iter(scores))
    onehot = np.zeros_like(scores[top])
    onehot[:, 1] = 1
    return [net.backward(**{top: onehot}, rule=rule)[net.inputs[0]].copy() for rule in RULES]


def test_same_call_is_bit_identical_run_to_run(models):
    net = Net(models[0], device="cpu")
    first, again = maps(net, 0), maps(net, 0)
    other_net = maps(Net(models[0], device="cpu"), 0)
    for a, b, c in zip(first, again, other_net):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    data = np.random.default_rng(1).standard_normal((1, 3, 67, 67)).astype(np.float32)
    for method in (Saliency, GuidedBackprop):
        assert np.array_equal(method(net).attribute(data, target=3),
                              method(net).attribute(data, target=3))


def test_two_nets_in_two_threads_give_what_each_gives_alone(models):
    alone = [maps(Net(model, device="cpu"), k) for k, model in enumerate(models)]
    nets = [Net(model, device="cpu") for model in models]
    for _ in range(3):
        results = [None, None]
        start = threading.Barrier(2)

        def run(k):
            start.wait()
            results[k] = maps(nets[k], k)
        threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for expected, got in zip(alone, results):
            for a, b in zip(expected, got):
                assert np.array_equal(a, b)


def test_one_net_refuses_a_second_thread(models):
    net = Net(models[1], device="cpu")
    data = np.zeros(net.graph.input_shape(net.inputs[0], batch=1), np.float32)
    inside, release = threading.Event(), threading.Event()
    forward = net.backend.forward

    def slow_forward(*args, **kwargs):
        inside.set()
        release.wait(30)
        return forward(*args, **kwargs)
    net.backend.forward = slow_forward
    first = threading.Thread(target=net.forward, kwargs={net.inputs[0]: data})
    first.start()
    assert inside.wait(30)
    try:
        with pytest.raises(CaffePortError, match=r"in use by another thread \(forward\(\) refused\): "
                                                 r"a Net is not thread-safe"):
            net.forward(**{net.inputs[0]: data})
        with pytest.raises(CaffePortError, match="backward"):
            net.backward()
    finally:
        release.set()
        first.join()
    net.backend.forward = forward
    net.forward(**{net.inputs[0]: data})         # free again once the first pass is done
    assert net.backward()[net.inputs[0]].shape == data.shape


def test_workqueue_layer_walks_are_serialised(tmp_path):
    """Under NUMBA_THREADING_LAYER=workqueue two threads running parallel kernels at once abort
    the process ('Terminating: Nested parallel kernel launch detected'); the Net's lock makes
    them take turns."""
    script = tmp_path / "two_threads.py"
    script.write_text(f"""
import sys, threading
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
import numba, numpy as np
from caffe_port import Net
from caffe_port.models import builders
from test_isolation import maps
nets = [Net(builders.caffenet(width=0.25, input_size=67, num_classes=10, seed=k), device="cpu")
        for k in range(2)]
threads = [threading.Thread(target=lambda k=k: [maps(nets[k], k) for _ in range(3)]) for k in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
print(numba.threading_layer())
""")
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["workqueue"]
