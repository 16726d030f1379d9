"""The Ray engine on a local two-CPU Ray (loopback only): the local engine's rows and bit-identical
maps, and a worker killed in the middle of a batch costs neither a row nor a duplicate."""
import functools
import os

import numpy as np
import pytest

from caffe_port.batch.store import read_index
from caffe_port.methods import GradCAM, Saliency
from caffe_port.preprocess import preset
from helpers.image_sets import write_bad_files, write_photos

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
from caffe_port.batch import job  # noqa: E402
from caffe_port.batch.ray_engine import RayEngine  # noqa: E402
from helpers.ray_workers import dying_explainer  # noqa: E402

pytestmark = pytest.mark.ray
COLUMNS = ["image", "path", "method", "rank", "class", "name", "score", "prob", "label", "map", "box",
           "status", "height", "width"]


@pytest.fixture(scope="module")
def local_ray():
    tests = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (tests, saved) if p)   # helpers on the workers
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             object_store_memory=256 * 2**20)
    yield
    ray.shutdown()
    if saved is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = saved


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_set")
    photos = write_photos(str(root), 7)
    write_bad_files(str(root / "bad"), photos[:2])
    return str(root)


def run(images, out, model, engine, **kw):
    return job.run([images], out, model=model, preset=preset("torchvision", crop=67, resize=70),
                   methods={"saliency": Saliency, "gradcam": GradCAM}, top_k=2, batch_size=3,
                   threads=1, progress=False, engine=engine, **kw)


def same_results(a_dir, a, b_dir, b):
    assert a.select(COLUMNS).equals(b.select(COLUMNS))
    for name in a["map"].to_pylist():
        if name is not None:
            with open(os.path.join(a_dir, name), "rb") as fa, open(os.path.join(b_dir, name), "rb") as fb:
                assert fa.read() == fb.read(), name


def test_ray_gives_the_local_engines_rows_and_bit_identical_maps(local_ray, tmp_path, images, small_model):
    local = run(images, str(tmp_path / "local"), small_model, "local")
    remote = run(images, str(tmp_path / "ray"), small_model, functools.partial(RayEngine, actors=2))
    assert remote.num_rows == 7 * 2 * 2 + 4 * 2
    same_results(str(tmp_path / "local"), local, str(tmp_path / "ray"), remote)


def test_a_killed_worker_costs_no_row_and_doubles_none(local_ray, tmp_path, images, small_model):
    marker = str(tmp_path / "died")
    engine = functools.partial(RayEngine, actors=1, explainer=dying_explainer(marker))
    remote = run(images, str(tmp_path / "ray"), small_model, engine)
    assert os.path.exists(marker)                      # an actor did die in its first batch
    local = run(images, str(tmp_path / "local"), small_model, "local")
    keys = list(zip(remote["path"].to_pylist(), remote["method"].to_pylist(), remote["rank"].to_pylist()))
    assert len(keys) == len(set(keys)) == local.num_rows
    same_results(str(tmp_path / "local"), local, str(tmp_path / "ray"), read_index(str(tmp_path / "ray")))
    assert np.all(np.asarray(remote["commit"].to_pylist()) >= 1)
