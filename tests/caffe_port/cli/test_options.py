"""The shared options: --mean, --labels and --class values."""
import numpy as np
import pytest

from caffe_port.cli.options import as_class, check_top_k, parse_mean, read_labels
from caffe_port.errors import InputError


def test_mean_from_values_or_a_file(tmp_path):
    assert parse_mean("104,117,123") == (104.0, 117.0, 123.0)
    assert parse_mean("128") == (128.0, 128.0, 128.0)
    image_mean = np.stack([np.full((4, 5), v) for v in (1.0, 2.0, 6.0)])     # ilsvrc_2012_mean.npy's layout
    np.save(tmp_path / "mean.npy", image_mean)
    assert parse_mean(str(tmp_path / "mean.npy")) == (1.0, 2.0, 6.0)
    with pytest.raises(InputError, match="1 or 3 values"):
        parse_mean("1,2")
    with pytest.raises(InputError, match="neither a file nor comma-separated numbers"):
        parse_mean("blue")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a .npy mean file"):
        parse_mean(str(tmp_path / "junk.npy"))


def test_labels_plain_or_synset_words(tmp_path):
    path = tmp_path / "synset_words.txt"
    path.write_text("n01440764 tench, Tinca tinca\n\nnine lives\n", encoding="utf-8")
    assert read_labels(str(path)) == ["tench, Tinca tinca", "nine lives"]
    with pytest.raises(InputError, match="cannot read the labels file"):
        read_labels(str(tmp_path / "missing.txt"))


def test_class_values_and_top_k():
    assert as_class(" 281 ") == 281 and as_class("tabby cat") == "tabby cat" and as_class("-1") == -1
    assert check_top_k(5, 1000) == 5
    with pytest.raises(InputError, match=r"--top-k must be in 1…7, got 8"):
        check_top_k(8, 7)
