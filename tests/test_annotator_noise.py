"""The held-out annotator noise family: each recipe changes what its docstring says, and
nothing else."""
import cv2
import numpy as np
import pytest
from scipy import ndimage

from labelaudit.data.classes import CELEBAMASK, LAPA
from labelaudit.data.synthetic import annotator
from labelaudit.data.synthetic.draw import render_label
from labelaudit.data.synthetic.face import sample_face

SEEDS = range(6)


def _face(seed: int, cs=CELEBAMASK, size: int = 128) -> np.ndarray:
    return render_label(sample_face(np.random.default_rng(seed), size, cs.num_classes == 19), cs)


def _first(kind: str, label: np.ndarray, seed: int, cs=CELEBAMASK):
    return next(annotator.PROPOSERS[kind](label, cs, np.random.default_rng(seed)), (None, ""))


def _pieces(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


@pytest.mark.parametrize("seed", SEEDS)
def test_paint_turns_one_connected_piece_of_one_class_into_one_other_class(seed):
    label = _face(seed)
    out, detail = _first("paint", label, seed)
    changed = out != label
    src, dst = np.unique(label[changed]), np.unique(out[changed])
    assert len(src) == 1 and len(dst) == 1 and src[0] != dst[0]
    # the whole piece: no pixel of the painted class touching the change is left behind
    piece = ndimage.binary_dilation(changed, np.ones((3, 3))) & (label == src[0])
    assert not (piece & ~changed).any()
    assert detail == f"{CELEBAMASK.names[src[0]]} as {CELEBAMASK.names[dst[0]]}"


@pytest.mark.parametrize("seed", SEEDS)
def test_mirror_swaps_every_left_right_pair_at_once(seed):
    label = _face(seed)
    out, _ = _first("mirror", label, seed)
    lut = np.arange(256, dtype=np.uint8)
    for a, b in CELEBAMASK.flip_pairs:
        lut[a], lut[b] = b, a
    np.testing.assert_array_equal(out, lut[label])


@pytest.mark.parametrize("seed", SEEDS)
def test_shift_moves_one_piece_by_its_offset(seed):
    label = _face(seed)
    out, detail = _first("shift", label, seed)
    dx, dy = (int(v.split("=")[1]) for v in detail.split())
    cls = int(np.bincount(np.concatenate([label[out != label], out[out != label]])).argmax())
    before, after = label == cls, out == cls
    gone, came = before & ~after, after & ~before
    assert gone.any() or came.any()
    # every pixel the class gained is a pixel of the class moved by (dx, dy)
    ys, xs = np.nonzero(came)
    assert before[ys - dy, xs - dx].all()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cs", [CELEBAMASK, LAPA], ids=["celebamask", "lapa"])
def test_missing_leaves_one_piece_unlabelled(seed, cs):
    label = _face(seed, cs)
    out, _ = _first("missing", label, seed, cs)
    changed = out != label
    src = np.unique(label[changed])
    assert len(src) == 1 and _pieces(changed) == 1
    assert not (out[changed] == src[0]).any()
    # it took the classes around it: every new class touched the piece before
    ring = ndimage.binary_dilation(changed, np.ones((3, 3))) & ~changed
    assert set(np.unique(out[changed])) <= set(np.unique(label[ring]))


@pytest.mark.parametrize("seed", SEEDS)
def test_bleed_paints_a_band_of_one_class_over_its_neighbour_along_their_boundary(seed):
    label = _face(seed)
    out, detail = _first("bleed", label, seed)
    changed = out != label
    a, b = (CELEBAMASK.index(n) for n in detail.split()[:3:2])
    assert set(np.unique(label[changed])) == {b} and set(np.unique(out[changed])) == {a}
    width = float(detail.split("w=")[1])
    assert ndimage.distance_transform_edt(label != a)[changed].max() <= width + 1e-6


@pytest.mark.parametrize("seed", SEEDS)
def test_outline_redraws_one_class_only(seed):
    label = _face(seed)
    out, detail = _first("outline", label, seed)
    changed = out != label
    assert changed.any() and int(detail.split()[0]) >= 3
    involved = np.bincount(np.concatenate([label[changed], out[changed]]))
    cls = int(involved.argmax())
    # every changed pixel either lost or gained that class
    assert ((label[changed] == cls) | (out[changed] == cls)).all()
