"""The letterbox similarity warp, its inverse and left/right flips."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from labelaudit.data import CELEBAMASK, LAPA
from labelaudit.data.warp import (
    WarpParams, coverage_mask, flip_label, flip_probs, letterbox_params, random_params,
    warp_back, warp_image, warp_label, warp_matrix,
)


def blob_label(h: int, w: int) -> np.ndarray:
    lab = np.zeros((h, w), np.uint8)
    cv2.ellipse(lab, (w // 2, h // 2), (w // 3, h * 2 // 5), 0, 0, 360, 1, -1)
    lab[h // 3: h // 3 + 6, w // 5: w // 5 + 10] = 4      # l_eye on the image's left
    lab[h // 3: h // 3 + 6, w - w // 5 - 10: w - w // 5] = 5
    lab[: h // 8] = 10
    lab[h * 2 // 3: h * 2 // 3 + 5, w // 3: w * 2 // 3] = 7
    return lab


def onehot(label: np.ndarray, c: int) -> np.ndarray:
    return (np.arange(c)[:, None, None] == label[None]).astype(np.float32)


def test_letterbox_matrix_matches_design():
    p = letterbox_params((60, 80), 100)
    m = warp_matrix(p)
    t = 100 / 79
    np.testing.assert_allclose(m[:, :2], [[t, 0], [0, t]], atol=1e-12)
    # centre of the image -> centre of the output; long side spans the full output extent
    np.testing.assert_allclose(m @ [39.5, 29.5, 1], [49.5, 49.5])
    np.testing.assert_allclose(m @ [0, 29.5, 1], [-0.5, 49.5])
    np.testing.assert_allclose(m @ [79, 29.5, 1], [99.5, 49.5])
    assert coverage_mask(p).all()


def test_rotation_direction_and_scale():
    p = WarpParams((10.0, 10.0), 2.0, 90.0, False, 21, (21, 21))
    m = warp_matrix(p)
    # t = 21/20*2; +90 deg is counter-clockwise on screen: a point right of the centre goes up
    x, y = m @ [11, 10, 1]
    assert x == pytest.approx(10) and y == pytest.approx(10 - 2.1)
    assert not coverage_mask(p).all()


def test_warp_shapes_and_borders():
    lab = blob_label(40, 64)
    img = np.dstack([lab * 20] * 3).astype(np.uint8) + 1
    p = letterbox_params(lab.shape, 50)
    wi, wl = warp_image(img, p), warp_label(lab, p)
    assert wi.shape == (50, 50, 3) and wi.dtype == np.uint8
    assert wl.shape == (50, 50) and wl.dtype == np.uint8
    # letterbox of a wide image: top and bottom bands are border (0 image, 255 label)
    assert (wl[:5] == 255).all() and (wl[-5:] == 255).all() and (wi[:5] == 0).all()
    assert (wl[10:40] != 255).all()
    with pytest.raises(ValueError):
        warp_label(lab.T.copy(), p)


@pytest.mark.parametrize("size", [64, 65, 80])
def test_round_trip_recovers_label(size):
    lab = blob_label(60, 64)
    p = letterbox_params(lab.shape, size)
    fwd = warp_label(lab, p)
    probs = onehot(np.where(fwd == 255, 0, fwd), 11)
    back = warp_back(probs, p)
    assert back.shape == (11, 60, 64) and back.dtype == np.float32
    assert (back.argmax(0) == lab).mean() > 0.99
    back_label = warp_back(fwd, p)
    assert back_label.shape == (60, 64) and (back_label == lab).mean() > 0.99


def test_round_trip_with_augmentation_inside_coverage():
    lab = blob_label(60, 64)
    p = WarpParams((31.5, 29.5), 1.2, 17.0, True, 96, (60, 64))
    fwd = warp_label(lab, p, LAPA)
    back = warp_back(onehot(np.where(fwd == 255, 0, fwd), 11), p, LAPA).argmax(0)
    cov = coverage_mask(p)
    assert 0.5 < cov.mean() < 1
    assert (back[cov] == lab[cov]).mean() > 0.97
    assert np.allclose(warp_back(onehot(fwd % 11, 11), p, LAPA).sum(0), 1, atol=1e-5)


def test_flip_swaps_left_and_right_in_the_right_places():
    lab = blob_label(60, 64)
    p = letterbox_params(lab.shape, 64)
    pf = letterbox_params(lab.shape, 64, flip=True)
    plain, flipped = warp_label(lab, p), warp_label(lab, pf, LAPA)
    # the centre of the source's l_eye (4, image left) lands on the right, now labelled r_eye
    ys, xs = np.nonzero(lab == 4)
    x, y = warp_matrix(pf) @ [xs.mean(), ys.mean(), 1]
    assert x > 32
    assert flipped[int(round(y)), int(round(x))] == 5
    assert plain[int(round(y)), 63 - int(round(x))] == 4
    # a flip without rotation is the mirrored, class-swapped plain warp
    assert (flipped == flip_label(plain, LAPA)).mean() > 0.99
    assert (flipped == 4).sum() == pytest.approx((plain == 5).sum(), abs=3)
    with pytest.raises(ValueError, match="ClassSet"):
        warp_label(lab, pf)


def test_flip_label_exact():
    lab = np.array([[4, 1, 5, 255], [2, 0, 3, 10]], np.uint8)
    out = flip_label(lab, LAPA)
    np.testing.assert_array_equal(out, [[255, 4, 1, 5], [10, 2, 0, 3]])
    np.testing.assert_array_equal(flip_label(out, LAPA), lab)
    cel = np.array([[4, 6, 8, 3]], np.uint8)
    np.testing.assert_array_equal(flip_label(cel, CELEBAMASK), [[3, 9, 7, 5]])


def test_flip_probs_agrees_with_flip_label():
    lab = blob_label(30, 40)
    p = onehot(lab, 11)
    f = flip_probs(p, LAPA)
    np.testing.assert_array_equal(f.argmax(0), flip_label(lab, LAPA))
    np.testing.assert_array_equal(flip_probs(f, LAPA), p)
    batch = np.stack([p, p])
    np.testing.assert_array_equal(flip_probs(batch, LAPA)[1], f)


def test_flip_tta_probabilities_round_trip():
    lab = blob_label(60, 64)
    rng = np.random.default_rng(0)
    truth = onehot(lab, 11) * 0.8 + rng.random((11, 60, 64)).astype(np.float32) * 0.02
    truth = np.stack([cv2.GaussianBlur(c, (5, 5), 1.0) for c in truth])
    truth /= truth.sum(0, keepdims=True)
    outs = []
    for flip in (False, True):
        p = letterbox_params(lab.shape, 64, flip=flip)
        # what an ideal network predicts on the (possibly flipped) input: the source's
        # probabilities carried by the same warp, left/right channels swapped when flipped
        net = np.stack([warp_image(c, p) for c in truth])
        if flip:
            net = net[LAPA.flip_permutation()]
        outs.append(warp_back(net, p, LAPA))
    plain, flipped = outs
    assert np.abs(flipped - plain).mean() < 0.01
    assert (flipped.argmax(0) == lab).mean() > 0.99
    assert np.abs(flipped - truth).mean() < 0.02
    # forgetting the channel swap would put r_eye where l_eye is
    bad = outs[1][LAPA.flip_permutation()]
    assert (bad.argmax(0)[lab == 4] == 5).mean() > 0.9


def test_random_params_reproducible_and_in_range():
    a = [random_params(np.random.default_rng(7), (60, 64), 32) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(1)
    ps = [random_params(rng, (60, 64), 32, (0.5, 0.9), 10.0, True) for _ in range(200)]
    assert all(0.5 <= p.scale <= 0.9 and -10 <= p.rotation <= 10 for p in ps)
    assert 60 < sum(p.flip for p in ps) < 140
    assert not any(random_params(rng, (6, 6), 8, flip=False).flip for _ in range(20))
    assert ps[0].center == (31.5, 29.5) and ps[0].src_size == (60, 64)
