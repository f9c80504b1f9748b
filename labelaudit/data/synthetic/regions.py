"""Small label-map helpers shared by the noise families (`noise`, `annotator`)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from labelaudit.data.classes import ClassSet


def class_ids(class_set: ClassSet, names) -> list[int]:
    """Ids of the `names` the class set has, in the given order."""
    return [class_set.index(n) for n in names if n in class_set.names]


def nearest_fill(label: np.ndarray, region: np.ndarray, sources: np.ndarray) -> np.ndarray | None:
    """Copy of label where `region` pixels take the label of their nearest `sources` pixel
    (None when there is no source pixel)."""
    if not sources.any():
        return None
    _, (iy, ix) = ndimage.distance_transform_edt(~sources, return_indices=True)
    out = label.copy()
    out[region] = label[iy[region], ix[region]]
    return out
