"""The ILSVRC localisation rule on hand-made cases, and IoU against the devkit's own arithmetic on
inclusive corners (an independent oracle for the pixel convention)."""
import numpy as np
import pytest

from caffe_port.evaluation.rule import Prediction, errors, iou, judge, overlaps_enough, ranked
from caffe_port.methods.base import resolve_targets


def devkit_overlap(box, truth):
    """ILSVRC's compute_overlap on inclusive corners (x1, y1, x2, y2): widths are x2 − x1 + 1."""
    iw = min(box[2], truth[2]) - max(box[0], truth[0]) + 1
    ih = min(box[3], truth[3]) - max(box[1], truth[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    union = ((box[2] - box[0] + 1) * (box[3] - box[1] + 1) + (truth[2] - truth[0] + 1) * (truth[3] - truth[1] + 1)
             - iw * ih)
    return iw * ih / union


def inclusive_to_half_open(box):
    """VOC's 1-based inclusive corners → caffe_port's 0-based half-open box."""
    return (box[0] - 1, box[1] - 1, box[2], box[3])


def test_iou_of_half_open_boxes_equals_the_devkit_on_inclusive_corners():
    rng = np.random.default_rng(0)
    for _ in range(500):
        a = np.sort(rng.integers(1, 60, 2)), np.sort(rng.integers(1, 40, 2))
        b = np.sort(rng.integers(1, 60, 2)), np.sort(rng.integers(1, 40, 2))
        a_inc = (a[0][0], a[1][0], a[0][1], a[1][1])
        b_inc = (b[0][0], b[1][0], b[0][1], b[1][1])
        expected = devkit_overlap(a_inc, b_inc)
        assert iou(inclusive_to_half_open(a_inc), inclusive_to_half_open(b_inc)) == pytest.approx(expected, abs=1e-15)


def test_inclusive_and_half_open_are_not_the_same_box():
    """VOC (1, 1, 10, 10) is the first ten columns and rows: half-open (0, 0, 10, 10). Read without
    the conversion it would be (1, 1, 10, 10) half-open, 9 × 9 pixels: IoU 81/100 with itself."""
    assert inclusive_to_half_open((1, 1, 10, 10)) == (0, 0, 10, 10)
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((1, 1, 10, 10), (0, 0, 10, 10)) == 0.81
    assert devkit_overlap((1, 1, 10, 10), (1, 1, 10, 10)) == 1.0


def test_iou_of_exactly_one_half_counts_and_just_below_does_not():
    truth = (0, 0, 10, 10)
    assert iou((0, 0, 10, 5), truth) == 0.5 and overlaps_enough((0, 0, 10, 5), truth)
    assert iou((0, 0, 20, 10), truth) == 0.5 and overlaps_enough((0, 0, 20, 10), truth)
    # a 3 × 3 truth and the same box one row lower: 6 shared pixels of 12, exactly one half
    assert overlaps_enough((0, 1, 3, 4), (0, 0, 3, 3)) is True      # inter 6, union 12
    assert not overlaps_enough((0, 0, 100, 49), (0, 0, 100, 100))   # 0.49
    assert not overlaps_enough((0, 0, 0, 0), (0, 0, 0, 0))          # empty boxes overlap nothing
    assert iou((0, 0, 5, 5), (5, 5, 9, 9)) == 0.0                   # touching corners share no pixel


def P(c, score, box):
    return Prediction(c, score, box)


def test_localised_needs_the_right_class_and_the_right_box():
    truth = [(3, (10, 10, 30, 30))]
    right, wrong = (10, 10, 30, 30), (40, 40, 60, 60)
    [j] = judge(truth, [P(3, 9.0, wrong), P(7, 8.0, right), P(1, 1.0, right)])
    assert j.classified == {1: True, 5: True} and j.localised == {1: False, 5: False}
    assert [round(v, 3) for _, v in j.predictions] == [0.0, 1.0, 1.0]   # a right box of the wrong class shows
    [j] = judge(truth, [P(7, 9.0, wrong), P(2, 8.0, wrong), P(3, 7.0, right)])
    assert j.classified == {1: False, 5: True} and j.localised == {1: False, 5: True}
    [j] = judge(truth, [P(3, 9.0, None)])                            # no box: nothing localised
    assert j.classified[1] and not j.localised[1] and j.predictions[0][1] is None
    # a sixth prediction is not in the top 5
    preds = [P(c, 10.0 - c, wrong) for c in (4, 5, 6, 7, 8)] + [P(3, 0.0, right)]
    [j] = judge(truth, preds)
    assert j.classified == {1: False, 5: False} and j.localised == {1: False, 5: False}


def test_several_boxes_of_the_class_any_one_suffices():
    truth = [(3, (0, 0, 10, 10)), (3, (50, 50, 70, 80)), (9, (20, 20, 40, 40))]
    [three, nine] = judge(truth, [P(3, 5.0, (52, 50, 70, 80)), P(9, 4.0, (0, 0, 10, 10))])
    assert three.label == 3 and three.localised[1] and three.truth == [(0, 0, 10, 10), (50, 50, 70, 80)]
    assert nine.label == 9 and nine.classified[5] and not nine.localised[5]
    # class 9's box is right for class 3's first object: it does not count for class 9
    assert three.weight == nine.weight == 0.5


def test_an_image_of_two_classes_counts_each_for_half():
    """ILSVRC's eval_clsloc: the image's error is the mean over its ground-truth labels."""
    two = judge([(3, (0, 0, 10, 10)), (9, (20, 20, 40, 40))],
                [P(3, 5.0, (0, 0, 10, 10)), P(9, 4.0, (0, 0, 5, 5))])
    one = judge([(1, (0, 0, 10, 10))], [P(1, 5.0, (0, 0, 10, 10))])
    miss = judge([(1, (0, 0, 10, 10))], [P(2, 5.0, (0, 0, 10, 10))])
    e = errors([two, one, miss])
    assert e["top1_loc_error"] == pytest.approx((0.5 + 0 + 1) / 3)      # image 1: class 9 is rank 2
    assert e["top5_loc_error"] == pytest.approx((0.5 + 0 + 1) / 3)      # and its box is wrong
    assert e["top1_cls_error"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert e["top5_cls_error"] == pytest.approx((0 + 0 + 1) / 3)
    assert errors([]) == {"top1_loc_error": None, "top5_loc_error": None, "top1_cls_error": None,
                          "top5_cls_error": None}


def test_ties_in_scores_rank_the_smaller_class_first_as_resolve_targets_does():
    scores = np.array([[1.0, 7.0, 3.0, 7.0, 7.0, 0.5, 7.0]], np.float32)
    chosen = resolve_targets(scores, top_k=5).classes[:, 0].tolist()
    order = [p.class_index for p in ranked([P(c, float(s), None) for c, s in enumerate(scores[0])][::-1])]
    assert order[:5] == chosen == [1, 3, 4, 6, 2]
    # the tie decides top-1: class 1 and class 6 both score 7; 1 is the top-1
    truth = [(6, (0, 0, 10, 10))]
    [j] = judge(truth, [P(6, 7.0, (0, 0, 10, 10)), P(1, 7.0, (50, 50, 60, 60))])
    assert j.localised == {1: False, 5: True}


def test_boxes_touching_the_border():
    """A truth box that runs to the image's last column and row (VOC xmax = width) and a
    predicted box to the same edge: half-open x1 = width on both."""
    width, height = 64, 48
    truth = [(0, inclusive_to_half_open((33, 1, width, height)))]
    assert truth[0][1] == (32, 0, 64, 48)
    [j] = judge(truth, [P(0, 1.0, (32, 0, width, height))])
    assert j.localised[1] and j.predictions[0][1] == 1.0
