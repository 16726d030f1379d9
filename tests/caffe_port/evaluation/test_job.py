"""``evaluate`` end to end on the disk detector (tests/helpers/disk_sets.py), whose boxes are known
by hand: the four errors, the rows of evaluation.parquet, images left out, resuming."""
import os

import pyarrow.parquet as pq
import pytest

from caffe_port.batch import read_index
from caffe_port.evaluation import evaluate
from caffe_port.preprocess import Preset
from helpers.disk_sets import disk_net, write_disk_photo

NONE = Preset("none")


@pytest.fixture(scope="module")
def net():
    return disk_net()


@pytest.fixture(scope="module")
def disk_set(tmp_path_factory):
    """Four photographs, each a disk: class 0 ("disk") is every image's top class, class 1 second.

    hit      truth: class 0 at the disk's box                    → localised
    elsewhere  truth: class 0 at a box of the disk's size elsewhere → classified, not localised
    ground   truth: class 1 at the disk's box                    → classified at top 2 only;
             class 1's box is the ground's, not the disk's        → not localised
    two      truth: class 0 twice, the second box the disk's     → localised
    """
    root = tmp_path_factory.mktemp("disks")
    photos = root / "photos"
    boxes = {"hit": write_disk_photo(str(photos / "hit.png"), (20, 15), 8, seed=1),
             "elsewhere": write_disk_photo(str(photos / "elsewhere.png"), (14, 12), 7, seed=2),
             "ground": write_disk_photo(str(photos / "ground.png"), (40, 25), 9, seed=3),
             "two": write_disk_photo(str(photos / "two.png"), (36, 20), 8, seed=4)}
    far = tuple(v + d for v, d in zip(boxes["elsewhere"], (30, 20, 30, 20)))
    rows = [("photos/hit.png", 0, boxes["hit"]), ("elsewhere.png", 0, far), ("ground", 1, boxes["ground"]),
            ("two.png", 0, (0, 0, 6, 6)), ("two.png", 0, boxes["two"])]
    csv = root / "boxes.csv"
    csv.write_text("image,class,x0,y0,x1,y1\n" + "".join(f"{i},{c},{','.join(map(str, b))}\n" for i, c, b in rows))
    return root, boxes


def run(net, inputs, annotations, out, **kw):
    return evaluate(inputs, annotations, out, model=net.graph.model, net=net, preset=NONE, progress=False, **kw)


def test_errors_and_rows_by_the_ilsvrc_rule(net, disk_set, tmp_path):
    root, boxes = disk_set
    out = str(tmp_path / "out")
    result = run(net, [str(root / "photos")], str(root / "boxes.csv"), out, recipe="cam-threshold")
    assert result.errors == {"top1_loc_error": 0.5, "top5_loc_error": 0.5, "top1_cls_error": 0.25,
                             "top5_cls_error": 0.0}
    assert result.failed == [] and result.scored == 4
    by_image = {os.path.basename(r["image"]): r for r in result.images}
    hit = by_image["hit.png"]
    assert hit["localised_top1"] and hit["localised_top5"] and hit["label"] == 0
    assert hit["predictions"][0] == {"class": 0, "name": "class 0", "score": pytest.approx(hit["predictions"][0]["score"]),
                                     "box": list(boxes["hit"]), "iou": 1.0}
    assert [p["class"] for p in hit["predictions"]] == [0, 1]                # top-5 of a 2-class net: both
    assert not by_image["elsewhere.png"]["localised_top5"] and by_image["elsewhere.png"]["classified_top1"]
    ground = by_image["ground.png"]
    assert not ground["classified_top1"] and ground["classified_top5"] and not ground["localised_top5"]
    assert by_image["two.png"]["localised_top1"] and len(by_image["two.png"]["truth"]) == 2
    # the rows next to the index: image × truth class × rank
    table = pq.read_table(os.path.join(out, "evaluation.parquet"))
    assert result.path == os.path.join(out, "evaluation.parquet") and table.num_rows == 4 * 2
    rows = [r for r in table.to_pylist() if r["image"].endswith("hit.png")]
    assert [(r["rank"], r["class"], r["box"], r["iou"], r["localised_top1"]) for r in rows] == \
        [(1, 0, list(boxes["hit"]), 1.0, True), (2, 1, rows[1]["box"], rows[1]["iou"], True)]
    assert rows[0]["truth"] == [list(map(float, boxes["hit"]))] and rows[0]["weight"] == 1.0
    # the index holds the boxes, and no maps were written
    index = read_index(out)
    assert index.num_rows == 8 and set(index["method"].to_pylist()) == {"cam-threshold"}
    assert index["map"].to_pylist() == [None] * 8 and not os.listdir(os.path.join(out, "maps"))


def test_the_paper_recipe_and_a_rerun_that_computes_nothing(net, disk_set, tmp_path, capsys):
    root, boxes = disk_set
    out = str(tmp_path / "out")
    first = run(net, [str(root / "photos")], str(root / "boxes.csv"), out)
    assert first.errors["top1_loc_error"] == 0.5 and first.recipe == "paper"
    again = evaluate([str(root / "photos")], str(root / "boxes.csv"), out, model=net.graph.model, net=net,
                     preset=NONE)
    assert "4 image(s): 0 computed, 4 done before" in capsys.readouterr().err
    assert again.errors == first.errors and again.images == first.images


def test_unreadable_images_and_misfit_annotations_are_left_out(net, disk_set, tmp_path):
    root, boxes = disk_set
    photos = tmp_path / "photos"
    write_disk_photo(str(photos / "hit.png"), (20, 15), 8, seed=1)
    write_disk_photo(str(photos / "small.png"), (20, 15), 8, seed=1)
    (photos / "notes.png").write_text("not a picture")
    ann = tmp_path / "ann"
    ann.mkdir()
    voc = ("<annotation><size><width>{w}</width><height>40</height></size><object><name>{c}</name>"
           "<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
           "</annotation>")
    x0, y0, x1, y1 = boxes["hit"]
    (ann / "hit.xml").write_text(voc.format(w=56, c=0, x0=x0 + 1, y0=y0 + 1, x1=x1, y1=y1))   # VOC: inclusive
    (ann / "small.xml").write_text(voc.format(w=112, c=0, x0=1, y0=1, x1=5, y1=5))
    (ann / "notes.xml").write_text(voc.format(w=56, c=0, x0=1, y0=1, x1=5, y1=5))
    result = run(net, [str(photos)], str(ann), str(tmp_path / "out"), recipe="paper")
    assert result.scored == 1 and result.errors["top1_loc_error"] == 0.0
    assert result.images[0]["predictions"][0]["iou"] == 1.0
    failed = {os.path.basename(f["image"]): f["status"] for f in result.failed}
    assert sorted(failed) == ["notes.png", "small.png"]
    assert "the annotation is for a 112×40 image; the image is 56×40" in failed["small.png"]
    table = pq.read_table(str(tmp_path / "out" / "evaluation.parquet")).to_pylist()
    assert sorted(r["status"] != "ok" for r in table) == [False, False, True, True]
