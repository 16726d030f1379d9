"""Outputs: every file checked before any is written; nothing of the user's overwritten without --force."""
import io
import os

import numpy as np
import pytest

from caffe_port.cli.outputs import Outputs, short_name, stem
from caffe_port.errors import InputError


def test_one_existing_file_stops_them_all(tmp_path, capsys):
    (tmp_path / "b.png").write_bytes(b"the user's")
    outputs = Outputs(str(tmp_path), force=False)
    outputs.png("a", np.zeros((2, 2), np.uint8))
    outputs.png("b", np.zeros((2, 2), np.uint8))
    outputs.npy("a", np.arange(3))
    with pytest.raises(InputError, match=r"b.png exists; pass --force"):
        outputs.write()
    assert os.listdir(tmp_path) == ["b.png"] and (tmp_path / "b.png").read_bytes() == b"the user's"
    Outputs(str(tmp_path), force=True).write()                      # nothing to write: nothing happens
    forced = Outputs(str(tmp_path), force=True)
    forced.png("b", np.zeros((2, 2), np.uint8))
    forced.write()
    assert capsys.readouterr().out == f"{tmp_path / 'b.png'}\n"
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_out_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    outputs = Outputs(str(tmp_path / "file"), force=True)
    outputs.npy("a", np.zeros(1))
    with pytest.raises(InputError, match="exists and is not a directory"):
        outputs.write()
    nested = Outputs(str(tmp_path / "new" / "dir"), force=False)
    nested.npy("a", np.zeros(1))
    nested.write()
    assert os.listdir(tmp_path / "new" / "dir") == ["a.npy"]


def test_names():
    assert stem("/photos/chelsea.jpg") == "chelsea" and stem("/photos/") == "image"
    assert short_name("tabby, tabby cat") == "tabby"


# ---- two processes writing into one --out (issue 17) ------------------------------------------

def _write_rounds(directory, writer, rounds, force):
    """One writer process: ``rounds`` times the same two names, content saying who and when."""
    import numpy as np
    from caffe_port.cli.outputs import Outputs
    from caffe_port.errors import InputError
    wrote = 0
    for k in range(rounds):
        outputs = Outputs(directory, force)
        picture = np.full((64, 96), writer * 40 + k % 40, np.uint8)
        outputs.png("map", picture)
        outputs.npy("map", np.full((256, 256), writer * 1000 + k, np.int64))
        try:
            outputs.write(stream=io.StringIO())
            wrote += 1
        except InputError:
            pass
    return wrote


def _whole(directory):
    """Both files, if present, decode whole (a PNG of one writer's grey, an .npy of one value)."""
    import cv2
    png, npy = os.path.join(directory, "map.png"), os.path.join(directory, "map.npy")
    if os.path.exists(png):
        picture = cv2.imread(png, cv2.IMREAD_UNCHANGED)
        assert picture is not None and picture.shape == (64, 96) and len(np.unique(picture)) == 1
    if os.path.exists(npy):
        values = np.load(npy)
        assert values.shape == (256, 256) and len(np.unique(values)) == 1


def test_concurrent_forced_writers_never_leave_a_torn_file(tmp_path):
    import concurrent.futures
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        jobs = [pool.submit(_write_rounds, str(tmp_path), writer, 60, True) for writer in (1, 2)]
        while not all(job.done() for job in jobs):
            _whole(str(tmp_path))               # read while they write: old or new, never torn
        assert [job.result() for job in jobs] == [60, 60]
    _whole(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["map.npy", "map.png"]      # no temporary left behind


def test_concurrent_writers_without_force_one_wins_nothing_overwritten(tmp_path):
    import concurrent.futures
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(3, mp_context=context) as pool:
        wrote = [job.result() for job in
                 [pool.submit(_write_rounds, str(tmp_path), writer, 5, False) for writer in (1, 2, 3)]]
    assert sum(wrote) == 1                      # the first write; every later one is refused
    _whole(str(tmp_path))
    winner = int(np.load(tmp_path / "map.npy")[0, 0]) // 1000
    assert wrote[winner - 1] == 1
    assert sorted(os.listdir(tmp_path)) == ["map.npy", "map.png"]
