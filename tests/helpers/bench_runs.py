"""``tools/bench_backward.py`` (the same code as ``caffe-port bench``) run as a user runs it, on
options small enough for a test: one thread, one repeat, a 128² sgemm, no start-up timings."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "bench_backward.py")
TINY_OPTIONS = ("--batch", "2", "--threads", "1", "--repeats", "1", "--no-startup", "--sgemm-size", "128",
                "--device", "cpu")


def run_bench(*args, env=None, cwd=None):
    """The finished process (text output) of ``bench_backward.py ARGS``."""
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, env=env, cwd=cwd)
