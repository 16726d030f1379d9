"""The Ray engine (``--engine ray``, the ``ray`` extra): the same Worker, on a pool of Ray actors.

    items ──ray.data.from_items──▶ map_batches(decode_batch)          tasks: read + pre-process
          ──map_batches(Explainer, concurrency=actors)──▶ results     actors: one Net each, loaded once
          ──iter_batches──▶ the driver's Store                        maps and rows written here only

Every actor builds a ``Worker`` from the same ``Settings`` and runs ``Worker.explain`` on the
batches it is handed, so its rows and maps are those of the local engine. Results travel back
to the driver pickled (maps included) and only the driver writes DIR: the output folder need not
be shared, but each worker must read the images (the same paths: a shared file system) and the
model (the same path, or the embedded model, whose weights come with caffe_port's
dependencies; a model given as bytes travels with the settings).

A worker process that dies is restarted by Ray and its batch run again (``max_restarts``,
``max_task_retries``); a batch's results reach the driver once, when its task completes, and the
Store keys rows by image, so a retried batch neither loses nor doubles rows.

``address`` joins a running cluster (``ray start --head`` on one machine, ``ray start
--address=HEAD:6379`` on the others; then ``--ray-address HEAD:6379`` or ``auto``); without it
a local Ray is started on this machine, bound to the loopback interface, and stopped at the end.
"""
from __future__ import annotations

import os
import pickle

import pyarrow as pa

from caffe_port.batch.inputs import Item
from caffe_port.batch.worker import Worker, decode
from caffe_port.errors import InputError


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is the ray[data] part of the extra)
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'caffe_port[ray]'") from None
    return ray


def _items(batch):
    return [Item(row["image"], row["path"], row["label"]) for row in batch.to_pylist()]


def decode_batch(batch, preset):
    """Ray Data stage 1: a pyarrow batch of items → their pickled ``Decoded``."""
    decoded = [pickle.dumps(decode(item, preset), protocol=5) for item in _items(batch)]
    return pa.table({"decoded": pa.array(decoded, pa.large_binary())})


class Explainer:
    """Ray Data stage 2, one per actor: a Worker loaded once, explaining the batches it gets."""

    def __init__(self, settings):
        self.worker = Worker(settings)

    def __call__(self, batch):
            decoded = [pickle.loads(b) for b in batch.column("decoded").to_pylist()]
        results = self.worker.explain(decoded)
        return pa.table({"result": pa.array([pickle.dumps(r, protocol=5) for r in results],
                                            pa.large_binary())})


class RayEngine:
    """Batches of ImageResults computed by Ray actors (module docstring).

    settings:  worker.Settings
    address:   a cluster to join (None: start a local Ray on this machine)
    actors:    how many actors, each with one Net (default: the cluster's CPUs / threads per Net)
    explainer: the actor class (Explainer, or a subclass)
    """

    name = "ray"

    def __init__(self, settings, address=None, actors=None, explainer=Explainer):
        self.ray = _ray()
        self.settings = settings
        self.explainer = explainer
        self._started = False
        if not self.ray.is_initialized():
            if address:
                self.ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:
                # a private cluster for this run: loopback only, no dashboard, a small object store
                self.ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                              _node_ip_address="127.0.0.1", object_store_memory=512 * 2**20)
            self._started = True
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        per_net = settings.threads or os.cpu_count() or 1
        self.actors = int(actors) if actors else max(1, cpus // per_net)
        if self.actors < 1:
            raise InputError(f"--actors must be at least 1, got {actors}")

    def batches(self, items):
        """Yield [ImageResult] per batch, as the actors finish them (not in the items' order)."""
        rows = [{"image": i.image, "path": i.path, "label": i.label} for i in items]
        if not rows:
            return
        data = self.ray.data
        size = self.settings.batch_size
        ds = data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // size)))
        ds = ds.map_batches(decode_batch, batch_size=size, batch_format="pyarrow",
                            fn_kwargs={"preset": self.settings.preset}, num_cpus=0.25)
        # one logical CPU per actor: the Net's own threads are --threads, not Ray's to count
        ds = ds.map_batches(self.explainer, batch_size=size, batch_format="pyarrow",
                            fn_constructor_kwargs={"settings": self.settings}, concurrency=self.actors,
                            num_cpus=1, max_restarts=-1, max_task_retries=-1)
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            yield [pickle.loads(b) for b in batch.column("result").to_pylist()]

    def close(self):
        if self._started:
            self.ray.shutdown()
            self._started = False
