"""Network teachers: a DML-CSR network's softmax, mapped back to each image's label frame.

`checkpoint_teacher` reads any checkpoint file a user may hold, deciding from the file what it is:
  - a `labelaudit train` checkpoint (`checkpoint.pt`: its CSR teacher, else its student;
    `dml_student.pt`, `best.pt`, a snapshot): its own config gives the network, input size and
    channel order;
  - the released DML-CSR code's state dict (`dml_csr_lapa.pth`; "module." prefixes and missing
    `num_batches_tracked` accepted): ResNet-101, classes from the classifier weight, and the
    reference's preprocessing (473 px letterbox, BGR channel order with RGB-ordered ImageNet
    statistics, docs/design.md §2).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labelaudit.data.classes import ClassSet
from labelaudit.predict import Views, predict_batch_probs
from labelaudit.teachers.base import Teacher
from labelaudit.train.checkpoint import CheckpointError, load_checkpoint

log = logging.getLogger(__name__)

REFERENCE_SIZE = 473  # the released code's input side
REFERENCE_ORDER = "bgr"


class NetworkTeacher(Teacher):
    """One inference network (eval mode) on `device`, its probabilities averaged over `views`
    (test-time scales and mirroring; `Views()`: one plain pass)."""

    def __init__(self, model: torch.nn.Module, *, size: int, channel_order: str, path: Path,
                 name: str = "checkpoint", device: torch.device | None = None,
                 views: Views = Views(), calibration: dict[str, list] | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.size, self.channel_order, self.path, self.name = size, channel_order, Path(path), name
        self.views, self.calibration = views, calibration

    def predict(self, batch: dict[str, Any], classes: ClassSet) -> list[np.ndarray]:
        return predict_batch_probs(self.model, batch, self.device, classes,
                                   amp=self.device.type == "cuda", views=self.views)

    def files(self) -> list[Path]:
        return [self.path]

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        return out if self.views.plain else {**out, "views": self.views.describe()}


def inference_network(state: dict[str, torch.Tensor], model_cfg: dict[str, Any], num_classes: int
                      ) -> torch.nn.Module:
    """Our network without edge branches, shaped by a run config's [model] table, loaded strictly."""
    from model import build_model, inference_state_dict

    net = build_model(num_classes, depth=int(model_cfg["depth"]), edges=False,
                      conva_kernel=int(model_cfg["conva_kernel"]), width=float(model_cfg["width"]),
                      abn=model_cfg.get("abn", "auto"))
    net.load_state_dict(inference_state_dict(state), strict=True)
    return net


def labelaudit_teacher(state: dict[str, Any], path: Path, name: str, use: str = "csr",
                       device: torch.device | None = None, views: Views = Views()) -> NetworkTeacher:
    """The network of a loaded labelaudit checkpoint (`checkpoint.pt`, `dml_student.pt`,
    `best.pt`, a snapshot), shaped and preprocessed by its own config. `use` = "csr": its CSR
    teacher (with the val calibration it saved, which holds for plain `views` only) when it has
    one, else its student / model."""
    weights = state["model"] if "model" in state else state["student"]
    calibration = None
    if use == "csr":
        if state.get("teacher") is not None:
            weights = state["teacher"]
        elif "student" in state and "epoch" in state:
            log.warning("%s: no CSR cycle has ended yet; scanning with the student", path)
        calibration = state.get("calibration") if views.plain else None
    cfg = state["config"]
    net = inference_network(weights, cfg["model"], len(state["classes"]))
    return NetworkTeacher(net, size=int(cfg["data"]["size"]), channel_order=cfg["data"]["channel_order"],
                          path=path, name=name, device=device, views=views,
                          calibration=calibration)


def checkpoint_teacher(path: str | Path, device: torch.device | None = None,
                       views: Views = Views(), use: str = "csr") -> NetworkTeacher:
    """The teacher in any checkpoint file (see the module docstring). `use` picks the CSR teacher
    ("csr") or the student ("final") of a training checkpoint."""
    path = Path(path)
    state = load_checkpoint(path)
    if "config" in state and ("student" in state or "model" in state):
        return labelaudit_teacher(state, path, "checkpoint", use, device, views)
    from model import load_reference_checkpoint

    try:
        net = load_reference_checkpoint(path)  # it unwraps {"state_dict": ...} and "module."
    except RuntimeError as e:
        raise CheckpointError(f"{path}: neither a labelaudit checkpoint nor a DML-CSR reference "
                              f"state dict: {e}") from e
    log.info("%s: DML-CSR reference weights, %d classes; reference preprocessing (%d px, %s)",
             path, net.decoder.classifier.out_channels, REFERENCE_SIZE, REFERENCE_ORDER)
    return NetworkTeacher(net, size=REFERENCE_SIZE, channel_order=REFERENCE_ORDER, path=path,
                          name="reference", device=device, views=views)
