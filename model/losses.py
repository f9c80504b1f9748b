"""DML-CSR training losses (docs/design.md §2 "Losses"; Zheng et al., CVPR 2022, eq. 1-4 and 7).

Shapes: N images, C parsing classes, (h, w) logit size (stride 4), (H, W) label size (input
resolution). Logits are upsampled bilinearly (align_corners=True) to (H, W) inside the losses and
evaluated in float32. Every loss below is a mean over valid (non-ignored) pixels, in nats, and is
0 (still differentiable) when there is nothing to average over. Label tensors are never written.

Choices where the paper leaves room (all "paper" mode):
- Binary and category edge losses are class-balanced CE with weights w_c = 1 / n_c (n_c = batch
  count of class c among valid pixels, 0 for absent classes), as a weighted mean
  sum_i w_{y_i} l_i / sum_i w_{y_i}. For the binary head this is exactly "edge weighted by the
  non-edge frequency and vice versa" (the weights differ by a constant factor, which the weighted
  mean cancels); it also equals the average over present classes of each class's mean CE, so a
  batch without edge pixels gives the plain non-edge CE instead of 0/0.
- Category edge attention: per image, sum_i w_{y_i} CE_i / sum_i w_{y_i} over the image's
  category-edge pixels (category edge label not 0 and not ignored), w_j = 1 / n_j with n_j the
  number of category-edge pixels of class j in the whole batch. Per image this is a weighted
  mean, so a tail class's few boundary pixels weigh as much as a head class's many.
- Both attention terms average over the images that have such edge pixels; images without any
  contribute nothing (no NaN).
- CSR phase, two compositions (``DMLCSRLoss(composition=...)``):
  - "add" (eq. 7 read as an extra term): total = DML terms + alpha0 * (KL_parsing + Lovász)
    + alpha1 * KL_binary + alpha2 * KL_category. The Lovász on hard labels is grouped with the
    parsing distillation weight alpha0; since the DML parsing loss already contains the same
    Lovász value, it is computed once and counted with weight lambda0 + alpha0 in that phase.
  - "replace" (the released code): the soft target takes the place of the hard one in the three
    supervised terms: lambda0 * (KL_parsing + Lovász) + lambda1 * KL_binary + lambda2 *
    KL_category + the two attention terms, which stay on the hard labels. The student then no
    longer fits a given label the teacher disagrees with, except through Lovász and attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .edge_labels import edge_labels

__all__ = [
    "LossWeights",
    "DMLCSRLoss",
    "lovasz_softmax",
    "balanced_cross_entropy",
    "edge_attention_loss",
    "category_edge_attention_loss",
    "distillation_kl",
    "csr_alpha",
    "upsample_logits",
    "COMPOSITIONS",
]

COMPOSITIONS = ("add", "replace")  # how the CSR distillation joins the DML loss
_DISTILL_TERMS = ("distill_parsing", "distill_binary_edge", "distill_category_edge")


@dataclass
class LossWeights:
    """Weights of the DML-CSR loss terms (paper defaults).

    Args:
        parsing: lambda0, parsing CE + Lovász.
        binary_edge: lambda1, class-balanced binary edge CE.
        category_edge: lambda2, class-balanced category edge CE.
        binary_attention: lambda3, parsing CE on binary edge pixels (eq. 3).
        category_attention: lambda4, class-weighted parsing CE on category edge pixels (eq. 4).
        distill_parsing: alpha0, KL to the teacher's parsing target (+ Lovász on hard labels).
        distill_binary_edge: alpha1, KL to the teacher's binary edge target.
        distill_category_edge: alpha2, KL to the teacher's category edge target.
        edge_width: width in pixels of the generated edge band (see ``model.edge_labels.edge_labels``).
    """

    parsing: float = 1.0
    binary_edge: float = 1.0
    category_edge: float = 1.0
    binary_attention: float = 4.0
    category_attention: float = 1.0
    distill_parsing: float = 1.0
    distill_binary_edge: float = 1.0
    distill_category_edge: float = 0.1
    edge_width: int = 1


def upsample_logits(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinearly resize (N, K, h, w) logits to (N, K, H, W), align_corners=True, as float32."""
    size = tuple(int(s) for s in size)
    if tuple(logits.shape[-2:]) != size:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
    return logits.float()


def _zero_like(t: torch.Tensor) -> torch.Tensor:
    """A 0 that keeps ``t`` in the autograd graph (so backward() works on empty batches)."""
    return t.sum() * 0.0


def _lovasz_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss at a sorted error vector.

    Args:
        fg_sorted: (P,) float 0/1 ground-truth membership, ordered by decreasing error.

    Returns:
        (P,) the increments Delta_J(first i pixels) - Delta_J(first i-1 pixels).
    """
    gts = fg_sorted.sum()
    intersection = gts - fg_sorted.cumsum(0)
    union = gts + (1.0 - fg_sorted).cumsum(0)  # >= 1 at every position, never 0/0
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def lovasz_softmax(
    probs: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = 255,
    classes: str | Sequence[int] = "present",
) -> torch.Tensor:
    """Lovász-softmax loss (Berman et al., CVPR 2018), flattened over the whole batch.

    Args:
        probs: (N, C, H, W) class probabilities (softmax output).
        labels: (N, H, W) long class indices, ``ignore_index`` = ignored.
        ignore_index: label excluded from the loss.
        classes: "present" (classes occurring in the valid labels), "all", or a list of ids.

    Returns:
        Scalar: mean over the selected classes of the Lovász-extended Jaccard loss, in [0, 1];
        0 with a gradient path when there is no valid pixel or no selected class.
    """
    num_classes = probs.shape[1]
    p = probs.permute(0, 2, 3, 1).reshape(-1, num_classes)
    y = labels.reshape(-1)
    valid = y != ignore_index
    p, y = p[valid], y[valid]
    if y.numel() == 0:
        return _zero_like(probs)
    if classes == "present":
        class_ids = torch.unique(y).tolist()
    elif classes == "all":
        class_ids = list(range(num_classes))
    else:
        class_ids = [int(c) for c in classes]
    losses = []
    for c in class_ids:
        fg = (y == c).to(p.dtype)
        errors = (fg - p[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[order])))
    if not losses:
        return _zero_like(probs)
    return torch.stack(losses).mean()


def _valid_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of (N, H, W) ``values`` over ``valid`` pixels; 0 when none."""
    return (values * valid).sum() / valid.sum().clamp_min(1)


def balanced_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255
) -> torch.Tensor:
    """Cross-entropy with per-batch inverse-frequency class weights.

    Args:
        logits: (N, K, H, W) float logits at the target's resolution.
        target: (N, H, W) long in [0, K) or ``ignore_index``.

    Returns:
        Scalar sum_i w_{y_i} CE_i / sum_i w_{y_i} with w_c = 1 / n_c (n_c = valid pixels of
        class c in the batch; absent classes get weight 0). For K = 2 this equals weighting
        each class by the other's frequency. 0 when no pixel is valid.
    """
    num_classes = logits.shape[1]
    nll = F.cross_entropy(logits, target, reduction="none", ignore_index=ignore_index)
    valid = target != ignore_index
    # Bin K collects ignored pixels so counting needs no boolean indexing (no device sync).
    bins = torch.where(valid, target, torch.full_like(target, num_classes)).reshape(-1)
    counts = torch.zeros(num_classes + 1, device=logits.device).scatter_add_(
        0, bins, torch.ones_like(bins, dtype=torch.float32)
    )
    class_weight = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
    class_weight[num_classes] = 0.0
    pixel_weight = class_weight[bins].view_as(nll)
    return (pixel_weight * nll).sum() / pixel_weight.sum().clamp_min(1e-12)


def _mean_over_images(per_image_sum: torch.Tensor, per_image_norm: torch.Tensor) -> torch.Tensor:
    """Mean over images with norm > 0 of sum / norm; 0 when no image qualifies. Inputs (N,)."""
    has = per_image_norm > 0
    per_image = per_image_sum / torch.where(has, per_image_norm, torch.ones_like(per_image_norm))
    return (per_image * has).sum() / has.sum().clamp_min(1)


def edge_attention_loss(pixel_ce: torch.Tensor, binary_edge: torch.Tensor) -> torch.Tensor:
    """Binary edge attention (eq. 3): per image, parsing CE averaged over GT edge pixels.

    Args:
        pixel_ce: (N, H, W) per-pixel parsing CE (0 on ignored pixels).
        binary_edge: (N, H, W) long in {0, 1, ignore}.

    Returns:
        Scalar mean over images that have edge pixels; 0 if none has.
    """
    on_edge = (binary_edge == 1).to(pixel_ce.dtype)
    return _mean_over_images((pixel_ce * on_edge).sum((1, 2)), on_edge.sum((1, 2)))


def category_edge_attention_loss(
    pixel_ce: torch.Tensor, category_edge: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """Category edge attention (eq. 4): class-weighted parsing CE on category-edge pixels.

    Args:
        pixel_ce: (N, H, W) per-pixel parsing CE (0 on ignored pixels).
        category_edge: (N, H, W) long; category-edge pixels are those not 0 and not ignored.
        num_classes: C.

    Returns:
        Scalar: mean over images with category-edge pixels of
        sum_i w_{y_i} CE_i / sum_i w_{y_i}, w_j = 1 / (batch count of class j on category edges).
    """
    on_edge = (category_edge != 0) & (category_edge != ignore_index)
    bins = torch.where(on_edge, category_edge, torch.full_like(category_edge, num_classes))
    counts = torch.zeros(num_classes + 1, device=pixel_ce.device).scatter_add_(
        0, bins.reshape(-1), torch.ones(bins.numel(), device=pixel_ce.device)
    )
    class_weight = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
    class_weight[num_classes] = 0.0
    pixel_weight = class_weight[bins]  # 0 off the category edges
    return _mean_over_images((pixel_weight * pixel_ce).sum((1, 2)), pixel_weight.sum((1, 2)))


def csr_alpha(cycle: int) -> float:
    """Weight of the ground truth in the CSR teacher target after ``cycle`` (m) cycles: 1/(m+1)."""
    if cycle < 0:
        raise ValueError(f"cycle must be >= 0, got {cycle}")
    return 1.0 / (cycle + 1)


def distillation_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float,
    ignore_index: int = 255,
) -> torch.Tensor:
    """KL(teacher target || student) of eq. 7, mean over valid pixels (temperature 1).

    Args:
        student_logits: (N, K, H, W) float logits at the target's resolution.
        teacher_logits: (N, K, H, W) float logits (no gradient flows into them).
        target: (N, H, W) long hard labels in [0, K) or ``ignore_index``.
        alpha: weight of the one-hot ground truth in the teacher target.

    Returns:
        Scalar mean over valid pixels of sum_k q_k (log q_k - log p_k), with
        q = softmax((1 - alpha) * teacher_logits + alpha * onehot(target)), p = softmax(student).
    """
    num_classes = student_logits.shape[1]
    valid = target != ignore_index
    safe_target = torch.where(valid, target, torch.zeros_like(target))  # a new tensor
    onehot = F.one_hot(safe_target, num_classes).permute(0, 3, 1, 2).to(teacher_logits.dtype)
    onehot = onehot * valid.unsqueeze(1)  # ignored pixels get no ground-truth term
    mixed = (1.0 - alpha) * teacher_logits.detach() + alpha * onehot
    log_q = F.log_softmax(mixed, dim=1)
    log_p = F.log_softmax(student_logits, dim=1)
    kl = (log_q.exp() * (log_q - log_p)).sum(1)
    return _valid_mean(kl, valid)


def _split_outputs(outputs: Sequence[torch.Tensor], name: str) -> tuple[torch.Tensor, ...]:
    """Check that ``outputs`` is the training model's (parsing, binary_edge, category_edge)."""
    if isinstance(outputs, torch.Tensor) or len(outputs) != 3:
        raise ValueError(
            f"{name} must be the training model's (parsing, binary_edge, category_edge) logits"
        )
    return tuple(outputs)


class DMLCSRLoss(nn.Module):
    """Total DML loss, plus the CSR distillation terms when teacher outputs are given.

    Args:
        weights: term weights and edge width; paper defaults when None.
        ignore_index: ignored label value.
        mode: only "paper" is implemented.
        composition: how the CSR distillation joins the DML loss, "add" or "replace" (see the
            module docstring).
    """

    def __init__(
        self, weights: LossWeights | None = None, ignore_index: int = 255, mode: str = "paper",
        composition: str = "add",
    ) -> None:
        super().__init__()
        if mode != "paper":
            raise ValueError(f"unknown loss mode {mode!r}; only 'paper' is implemented")
        if composition not in COMPOSITIONS:
            raise ValueError(f"unknown CSR loss composition {composition!r}; choose {' or '.join(COMPOSITIONS)}")
        self.weights = weights if weights is not None else LossWeights()
        self.ignore_index = ignore_index
        self.mode = mode
        self.composition = composition

    def forward(
        self,
        outputs: Sequence[torch.Tensor],
        labels: torch.Tensor,
        teacher_outputs: Sequence[torch.Tensor] | None = None,
        cycle: int | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Compute the loss.

        Args:
            outputs: student logits (parsing (N, C, h, w), binary edge (N, 2, h, w),
                category edge (N, C, h, w)), any stride; upsampled to the labels' size.
            labels: (N, H, W) long parsing labels, ``ignore_index`` = ignored. Not modified.
            teacher_outputs: the self-ensembled teacher's logits, same layout; enables CSR.
            cycle: m, the number of snapshots averaged into the teacher (alpha = 1/(m+1));
                required with ``teacher_outputs``.

        Returns:
            (total, components): the scalar to backpropagate and a dict of unweighted float
            components ("parsing_ce", "parsing_lovasz", "binary_edge", "category_edge",
            "binary_attention", "category_attention", with CSR also "distill_parsing",
            "distill_binary_edge", "distill_category_edge"), plus "dml", "distill" (weighted
            sub-totals) and "total".
        """
        w = self.weights
        size = labels.shape[-2:]
        logits = tuple(upsample_logits(t, size) for t in _split_outputs(outputs, "outputs"))
        targets = (labels, *edge_labels(labels, w.edge_width, ignore_index=self.ignore_index))
        terms = self._hard_terms(logits, targets)
        if teacher_outputs is not None:
            if cycle is None:
                raise ValueError("cycle (number of averaged snapshots m) is needed with a teacher")
            soft = (upsample_logits(t.detach(), size) for t in _split_outputs(teacher_outputs, "teacher_outputs"))
            alpha = csr_alpha(cycle)
            for name, student, teacher, target in zip(_DISTILL_TERMS, logits, soft, targets):
                terms[name] = distillation_kl(student, teacher, target, alpha, self.ignore_index)
        dml, distill = self._compose(terms)
        total = dml + distill
        terms.update(dml=dml, distill=distill, total=total)
        names = list(terms)
        # One host transfer for all logged values instead of one sync per component.
        values = torch.stack([terms[k].detach().float() for k in names]).tolist()
        return total, dict(zip(names, values))

    def _hard_terms(self, logits: tuple[torch.Tensor, ...], targets: tuple[torch.Tensor, ...]
                    ) -> dict[str, torch.Tensor]:
        """The DML terms on the given labels (unweighted), logits and targets at label size."""
        (parsing, binary_logits, category_logits), (labels, binary_edge, category_edge) = logits, targets
        ignore = self.ignore_index
        pixel_ce = F.cross_entropy(parsing, labels, reduction="none", ignore_index=ignore)
        return {
            "parsing_ce": _valid_mean(pixel_ce, labels != ignore),
            "parsing_lovasz": lovasz_softmax(F.softmax(parsing, dim=1), labels, ignore),
            "binary_edge": balanced_cross_entropy(binary_logits, binary_edge, ignore),
            "category_edge": balanced_cross_entropy(category_logits, category_edge, ignore),
            "binary_attention": edge_attention_loss(pixel_ce, binary_edge),
            "category_attention": category_edge_attention_loss(
                pixel_ce, category_edge, parsing.shape[1], ignore
            ),
        }

    def _compose(self, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(dml, distill) weighted sub-totals; see the module docstring for the two compositions."""
        w = self.weights
        attention = (w.binary_attention * terms["binary_attention"]
                     + w.category_attention * terms["category_attention"])
        if "distill_parsing" in terms and self.composition == "replace":
            # soft targets in the hard targets' places, same lambdas
            distill = (w.parsing * terms["distill_parsing"] + w.binary_edge * terms["distill_binary_edge"]
                       + w.category_edge * terms["distill_category_edge"])
            return w.parsing * terms["parsing_lovasz"] + attention, distill
        dml = (w.parsing * (terms["parsing_ce"] + terms["parsing_lovasz"])
               + w.binary_edge * terms["binary_edge"] + w.category_edge * terms["category_edge"]
               + attention)
        if "distill_parsing" not in terms:
            return dml, _zero_like(dml)
        distill = (w.distill_parsing * (terms["distill_parsing"] + terms["parsing_lovasz"])
                   + w.distill_binary_edge * terms["distill_binary_edge"]
                   + w.distill_category_edge * terms["distill_category_edge"])
        return dml, distill
