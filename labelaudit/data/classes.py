"""Class vocabularies of the supported face-parsing datasets and their left/right pairs.

A horizontal flip must swap the classes of every pair so that a flipped left eye stays
"left eye" from the face's own point of view.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255
"""Label value that no loss, metric or scan ever counts (warp border, unlabelled pixels)."""


@dataclass(frozen=True)
class ClassSet:
    """Names of the classes (index = label value) and the left/right pairs that a flip swaps."""

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def flip_permutation(self) -> np.ndarray:
        """(C,) int array p with p[c] = class of c after a horizontal flip."""
        perm = np.arange(self.num_classes)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def flip_lut(self) -> np.ndarray:
        """(256,) uint8 lookup table mapping label values through a flip; 255 stays 255."""
        lut = np.arange(256, dtype=np.uint8)
        lut[: self.num_classes] = self.flip_permutation().astype(np.uint8)
        return lut

    def index(self, name: str) -> int:
        return self.names.index(name)


LAPA = ClassSet(
    name="lapa",
    names=(
        "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye",
        "nose", "u_lip", "i_mouth", "l_lip", "hair",
    ),
    flip_pairs=((2, 3), (4, 5)),
)
"""LaPa's 11 classes. Helen (SmithCVPR2013 resized) uses the same order."""

HELEN = ClassSet(name="helen", names=LAPA.names, flip_pairs=LAPA.flip_pairs)

CELEBAMASK_PARTS: tuple[str, ...] = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
"""CelebAMask-HQ part-file names; part i has label id i + 1 (the official merge order)."""

CELEBAMASK = ClassSet(
    name="celebamask",
    names=("background",) + CELEBAMASK_PARTS,
    flip_pairs=((4, 5), (6, 7), (8, 9)),
)

# Helen "overall" F1 merges these inner-face classes into one (docs/design.md §8).
HELEN_OVERALL_CLASSES: tuple[str, ...] = (
    "l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "i_mouth", "l_lip",
)


def infer_flip_pairs(names: tuple[str, ...] | list[str]) -> tuple[tuple[int, int], ...]:
    """Pairs (i, j) of classes named like `l_X`/`r_X` or `left_X`/`right_X` (for user datasets)."""
    pairs = []
    lookup = {n: i for i, n in enumerate(names)}
    for i, n in enumerate(names):
        for left, right in (("l_", "r_"), ("left_", "right_"), ("left ", "right ")):
            if n.startswith(left):
                j = lookup.get(right + n[len(left):])
                if j is not None:
                    pairs.append((i, j))
    return tuple(pairs)


# Class colours, the same in the report, the review App and the notebook: matplotlib's tab20
# (written out: no plotting library needed), class k -> entry k mod 20, background black.
TAB20 = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
         "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
         "#bcbd22", "#dbdb8d", "#17becf", "#9edae5")


def class_colours(n: int) -> list[str]:
    """The hex colour of each of n classes (class 0, the background, black)."""
    return ["#000000"] + [TAB20[k % 20] for k in range(1, n)]
