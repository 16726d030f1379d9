"""INPUT arguments: files, folders walked recursively, ILSVRC-style lists."""
import os
import subprocess
import sys

import pytest

import caffe_port.batch as batch
from caffe_port.batch.inputs import Item, collect
from caffe_port.batch.job import run
from caffe_port.batch.store import read_index
from caffe_port.errors import InputError


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()
    return path


def test_folders_are_walked_recursively_for_image_files_only(tmp_path):
    for name in ("b.jpg", "a.PNG", "sub/c.jpeg", "sub/deeper/d.webp", "notes.txt", "model.onnx",
                 ".hidden.jpg", ".cache/e.jpg"):
        touch(str(tmp_path / name))
    items = collect([str(tmp_path)])
    assert [os.path.relpath(i.path, tmp_path) for i in items] == ["a.PNG", "b.jpg", "sub/c.jpeg",
                                                                  "sub/deeper/d.webp"]
    assert all(i.label is None and i.image == os.path.join(str(tmp_path), os.path.relpath(i.path, tmp_path))
               for i in items)


def test_a_list_resolves_relative_paths_against_its_folder_and_reads_labels(tmp_path, monkeypatch):
    touch(str(tmp_path / "val" / "x.JPEG"))
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "val.txt").write_text("# ILSVRC style\n../val/x.JPEG 65\n\n/abs/y.jpg\nwith space.jpg 3\n")
    monkeypatch.chdir(tmp_path / "val")             # the list's folder counts, not the working one
    items = collect([str(lists / "val.txt")])
    assert items == [Item("../val/x.JPEG", str(tmp_path / "val" / "x.JPEG"), 65),
                     Item("/abs/y.jpg", "/abs/y.jpg", None),
                     Item("with space.jpg", str(lists / "with space.jpg"), 3)]


def test_the_same_file_twice_is_one_item_with_the_lists_label(tmp_path):
    photo = touch(str(tmp_path / "p.jpg"))
    (tmp_path / "l.txt").write_text("p.jpg 7\n")
    items = collect([photo, str(tmp_path), str(tmp_path / "l.txt")])
    assert items == [Item(photo, photo, 7)]


def test_a_named_file_is_taken_whatever_its_extension(tmp_path):
    odd = touch(str(tmp_path / "scan.image"))
    assert collect(odd) == [Item(odd, odd, None)]


@pytest.mark.parametrize("content, message", [(b"\xff\xfe\x00bad", "not UTF-8"),
                                              (b"a.jpg -3\n", "negative")])
def test_a_bad_list_is_one_line_naming_it(tmp_path, content, message):
    (tmp_path / "l.txt").write_bytes(content)
    with pytest.raises(InputError, match=message) as e:
        collect([str(tmp_path / "l.txt")])
    assert "l.txt" in str(e.value) and "\n" not in str(e.value)


def test_a_missing_input_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        collect([str(tmp_path / "nowhere")])


def test_importing_the_package_and_the_cli_loads_neither_pyarrow_nor_ray():
    code = ("import sys, caffe_port.batch, caffe_port.cli; "
            "print(sorted(m for m in ('pyarrow', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_and_read_index_are_the_packages_api():
    assert batch.run is run and batch.read_index is read_index
