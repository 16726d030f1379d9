"""Ground-truth readers: VOC XML and CSV into half-open boxes, which image each belongs to, and one
clear line for every bad file."""
import os

import pytest

from caffe_port.batch.inputs import Item
from caffe_port.errors import InputError
from caffe_port.evaluation.annotations import class_resolver, load, match, read_csv, read_voc

IMAGENET = class_resolver(1000)
LABELLED = os.path.join(os.path.dirname(__file__), "..", "..", "data", "labelled")


def voc(objects, size=(64, 48), filename="cat.jpg"):
    """A VOC annotation: objects = [(name, xmin, ymin, xmax, ymax)]."""
    parts = [f"<annotation><folder>val</folder><filename>{filename}</filename>"]
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, *box in objects:
        parts.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
                     f"<difficult>0</difficult><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
                     f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def item(path):
    return Item(str(path), os.path.abspath(path))


def test_voc_objects_by_wnid_index_or_name_in_half_open_boxes(tmp_path):
    path = write(tmp_path / "a.xml", voc([("n02123045", 1, 1, 10, 10), ("281", 33, 5, 64, 48),
                                          ("tiger cat", 2.5, 3, 4, 6)]))
    truth = read_voc(path, IMAGENET)
    assert truth.size == (64, 48)
    assert truth.objects == ((281, (0, 0, 10, 10)), (281, (32, 4, 64, 48)), (282, (1.5, 2, 4, 6)))
    # a one-pixel box: xmin = xmax
    assert read_voc(write(tmp_path / "b.xml", voc([("n02123045", 5, 5, 5, 5)])), IMAGENET).objects == \
        ((281, (4, 4, 5, 5)),)


def test_the_bundled_labelled_photographs_read():
    names = sorted(n[:-4] for n in os.listdir(LABELLED) if n.endswith(".xml"))
    assert names == ["camera", "chelsea", "clock", "coffee", "rocket"]
    chelsea = read_voc(os.path.join(LABELLED, "chelsea.xml"), IMAGENET)
    assert chelsea.size == (451, 300) and chelsea.objects == ((281, (0, 0, 392, 300)),)


def test_csv_with_and_without_a_header_half_open_as_written(tmp_path):
    path = write(tmp_path / "boxes.csv", "image,class,x0,y0,x1,y1\nphotos/cat.jpg,n02123045,0,0,10,10\n"
                                         "\n# a comment\nphotos/cat.jpg,tabby,5,5,20,20\ndog.png,207,1,2,3,4\n")
    truths = read_csv(path, IMAGENET)
    assert truths["photos/cat.jpg"].objects == ((281, (0, 0, 10, 10)), (281, (5, 5, 20, 20)))
    assert truths["photos/cat.jpg"].source.endswith("boxes.csv:2") and truths["dog.png"].size is None
    no_header = read_csv(write(tmp_path / "plain.csv", "dog.png,207,1,2,3,4\n"), IMAGENET)
    assert no_header["dog.png"].objects == ((207, (1, 2, 3, 4)),)


def test_images_find_their_annotations_by_path_name_or_stem(tmp_path):
    folder = tmp_path / "ann"
    write(folder / "ILSVRC2012_val_00000001.xml", voc([("n01751748", 1, 1, 5, 5)]))
    write(folder / "other.xml", voc([("n01751748", 1, 1, 5, 5)]))
    write(folder / "notes.txt", "not an annotation")
    annotations = load(str(folder), IMAGENET)
    assert len(annotations) == 2
    found = match([item(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")], annotations)
    assert list(found.values())[0].objects[0][0] == 65
    csv_path = write(tmp_path / "lists" / "boxes.csv", "../photos/a.jpg,1,0,0,2,2\nb.png,2,0,0,2,2\nc,3,0,0,2,2\n")
    annotations = load(csv_path, IMAGENET)
    images = [item(tmp_path / "photos" / "a.jpg"), item(tmp_path / "x" / "b.png"), item(tmp_path / "y" / "c.webp")]
    assert [t.objects[0][0] for t in match(images, annotations).values()] == [1, 2, 3]


def test_a_single_xml_annotates_the_image_it_names_or_the_one_image_given(tmp_path):
    path = write(tmp_path / "ann.xml", voc([("n02123045", 1, 1, 5, 5)], filename="cat.jpg"))
    annotations = load(path, IMAGENET)
    assert match([item(tmp_path / "photo.png")], annotations)          # one image: it is that one
    two = [item(tmp_path / "cat.jpg"), item(tmp_path / "photo.png")]
    with pytest.raises(InputError, match=r"photo.png: no ground truth in .*ann.xml"):
        match(two, annotations)


def test_missing_and_ambiguous_annotations_are_one_line(tmp_path):
    folder = tmp_path / "ann"
    write(folder / "cat.xml", voc([("n02123045", 1, 1, 5, 5)]))
    annotations = load(str(folder), IMAGENET)
    with pytest.raises(InputError, match=r"dog.jpg: no ground truth in .*ann \(matched by path, file name "
                                         r"or stem\); 1 more image\(s\) have none"):
        match([item(tmp_path / "cat.jpg"), item(tmp_path / "dog.jpg"), item(tmp_path / "emu.jpg")], annotations)
    with pytest.raises(InputError, match="also the one found for"):
        match([item(tmp_path / "a" / "cat.jpg"), item(tmp_path / "b" / "cat.png")], annotations)
    csv_path = write(tmp_path / "boxes.csv", "a/cat.jpg,1,0,0,2,2\nb/cat.jpg,2,0,0,2,2\n")
    with pytest.raises(InputError, match="2 annotations name 'cat.jpg'"):
        match([item(tmp_path / "c" / "cat.jpg")], load(csv_path, IMAGENET))


BAD_VOC = [
    ("<annotation><object>", "not a VOC XML annotation (no element found"),
    ("<html></html>", "its root is <html>, not <annotation>"),
    (voc([]), "no <object> in the annotation"),
    (voc([("n02123045", 1, 1, 5, 5)]).replace("<bndbox>", "<box>").replace("</bndbox>", "</box>"),
     "object 1 (n02123045) has no <bndbox>"),
    (voc([("n02123045", 1, 1, 5, 5)]).replace("<xmax>5</xmax>", ""), "object 1 <bndbox> has no <xmax>"),
    (voc([("n02123045", 1, "one", 5, 5)]), "object 1: <ymin> 'one' is not a number"),
    (voc([("n02123045", 1, 1, 5, "nan")]), "object 1: <ymax> nan is not a finite number"),
    (voc([("n02123045", 9, 1, 5, 5)]), "object 1: <bndbox> [9, 1, 5, 5] has xmax < xmin"),
    (voc([("n02123045", 70, 1, 80, 5)]), "lies outside the 64×48 image the file describes"),
    (voc([("n99999999", 1, 1, 5, 5)]), "object 1: unknown ImageNet class name 'n99999999'"),
    (voc([("1000", 1, 1, 5, 5)]), "object 1: class index 1000 is out of range"),
    (voc([("crane", 1, 1, 5, 5)]), "object 1: ImageNet class name 'crane' is ambiguous"),
    (voc([("n02123045", 1, 1, 5, 5)]).replace("<name>n02123045</name>", ""), "object 1 has no <name>"),
    (voc([("n02123045", 1, 1, 5, 5)], size=(0, 48)), "<size> 0×48 is not a positive whole number"),
    (voc([("n02123045", 1, 1, 5, 5)], size=("wide", 48)), "<size><width> 'wide' is not a number"),
]


BAD_CSV = [
    ("", "no boxes in the CSV"),
    ("image,class,x0,y0,x1,y1\n", "no boxes in the CSV"),
    ("cat.jpg,281,0,0,10\n", ":1: 5 column(s); a row is image,class,x0,y0,x1,y1"),
    ("cat.jpg,281,0,0,10,10\ncat.jpg,281,0,zero,10,10\n", ":2: y0 'zero' is not a number"),
    ("cat.jpg,281,10,0,10,10\n", ":1: the box [10, 0, 10, 10] is empty or inverted"),
    ("cat.jpg,281,0,9,10,3\n", ":1: the box [0, 9, 10, 3] is empty or inverted"),
    ("cat.jpg,kitty cat,0,0,10,10\n", ":1: unknown ImageNet class name 'kitty cat'"),
    (",281,0,0,10,10\n", ":1: no image named"),
    ('cat.jpg,"281,0,0,10,10\n', ":1: 2 column(s)"),
]


@pytest.mark.parametrize("name, text, message", [("bad.xml", *case) for case in BAD_VOC] +
                         [("bad.csv", *case) for case in BAD_CSV])
def test_bad_files_are_one_line_naming_the_file_and_where_in_it(tmp_path, name, text, message):
    path = write(tmp_path / name, text)
    with pytest.raises(InputError) as e:
        load(path, IMAGENET)
    line = str(e.value)
    assert message in line and line.startswith(path) and "\n" not in line


def test_unreadable_and_unknown_annotation_sources_are_one_line(tmp_path):
    binary = tmp_path / "latin.csv"
    binary.write_bytes(b"caf\xe9.jpg,281,0,0,1,1\n")
    (tmp_path / "empty").mkdir()
    for source, message in ((str(binary), "not a text CSV of boxes (not UTF-8)"),
                            (str(tmp_path / "empty"), "the folder holds no .xml annotation files"),
                            (str(tmp_path / "nothing.xml"), "no such annotation file or folder"),
                            (write(tmp_path / "boxes.json", "{}"), "annotations are a folder of VOC .xml files")):
        with pytest.raises(InputError) as e:
            load(source, IMAGENET)
        assert message in str(e.value) and "\n" not in str(e.value)


def test_classes_of_a_net_with_its_own_labels(tmp_path):
    resolve = class_resolver(3, ["road", "river", "field, meadow"])
    path = write(tmp_path / "boxes.csv", "a.jpg,meadow,0,0,1,1\nb.jpg,1,0,0,1,1\nc.jpg,3,0,0,1,1\n")
    with pytest.raises(InputError, match=r"boxes.csv:3: class index 3 is out of range: the net has 3 classes"):
        read_csv(path, resolve)
    assert resolve("meadow") == 2 and resolve(" 1 ") == 1
