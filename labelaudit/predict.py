"""Network probabilities mapped back to each image's original label frame.

Shared by validation (train) and the audit (scan), so both see exactly the same numbers.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from labelaudit.data.classes import ClassSet


def parsing_logits(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) parsing logits of a training (tuple output) or inference model."""
    out = model(image)
    return out[0] if isinstance(out, (tuple, list)) else out


@torch.no_grad()
def predict_batch_probs(model: torch.nn.Module, batch: dict[str, Any], device: torch.device,
                        classes: ClassSet, *, amp: bool = False, flip_tta: bool = False
                        ) -> list[np.ndarray]:
    """Softmax probabilities per image, (C, H, W) float32 at the original label size.

    The network's stride-4 logits are upsampled to the input size (bilinear, align_corners),
    averaged with the horizontally flipped pass when `flip_tta` (its left/right channels swapped
    back through the class set's flip permutation), then warped back through the inverse letterbox warp.
    """
    from labelaudit.data.dataset import params_from_batch
    from labelaudit.data.warp import warp_back

    image = batch["image"].to(device)
    size = image.shape[-2:]
    ctx = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if amp and device.type == "cuda" \
        else torch.autocast(device_type="cpu", enabled=False)
    with ctx:
        logits = parsing_logits(model, image).float()
    probs = F.interpolate(logits, size=size, mode="bilinear", align_corners=True).softmax(1)
    if flip_tta:
        with ctx:
            flipped = parsing_logits(model, image.flip(-1)).float()
        fp = F.interpolate(flipped, size=size, mode="bilinear", align_corners=True).softmax(1).flip(-1)
        fp = fp[:, torch.as_tensor(classes.flip_permutation(), device=fp.device)]
        probs = 0.5 * (probs + fp)
    probs_np = probs.cpu().numpy()
    return [warp_back(probs_np[i], params_from_batch(batch, i), classes).astype(np.float32, copy=False)
            for i in range(len(probs_np))]


def iter_predictions(model: torch.nn.Module, loader, device: torch.device, classes: ClassSet, **kw
                     ) -> Iterator[tuple[dict[str, Any], list[np.ndarray]]]:
    """Yields (batch, per-image probabilities) for every batch of `loader`, model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            yield batch, predict_batch_probs(model, batch, device, classes, **kw)
    finally:
        model.train(was_training)
