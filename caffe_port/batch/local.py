"""The local engine: one Net in this process; images decoded in a pool of threads while it runs.

OpenCV's decoding and resizing and the pre-processing's numpy work release the GIL, so threads
decode the next batch while the net runs the current one; ``prefetch`` bounds how many decoded
images wait (two batches), so memory does not grow with the image set.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from caffe_port.batch.worker import Worker


class LocalEngine:
    """Batches of ImageResults for a list of items, computed in this process.

    settings: worker.Settings
    net:      a loaded caffe_port.Net to use (default: loaded from the settings)
    workers:  decoding threads (default: the cores, at most 4)
    """

    name = "local"

    def __init__(self, settings, net=None, workers=None):
        self.worker = Worker(settings, net)
        self.workers = max(1, int(workers or min(4, os.cpu_count() or 1)))

    def batches(self, items):
        """Yield [ImageResult] per batch, in the items' order."""
        size = self.worker.settings.batch_size     # the Ray engine forms the same batches
        prefetch = 2 * size
        pending = deque()
        queue = iter(items)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="caffe-port-decode")
        try:
            def fill():
                while len(pending) < prefetch:
                    item = next(queue, None)
                    if item is None:
                        return
                    pending.append(pool.submit(self.worker.decode, item))
            fill()
            batch = []
            while pending:
                batch.append(pending.popleft().result())
                fill()
                if len(batch) == size:
                    yield self.worker.explain(batch)
                    batch = []
            if batch:
                yield self.worker.explain(batch)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self):
        self.worker.close()
