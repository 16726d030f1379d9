"""The boxes CSV: what it reads, and one line naming the problem for what it cannot."""
import pytest

from caffe_port.errors import InputError
from caffe_port.metrics.boxes import read_boxes_csv


def write(tmp_path, text):
    path = tmp_path / "boxes.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_reads_boxes_by_file_name(tmp_path):
    path = write(tmp_path, "image,class,x0,y0,x1,y1\n"
                           "photos/cat.jpg, tabby cat ,0,0,40.4,30\n"
                           "\n# a comment\n"
                           "cat.jpg,281,5,6,7,8\n"
                           "/abs/cup.png,967,1,2,3,4\n")
    assert read_boxes_csv(path) == {"cat.jpg": [("tabby cat", (0, 0, 40, 30)), (281, (5, 6, 7, 8))],
                                    "cup.png": [(967, (1, 2, 3, 4))]}


def test_no_header_needed(tmp_path):
    assert read_boxes_csv(write(tmp_path, "a.png,3,0,0,2,2\n")) == {"a.png": [(3, (0, 0, 2, 2))]}


@pytest.mark.parametrize("text, message", [
    ("a.png,3,0,0,2\n", r"boxes.csv:1: expected 6 columns"),
    ("image,class,x0,y0,x1,y1\na.png,3,0,zero,2,2\n", r"boxes.csv:2: box coordinates must be numbers"),
    ("a.png,3,4,0,2,2\n", r"boxes.csv:1: box \(4, 0, 2, 2\) is empty"),
    ("a.png,3,-1,0,2,2\n", r"boxes.csv:1: box .* negative"),
    (",3,0,0,2,2\n", r"boxes.csv:1: the image and the class must not be empty"),
    ("image,class,x0,y0,x1,y1\n", r"no boxes"),
])
def test_bad_files_are_one_line(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        read_boxes_csv(write(tmp_path, text))


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(InputError, match="cannot read the boxes"):
        read_boxes_csv(str(tmp_path / "none.csv"))
    path = tmp_path / "b.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="not a UTF-8 CSV"):
        read_boxes_csv(str(path))
