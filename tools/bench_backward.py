"""Benchmark caffe_port's backward pass against PyTorch, five separate passes and sgemm.

A thin wrapper over ``caffe_port.bench`` (the same as ``caffe-port bench``). From the repository
root, with the project installed (``pip install -e '.[test]'``):

    python tools/bench_backward.py                              # the full run: several minutes
    python tools/bench_backward.py --models vgg16 --batch 1 --threads 2 --profile
    python tools/bench_backward.py --json > bench.json          # then:
    python tools/bench_backward.py --load bench.json --plot bench.png

docs/benchmarks.md says what each column means and shows a full run.
"""
import os
import sys

if __name__ == "__main__":
    # run from a checkout without installing: the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from caffe_port.bench import main
    sys.exit(main())
