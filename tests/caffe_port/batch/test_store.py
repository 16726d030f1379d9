"""The output folder: a run interrupted at any write loses nothing it committed and leaves no row
without its map; reruns skip what is done; other settings are refused; a failing disk is one error."""
import errno
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from caffe_port.batch import job, store
from caffe_port.batch.store import StoreError, read_index
from caffe_port.errors import InputError
from caffe_port.methods import Saliency
from caffe_port.preprocess import preset
from helpers.image_sets import write_photos

PRESET = preset("torchvision", crop=67, resize=70)


def run(images, out, model, **kw):
    kw = {"preset": PRESET, "methods": {"saliency": Saliency}, "batch_size": 2, "progress": False, **kw}
    return job.run(images, out, model=model, **kw)


class Interrupt:
    """store.write_bytes that raises ``error`` on its ``at``-th call (0-based), as a kill there would."""

    def __init__(self, at, error=KeyboardInterrupt):
        self.at, self.error, self.calls = at, error, 0
        self.write = store.write_bytes

    def __call__(self, *args, **kwargs):
        if self.calls == self.at:
            self.calls += 1
            raise self.error() if isinstance(self.error, type) else self.error
        self.calls += 1
        return self.write(*args, **kwargs)


def check_rows_have_maps(out):
    table = read_index(out)
    for status, map_file in zip(table["status"].to_pylist(), table["map"].to_pylist()):
        assert status == "ok" and os.path.isfile(os.path.join(out, map_file))
        np.load(os.path.join(out, map_file))
    return table


def keys(table):
    return sorted(zip(table["path"].to_pylist(), table["method"].to_pylist(), table["rank"].to_pylist()))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_photos(str(tmp_path_factory.mktemp("photos")), 5)


@pytest.fixture(scope="module")
def clean(tmp_path_factory, photos, small_model):
    out = str(tmp_path_factory.mktemp("clean") / "out")
    table = run(photos, out, small_model, top_k=2)
    return out, table


def test_a_run_writes_one_row_per_image_method_and_class(clean, photos):
    out, table = clean
    assert table.num_rows == 10 and keys(table) == sorted((os.path.abspath(p), "saliency", k)
                                                          for p in photos for k in (1, 2))
    assert table.equals(pq.read_table(os.path.join(out, "index.parquet")).replace_schema_metadata(None))
    assert os.listdir(os.path.join(out, "parts")) == []                 # compacted
    check_rows_have_maps(out)
    for name in table["map"].to_pylist():
        folder = os.path.dirname(name)
        assert folder.startswith("maps/") and len(os.path.basename(folder)) == 3


@pytest.mark.parametrize("at", range(12))
def test_a_run_interrupted_at_any_write_loses_nothing(tmp_path, photos, small_model, clean, monkeypatch, at):
    out = str(tmp_path / "out")
    interrupt = Interrupt(at)
    monkeypatch.setattr(store, "write_bytes", interrupt)
    try:
        run(photos, out, small_model, top_k=2)
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(store, "write_bytes", interrupt.write)
    if os.path.exists(os.path.join(out, "batch.json")):
        check_rows_have_maps(out)
    assert not [f for _, _, files in os.walk(out) for f in files if f.endswith(".tmp")]
    table = run(photos, out, small_model, top_k=2)
    assert keys(table) == keys(clean[1])
    check_rows_have_maps(out)


def test_a_rerun_computes_only_what_is_not_done(tmp_path, photos, small_model):
    out = str(tmp_path / "out")
    run(photos[:3], out, small_model)
    before = {m: os.stat(os.path.join(out, m)).st_mtime_ns for m in read_index(out)["map"].to_pylist()}
    os.remove(os.path.join(out, read_index(out)["map"].to_pylist()[0]))    # a map lost: redone
    table = run(photos, out, small_model)
    assert table.num_rows == 5
    after = {m: os.stat(os.path.join(out, m)).st_mtime_ns for m in table["map"].to_pylist()}
    kept = [m for m in before if m in after and before[m] == after[m]]
    assert len(kept) == 2                                       # the two untouched images were skipped


def test_a_failed_image_is_retried_and_its_new_rows_replace_the_old(tmp_path, photos, small_model):
    out = str(tmp_path / "out")
    later = str(tmp_path / "later.jpg")
    run([photos[0]], out, small_model)
    (tmp_path / "list.txt").write_text("later.jpg\n")
    table = run([str(tmp_path / "list.txt")], out, small_model)
    assert "not found" in [s for s in table["status"].to_pylist() if s != "ok"][0]
    os.link(photos[0], later)
    table = run([str(tmp_path / "list.txt")], out, small_model)
    assert table["status"].to_pylist() == ["ok", "ok"] and table.num_rows == 2


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_what_was_committed(tmp_path, photos, small_model,
                                                                             monkeypatch):
    out = str(tmp_path / "out")
    full = Interrupt(6, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "maps/abc/x.npy"))
    monkeypatch.setattr(store, "write_bytes", full)
    with pytest.raises(StoreError) as e:
        run(photos, out, small_model)
    assert "No space left on device" in str(e.value) and "rerun" in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setattr(store, "write_bytes", full.write)
    assert read_index(out).num_rows == 2                   # the first batch committed
    check_rows_have_maps(out)
    assert run(photos, out, small_model).num_rows == 5


def test_a_compaction_cut_short_doubles_no_row(tmp_path, photos, small_model, monkeypatch):
    out = str(tmp_path / "out")
    monkeypatch.setattr(store.os, "remove", lambda path: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run(photos, out, small_model)
    monkeypatch.undo()
    assert os.listdir(os.path.join(out, "parts"))          # parts left that the index already holds
    table = read_index(out)
    assert table.num_rows == 5 and len(set(keys(table))) == 5
    assert run(photos, out, small_model).num_rows == 5


def test_other_settings_are_refused_unless_force_which_starts_over(tmp_path, photos, small_model):
    out = str(tmp_path / "out")
    run(photos[:2], out, small_model)
    with pytest.raises(InputError, match="other settings .*top_k.*--force"):
        run(photos[:2], out, small_model, top_k=2)
    assert read_index(out).num_rows == 2
    table = run(photos[:1], out, small_model, top_k=2, force=True)
    assert table.num_rows == 2 and set(table["rank"].to_pylist()) == {1, 2}
    assert len([f for _, _, fs in os.walk(os.path.join(out, "maps")) for f in fs]) == 2


def test_folders_that_are_not_ours_are_refused(tmp_path, photos, small_model):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="exists and is not a directory"):
        run(photos[:1], str(tmp_path / "file"), small_model)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(InputError, match="not a caffe-port batch folder"):
        run(photos[:1], str(tmp_path / "mine"), small_model)
    assert os.listdir(tmp_path / "mine") == ["thesis.tex"]


def test_one_writer_at_a_time(tmp_path, photos, small_model):
    out = str(tmp_path / "out")
    fingerprint = {"x": 1}
    with store.Store(out, fingerprint, ["saliency"]):
        with pytest.raises(InputError, match="another caffe-port batch"):
            store.Store(out, fingerprint, ["saliency"])
    store.Store(out, fingerprint, ["saliency"]).close()
