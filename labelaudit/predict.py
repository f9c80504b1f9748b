"""Network probabilities mapped back to each image's original label frame.

Shared by validation (train) and the audit (scan), so both see exactly the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from labelaudit.data.classes import ClassSet


def parsing_logits(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) parsing logits of a training (tuple output) or inference model."""
    out = model(image)
    return out[0] if isinstance(out, (tuple, list)) else out


@dataclass(frozen=True)
class Views:
    """The test-time views a network's probabilities are averaged over: the input resized to
    each of `scales` times its side, and with `flip` each view mirrored too (left/right
    channels swapped back). A stride-4 network sees a boundary at a finer step in a larger
    view; `Views()` is the one plain pass."""

    flip: bool = False
    scales: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if not self.scales or any(not 0.25 <= s <= 4.0 for s in self.scales):
            raise ValueError(f"scales must be 0.25-4 times the input side, got {self.scales}")

    @property
    def plain(self) -> bool:
        return not self.flip and tuple(self.scales) == (1.0,)

    def describe(self) -> dict[str, Any]:
        return {"flip": self.flip, "scales": list(self.scales)}

    @staticmethod
    def parse_scales(text: str) -> tuple[float, ...]:
        """"1,1.25,1.5" -> (1.0, 1.25, 1.5); ValueError naming the bad item."""
        try:
            return tuple(float(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise ValueError(f"--scales {text!r}: expected numbers separated by commas") from None


AUDIT_VIEWS = Views(flip=False, scales=(1.0, 1.25, 1.5))
"""The audit's default views of a network teacher (scan, calibrate, predict, bench): the input
at 1, 1.25 and 1.5 times its side, where a stride-4 network sees boundaries at a finer step
(4.8x the forward's pixels), chosen by a rule written before the loop was measured on two
training seeds (docs/experiments.md, stop 29). Mirrored views (`--tta`, twice that) stay off:
no gain on the held-out seeds (stop 30). Training's validation keeps one plain pass (`Views()`)."""


def _view_probs(model: torch.nn.Module, image: torch.Tensor, scale: float, ctx) -> torch.Tensor:
    """Softmax of one view (the input resized by `scale`), at the input's size."""
    size = image.shape[-2:]
    if scale != 1.0:
        side = [max(8, round(n * scale)) for n in size]
        image = F.interpolate(image, size=side, mode="bilinear", align_corners=False)
    with ctx:
        logits = parsing_logits(model, image).float()
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=True).softmax(1)


@torch.no_grad()
def predict_batch_probs(model: torch.nn.Module, batch: dict[str, Any], device: torch.device,
                        classes: ClassSet, *, amp: bool = False, views: Views = Views()
                        ) -> list[np.ndarray]:
    """Softmax probabilities per image, (C, H, W) float32 at the original label size.

    The network's stride-4 logits are upsampled to the input size (bilinear, align_corners),
    averaged over the `views` (each scale; with `flip` also the mirrored pass, its left/right
    channels swapped back through the class set's flip permutation), then warped back through
    the inverse letterbox warp.
    """
    from labelaudit.data.dataset import params_from_batch
    from labelaudit.data.warp import warp_back

    image = batch["image"].to(device)
    ctx = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if amp and device.type == "cuda" \
        else torch.autocast(device_type="cpu", enabled=False)
    perm = torch.as_tensor(classes.flip_permutation(), device=device) if views.flip else None
    probs = None
    for scale in views.scales:
        p = _view_probs(model, image, scale, ctx)
        if perm is not None:
            p = 0.5 * (p + _view_probs(model, image.flip(-1), scale, ctx).flip(-1)[:, perm])
        probs = p if probs is None else probs + p
    probs_np = (probs / len(views.scales)).cpu().numpy()
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
