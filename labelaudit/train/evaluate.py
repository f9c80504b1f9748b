"""Validation with the paper's metrics: one confusion matrix at the original label size."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from labelaudit.metrics import ConfusionAccumulator, ParsingScores
from labelaudit.predict import iter_predictions


def evaluate(model: torch.nn.Module, dataset, device: torch.device, *, batch_size: int = 8,
             amp: bool = False, workers: int = 0) -> ParsingScores:
    """Scores of `model` on every image of `dataset` (a non-augmented FaceParsingDataset)."""
    from labelaudit.data import collate

    classes = dataset.source.classes
    acc = ConfusionAccumulator(classes.num_classes)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate)
    for batch, probs in iter_predictions(model, loader, device, amp=amp):
        for idx, p in zip(batch["index"], probs):
            acc.update(dataset.original_label(int(idx)), p.argmax(0))
    return acc.scores(classes.names)
