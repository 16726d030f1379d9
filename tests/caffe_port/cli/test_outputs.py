"""Outputs: every file checked before any is written; nothing of the user's overwritten without --force."""
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
