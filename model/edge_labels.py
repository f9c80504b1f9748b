"""Edge labels derived on the fly from a (warped) parsing label map (docs/design.md §2, "Losses").

A pixel is an edge pixel when one of its 4-neighbours carries a different valid label. Both
outputs are computed with whole-tensor ops (shifts and max-pooling), so they run on CPU and CUDA
without Python loops over pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["edge_labels"]


def _boundary(label: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mark pixels with a differently-labelled valid 4-neighbour.

    Args:
        label: (N, H, W) long class indices.
        valid: (N, H, W) bool, False where the label is ignored.

    Returns:
        (N, H, W) bool edge map; comparisons with ignored pixels never create an edge.
    """
    edge = torch.zeros_like(valid)
    # Horizontal pairs (x, x+1): both members of a differing valid pair are edges.
    diff_x = (label[:, :, 1:] != label[:, :, :-1]) & valid[:, :, 1:] & valid[:, :, :-1]
    edge[:, :, 1:] |= diff_x
    edge[:, :, :-1] |= diff_x
    # Vertical pairs (y, y+1).
    diff_y = (label[:, 1:, :] != label[:, :-1, :]) & valid[:, 1:, :] & valid[:, :-1, :]
    edge[:, 1:, :] |= diff_y
    edge[:, :-1, :] |= diff_y
    return edge


def edge_labels(
    label: torch.Tensor,
    width: int = 1,
    num_classes: int | None = None,
    ignore_index: int = 255,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary and category edge targets of a parsing label map.

    Args:
        label: (N, H, W) or (H, W) integer class indices; ``ignore_index`` marks unlabelled pixels.
            Never modified.
        width: edge band width in pixels. 1 = the pixels on either side of a class change;
            w > 1 dilates that band by w-1 pixels with a (2w-1)x(2w-1) square max-pool.
        num_classes: when given, valid labels are checked to lie in [0, num_classes)
            (costs one device sync; leave None in the training loop).
        ignore_index: label of ignored pixels; they are ``ignore_index`` in both outputs and
            never make a neighbour an edge.

    Returns:
        (binary_edge, category_edge), both long with the shape of ``label``:
        binary_edge in {0, 1, ignore_index}; category_edge = the pixel's own class on edge
        pixels, 0 elsewhere, ``ignore_index`` on ignored pixels. Edge pixels of class 0
        (background) are therefore 0 in ``category_edge`` and indistinguishable from
        non-edge pixels there: the category-edge head learns "no edge / background" as one class.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    squeeze = label.dim() == 2
    if squeeze:
        label = label.unsqueeze(0)
    if label.dim() != 3:
        raise ValueError(f"label must be (N, H, W) or (H, W), got shape {tuple(label.shape)}")
    label = label.long()  # a copy only when the dtype differs; the input is never written
    valid = label != ignore_index
    if num_classes is not None:
        bad = valid & ((label < 0) | (label >= num_classes))
        if bool(bad.any()):
            raise ValueError(
                f"labels outside [0, {num_classes}) found (ignore_index={ignore_index})"
            )

    edge = _boundary(label, valid)
    if width > 1:
        pad = width - 1
        # Max-pool of a 0/1 map = binary dilation; float keeps it on the fast pooling kernels.
        edge = F.max_pool2d(
            edge.unsqueeze(1).float(), kernel_size=2 * pad + 1, stride=1, padding=pad
        )
        edge = edge.squeeze(1) > 0
    edge = edge & valid

    ignore = torch.full_like(label, ignore_index)
    binary = torch.where(valid, edge.long(), ignore)
    category = torch.where(valid, torch.where(edge, label, torch.zeros_like(label)), ignore)
    if squeeze:
        binary, category = binary.squeeze(0), category.squeeze(0)
    return binary, category
