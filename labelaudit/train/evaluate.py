"""Validation with the paper's metrics: one confusion matrix at the original label size."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from labelaudit.metrics import ConfusionAccumulator, ParsingScores
from labelaudit.predict import iter_predictions


def evaluate(model: torch.nn.Module, dataset, device: torch.device, *, batch_size: int = 8,
             amp: bool = False, workers: int = 0, confidence=None) -> ParsingScores:
    """Scores of `model` on every image of `dataset` (a non-augmented FaceParsingDataset).

    `confidence` (a labelaudit.confidence.ConfidenceStats) also collects the per-class mean
    self-confidence on the way: the scan's confident-learning thresholds, at no extra forward.
    """
    from labelaudit.data import collate

    classes = dataset.source.classes
    acc = ConfusionAccumulator(classes.num_classes)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate)
    for batch, probs in iter_predictions(model, loader, device, classes, amp=amp):
        for idx, p in zip(batch["index"].tolist(), probs):
            label = dataset.source.load_label(dataset.records[idx], dataset.labels_dir)
            acc.update(label, p.argmax(0))
            if confidence is not None:
                confidence.update(p, label)
    return acc.scores(classes.names)
