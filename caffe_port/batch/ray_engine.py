"""The Ray engine (``--engine ray``, the ``ray`` extra): the same Worker, on a pool of Ray actors.

    batches of items ──ray.data.from_items──▶ map_batches(decode_batch)      tasks: read, pre-process
          ──map_batches(Explainer, ActorPoolStrategy(size=actors))──▶     actors: one Net each, loaded once
          ──iter_batches──▶ the driver's Store                            maps and rows written here only

A dataset row is one batch of the local engine's making (``batch_size`` consecutive items), and
every actor builds a ``Worker`` from the same ``Settings`` and runs ``Worker.explain`` on it, so
the same images share a forward in both engines: the rows and the maps' bytes are the local
engine's. Results travel back
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

import logging
import os
import pickle
import warnings

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


def _items(row):
    return [Item(image, path, label) for image, path, label in row["items"]]


def decode_batch(batch, preset):
    """Ray Data stage 1: rows of one batch of items each → the batch's pickled ``Decoded`` list."""
    decoded = [pickle.dumps([decode(item, preset) for item in _items(row)], protocol=5)
               for row in batch.to_pylist()]
    return pa.table({"decoded": pa.array(decoded, pa.large_binary())})


class Explainer:
    """Ray Data stage 2, one per actor: a Worker loaded once, explaining the batches it gets."""

    def __init__(self, settings):
        self.worker = Worker(settings)

    def __call__(self, batch):
        results = [pickle.dumps(self.worker.explain(pickle.loads(b)), protocol=5)
                   for b in batch.column("decoded").to_pylist()]
        return pa.table({"results": pa.array(results, pa.large_binary())})


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
            quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
            if address:
                self.ray.init(address=address, **quiet)
            else:
                # a private cluster for this run: loopback only, no dashboard, a small object store
                self.ray.init(num_cpus=os.cpu_count(), _node_ip_address="127.0.0.1",
                              object_store_memory=512 * 2**20, **quiet)
            self._started = True
        # the progress bar and the final line are caffe-port's; Ray Data's own would interleave
        context = self.ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        per_net = settings.threads or os.cpu_count() or 1
        self.actors = int(actors) if actors else max(1, cpus // per_net)
        if self.actors < 1:
            raise InputError(f"--actors must be at least 1, got {actors}")

    def batches(self, items):
        """Yield [ImageResult] per batch, as the actors finish them (not in the items' order)."""
        # one dataset row per batch of the local engine's making (consecutive items, batch_size
        # each): the same images share a forward in both engines, so their maps are bit-identical
        size = self.settings.batch_size
        rows = [{"items": [(i.image, i.path, i.label) for i in items[start:start + size]]}
                for start in range(0, len(items), size)]
        if not rows:
            return
        data = self.ray.data
        ds = data.from_items(rows, override_num_blocks=len(rows))
        # decoding is light beside the nets and runs beside them, as the local engine's threads
        # do: it asks for no CPU of Ray's, else actors holding every CPU would starve it
        ds = ds.map_batches(decode_batch, batch_size=1, batch_format="pyarrow",
                            fn_kwargs={"preset": self.settings.preset}, num_cpus=0,
                            compute=data.TaskPoolStrategy(size=max(2, self.actors)))
        # one logical CPU per actor: the Net's own threads are --threads, not Ray's to count.
        # Ray Data restarts a dead actor and retries its batch (max_restarts, max_task_retries = -1)
        ds = ds.map_batches(self.explainer, batch_size=1, batch_format="pyarrow",
                            fn_constructor_kwargs={"settings": self.settings}, num_cpus=1,
                            compute=data.ActorPoolStrategy(size=self.actors))
        with warnings.catch_warnings():
            # "fewer inputs than actors" when the set is small: true, and nothing to act on
            warnings.filterwarnings("ignore", category=UserWarning, module=r"ray\.data")
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for results in batch.column("results").to_pylist():
                    yield pickle.loads(results)

    def close(self):
        if self._started:
            self.ray.shutdown()
            self._started = False
