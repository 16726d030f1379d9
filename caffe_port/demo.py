"""A forward + backward pass on a built CaffeNet (random weights): the engine end to end.

    python -m caffe_port.demo
"""
import time

import numpy as np

from caffe_port import Net
from caffe_port.models.builders import caffenet


def main():
    t0 = time.perf_counter()
    net = Net(caffenet(seed=0), device="auto")
    image = np.random.default_rng(0).uniform(-1, 1, (1, 3, 227, 227)).astype(np.float32)
    t1 = time.perf_counter()
    scores = net.forward(data=image, blobs=["fc8"])["fc8"]
    top = int(scores[0].argmax())
    t2 = time.perf_counter()
    onehot = np.zeros_like(scores)
    onehot[0, top] = 1
    grad = net.backward(fc8=onehot)["data"]
    t3 = time.perf_counter()
    saliency_map = np.abs(grad[0]).max(axis=0)
    print(f"CaffeNet (random weights) on {net.device}: load {t1 - t0:.2f} s, "
          f"forward {1e3 * (t2 - t1):.0f} ms, backward {1e3 * (t3 - t2):.0f} ms (first run compiles)")
    print(f"class {top}: score {scores[0, top]:.3f}; saliency map {saliency_map.shape}, "
          f"max {saliency_map.max():.3g}, mean {saliency_map.mean():.3g}")


if __name__ == "__main__":
    main()
