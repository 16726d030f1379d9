"""The pointing game: hand-made cases from Zhang et al.'s definition with TorchRay's tolerance,
TorchRay's own acceptance rule recomputed (squared distances to every mask pixel < 15²), and
Quantus's PointingGame (maximum inside a mask) given the boxes dilated by the tolerance disk."""
import numpy as np
import pytest
from scipy import ndimage

from caffe_port.errors import InputError, ShapeError
from caffe_port.metrics.pointing import (PointingGame, distance_to_box, is_hit, map_maximum,
                                         pointing_hit)


def map_with_peak(shape, x, y):
    m = np.zeros(shape)
    m[y, x] = 1.0
    return m


def box_mask(shape, boxes):
    mask = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def torchray_hit(mask, point, tolerance):
    """TorchRay's PointingGame.evaluate, in numpy: the disk d² < tolerance² around the point
    meets the mask."""
    v, u = np.meshgrid((np.arange(mask.shape[0]) - point[1]) ** 2,
                       (np.arange(mask.shape[1]) - point[0]) ** 2, indexing="ij")
    return bool((mask & ((v + u) < tolerance ** 2)).any())


@pytest.mark.parametrize("x, y, hit", [
    (20, 20, True),        # inside
    (9, 20, True),         # 10 px left of the box
    (35, 20, True),        # x1 = 30 is outside: the last column is 29, 6 px away
    (43, 20, True),        # 14 px from column 29
    (44, 20, False),       # 15 px: not < 15
    (29 + 10, 19 + 11, True),    # diagonal: √(100 + 121) ≈ 14.87 from the corner (29, 19)
    (29 + 11, 19 + 11, False),   # √242 ≈ 15.56
])
def test_tolerance_by_hand(x, y, hit):
    box = (10, 10, 30, 20)
    assert is_hit((x, y), [box]) == hit
    assert torchray_hit(box_mask((60, 70), [box]), (x, y), 15) == hit


def test_distance_to_box():
    assert distance_to_box((5, 5), (0, 0, 10, 10)) == 0
    assert distance_to_box((13, 14), (0, 0, 10, 10)) == pytest.approx(np.hypot(4, 5))


def test_tolerance_zero_is_inside_only():
    assert is_hit((10, 10), [(10, 10, 11, 11)], tolerance=0)
    assert not is_hit((11, 10), [(10, 10, 11, 11)], tolerance=0)


def test_any_box_of_the_class_counts():
    boxes = [(0, 0, 5, 5), (50, 50, 60, 60)]
    assert pointing_hit(map_with_peak((80, 80), 55, 58), boxes)[0]
    assert not pointing_hit(map_with_peak((80, 80), 30, 30), boxes)[0]


def test_first_maximum_and_valid_pixels():
    m = np.zeros((10, 12))
    m[7, 2] = m[3, 9] = 5.0                  # tie: row-major order finds (9, 3) first
    assert map_maximum(m) == (9, 3)
    valid = np.ones_like(m, dtype=bool)
    valid[:5] = False
    assert map_maximum(m, valid) == (2, 7)
    m[0, 0] = 9.0                            # outside what the net saw: never the point
    assert map_maximum(m, valid) == (2, 7)
    negative = -np.ones((4, 4))
    negative[2, 1] = -0.5
    assert map_maximum(negative, np.ones((4, 4), bool)) == (1, 2)


def test_bad_input():
    with pytest.raises(InputError, match="empty"):
        is_hit((0, 0), [(5, 5, 5, 9)])
    with pytest.raises(InputError, match="at least one box"):
        is_hit((0, 0), [])
    with pytest.raises(ShapeError):
        map_maximum(np.zeros((3, 4, 4)))
    with pytest.raises(InputError, match="NaN"):
        map_maximum(np.full((3, 3), np.nan))


def test_random_cases_match_torchray_and_quantus():
    quantus = pytest.importorskip("quantus")
    rng = np.random.default_rng(7)
    shape = (48, 64)
    maps, all_boxes, masks, dilated, ours, theirs = [], [], [], [], [], []
    for _ in range(60):
        boxes = []
        for _ in range(int(rng.integers(1, 3))):
            x0, y0 = int(rng.integers(0, 50)), int(rng.integers(0, 35))
            boxes.append((x0, y0, x0 + int(rng.integers(1, 14)), y0 + int(rng.integers(1, 12))))
        m = rng.uniform(size=shape)                        # continuous: one maximum
        hit, point = pointing_hit(m, boxes)
        mask = box_mask(shape, boxes)
        ours.append(hit)
        theirs.append(torchray_hit(mask, point, 15))
        maps.append(m)
        all_boxes.append(boxes)
        masks.append(mask)
        dilated.append(ndimage.distance_transform_edt(~mask) < 15)
    assert ours == theirs
    assert 10 < sum(ours) < 50                              # both outcomes exercised
    metric = quantus.PointingGame(disable_warnings=True, normalise=False, abs=False)
    a = np.stack(maps)[:, None].astype(np.float64)
    y = np.zeros(len(maps), dtype=int)
    for tolerance, s in ((15, dilated), (0, masks)):
        expected = metric(model=None, x_batch=a, y_batch=y, a_batch=a, s_batch=np.stack(s)[:, None].astype(float))
        got = [pointing_hit(m, boxes, tolerance)[0] for m, boxes in zip(maps, all_boxes)]
        assert got == [bool(e) for e in expected]


def test_score_is_the_mean_of_class_accuracies():
    game = PointingGame()
    for target, hit in [(1, True), (1, True), (1, False), (1, True), (7, False), (3, True)]:
        game.add(target, hit)
    assert game.class_accuracies() == {1: 0.75, 3: 1.0, 7: 0.0}
    assert game.accuracy() == pytest.approx((0.75 + 1.0 + 0.0) / 3)
    assert np.isnan(PointingGame().accuracy())
