"""DML-CSR losses against hand-computed values and independent formulas."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from model.losses import (
    DMLCSRLoss,
    LossWeights,
    balanced_cross_entropy,
    category_edge_attention_loss,
    csr_alpha,
    distillation_kl,
    edge_attention_loss,
    lovasz_softmax,
)

I = 255


def _probs_1x5(extra_zero_class: bool = False) -> torch.Tensor:
    """(1, C, 1, 5) probabilities: pixels 0-3 = the hand example, pixel 4 is ignored."""
    p1 = torch.tensor([0.1, 0.6, 0.7, 0.2, 0.9])
    channels = [1 - p1, p1] + ([torch.zeros(5)] if extra_zero_class else [])
    return torch.stack(channels).view(1, -1, 1, 5)


LABELS_1X5 = torch.tensor([[[0, 0, 1, 1, I]]])
# By hand, labels 0 0 1 1 and P(class 1) = .1 .6 .7 .2. Errors are .1 .6 .3 .8 for both classes.
# Class 0, decreasing error order 3,1,2,0: Jaccard loss of the growing error set = 1/3, 2/3, 3/4, 1
#   -> 0.8/3 + 0.6/3 + 0.3/12 + 0.1/4 = 31/60.
# Class 1, same order: 1/2, 2/3, 1, 1 -> 0.8/2 + 0.6/6 + 0.3/3 + 0 = 36/60.
LOVASZ_HAND = (31 / 60 + 36 / 60) / 2


def test_lovasz_hand_value_ignores_pixels_and_selects_present_classes():
    assert lovasz_softmax(_probs_1x5(), LABELS_1X5).item() == pytest.approx(LOVASZ_HAND, abs=1e-6)
    three = _probs_1x5(extra_zero_class=True)
    assert lovasz_softmax(three, LABELS_1X5).item() == pytest.approx(LOVASZ_HAND, abs=1e-6)
    # "all": the absent class 2 has zero error everywhere and adds a 0 to the mean.
    assert lovasz_softmax(three, LABELS_1X5, classes="all").item() == pytest.approx(
        LOVASZ_HAND * 2 / 3, abs=1e-6
    )


def _lovasz_by_sets(p: torch.Tensor, y: torch.Tensor) -> float:
    """Lovász extension evaluated from its definition with Python sets (present classes)."""
    losses = []
    for c in sorted(set(y.tolist())):
        gt = {i for i, v in enumerate(y.tolist()) if v == c}
        errors = [abs(float(i in gt) - p[i, c].item()) for i in range(len(y))]
        order = sorted(range(len(y)), key=lambda i: -errors[i])
        total, prev, wrong = 0.0, 0.0, set()
        for i in order:
            wrong.add(i)
            inter = len(gt - wrong)
            union = len(gt | wrong)
            jac = 1 - inter / union
            total += errors[i] * (jac - prev)
            prev = jac
        losses.append(total)
    return sum(losses) / len(losses)


def test_lovasz_matches_set_definition_on_random_case():
    g = torch.Generator().manual_seed(0)
    probs = F.softmax(torch.randn(2, 3, 2, 3, generator=g), dim=1)
    labels = torch.randint(0, 3, (2, 2, 3), generator=g)
    flat_p = probs.permute(0, 2, 3, 1).reshape(-1, 3)
    expected = _lovasz_by_sets(flat_p, labels.reshape(-1))
    assert lovasz_softmax(probs, labels).item() == pytest.approx(expected, abs=1e-6)


def test_lovasz_perfect_prediction_is_zero_and_no_valid_pixel_gives_zero_with_grad():
    labels = torch.tensor([[[0, 1], [2, 1]]])
    perfect = F.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    assert lovasz_softmax(perfect, labels).item() == 0.0
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = lovasz_softmax(F.softmax(logits, 1), torch.full((1, 2, 2), I))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def _nll(logits_pixel, y):
    """-log softmax(logits)[y] of one pixel from the definition."""
    return math.log(sum(math.exp(v) for v in logits_pixel)) - logits_pixel[y]


def test_binary_edge_balanced_ce_weights_by_the_other_class_frequency():
    logits = torch.tensor([[[[2.0, -1.0], [0.5, 3.0]], [[0.0, 1.0], [1.5, -2.0]]]])
    target = torch.tensor([[[1, 0], [0, I]]])  # 1 edge, 2 non-edge, 1 ignored
    before = target.clone()
    w = {0: 1 / 3, 1: 2 / 3}  # non-edge <- edge frequency, edge <- non-edge frequency
    pix = [((0, 0), 1), ((0, 1), 0), ((1, 0), 0)]
    num = sum(w[y] * _nll([logits[0, k, r, c].item() for k in range(2)], y) for (r, c), y in pix)
    expected = num / sum(w[y] for _, y in pix)
    got = balanced_cross_entropy(logits, target)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert torch.equal(target, before)


def test_category_edge_balanced_ce_inverse_frequency_absent_class_harmless():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 3, 2, 2, generator=g)
    target = torch.tensor([[[0, 0], [2, 0]]])  # class 1 absent
    weight = torch.tensor([1 / 3, 0.0, 1.0])
    expected = F.cross_entropy(logits, target, weight=weight)
    assert balanced_cross_entropy(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_edge_attention_is_a_mean_of_per_image_means_and_skips_edgeless_images():
    pixel_ce = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0]], [[10.0, 0.0], [0.0, 0.0]], [[7.0, 7.0], [7.0, 7.0]]]
    )
    edges = torch.tensor([[[1, 1], [1, 0]], [[1, 0], [0, 0]], [[0, 0], [0, I]]])
    # image 0: (1+2+3)/3 = 2, image 1: 10, image 2 has no edge -> (2 + 10) / 2
    assert edge_attention_loss(pixel_ce, edges).item() == pytest.approx(6.0)


def test_category_edge_attention_hand_value():
    pixel_ce = torch.tensor([[[1.0, 2.0], [4.0, 9.0]], [[5.0, 8.0], [8.0, 8.0]]])
    category = torch.tensor([[[1, 1], [2, 0]], [[1, 0], [0, I]]])
    # batch counts on category edges: class 1 -> 3, class 2 -> 1; w1 = 1/3, w2 = 1.
    # image 0: (1/3 + 2/3 + 4) / (5/3) = 3; image 1: 5; mean 4.
    got = category_edge_attention_loss(pixel_ce, category, num_classes=3)
    assert got.item() == pytest.approx(4.0)


def test_attention_without_edges_is_zero_with_finite_grads():
    pixel_ce = torch.rand(2, 3, 3, requires_grad=True)
    zero_edges = torch.zeros(2, 3, 3, dtype=torch.long)
    loss = edge_attention_loss(pixel_ce, zero_edges) + category_edge_attention_loss(
        pixel_ce, zero_edges, num_classes=4
    )
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(pixel_ce.grad).all()


def test_distillation_zero_when_student_equals_mixed_target():
    g = torch.Generator().manual_seed(2)
    teacher = torch.randn(2, 4, 3, 3, generator=g)
    target = torch.randint(0, 4, (2, 3, 3), generator=g)
    target[0, 0, 0] = I
    alpha = csr_alpha(2)
    onehot = torch.zeros(2, 4, 3, 3)
    for n in range(2):
        for r in range(3):
            for c in range(3):
                if target[n, r, c] != I:
                    onehot[n, target[n, r, c], r, c] = 1.0
    student = (1 - alpha) * teacher + alpha * onehot
    assert distillation_kl(student, teacher, target, alpha).item() == pytest.approx(0.0, abs=1e-6)


def test_distillation_alpha_mixing_at_one_cycle_and_ignored_pixels_excluded():
    assert csr_alpha(1) == 0.5
    teacher = torch.zeros(1, 2, 1, 2, requires_grad=True)
    student = torch.zeros(1, 2, 1, 2, requires_grad=True)
    with torch.no_grad():
        student[0, :, 0, 1] = torch.tensor([5.0, -5.0])  # the ignored pixel: must not count
    target = torch.tensor([[[0, I]]])
    before = target.clone()
    # mixed logits of pixel 0 = 0.5 * [0, 0] + 0.5 * [1, 0] = [0.5, 0]; student p = [0.5, 0.5]
    q0 = math.exp(0.5) / (1 + math.exp(0.5))
    q1 = 1 - q0
    expected = q0 * math.log(q0 / 0.5) + q1 * math.log(q1 / 0.5)
    loss = distillation_kl(student, teacher, target, alpha=0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert teacher.grad is None  # the teacher target is a constant
    assert torch.equal(target, before)


def _outputs(n, c, h, w, seed, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    shapes = [(n, c, h, w), (n, 2, h, w), (n, c, h, w)]
    return tuple(torch.randn(s, generator=g).requires_grad_(requires_grad) for s in shapes)


def _labels(n, c, h, w, seed=5):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n, h // 4, w // 4), generator=g)
    labels = labels.repeat_interleave(4, 1).repeat_interleave(4, 2)  # blobs, so there are edges
    labels[:, :2, :] = I
    return labels


def test_dmlcsr_total_gradients_components_and_labels_untouched():
    n, c = 2, 5
    labels = _labels(n, c, 16, 16)
    before = labels.clone()
    outputs = _outputs(n, c, 4, 4, seed=3)  # stride 4 logits for 16x16 labels
    teacher = _outputs(n, c, 4, 4, seed=4, requires_grad=False)
    weights = replace(LossWeights(), binary_attention=2.5, distill_category_edge=0.3, edge_width=2)
    loss_fn = DMLCSRLoss(weights)
    total, parts = loss_fn(outputs, labels, teacher_outputs=teacher, cycle=1)
    total.backward()
    assert torch.equal(labels, before)
    assert math.isfinite(total.item())
    for out in outputs:
        assert out.grad is not None and torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0
    assert all(isinstance(v, float) for v in parts.values())
    dml = (
        parts["parsing_ce"] + parts["parsing_lovasz"]
        + parts["binary_edge"] + parts["category_edge"]
        + 2.5 * parts["binary_attention"] + parts["category_attention"]
    )
    distill = (
        parts["distill_parsing"] + parts["parsing_lovasz"] + parts["distill_binary_edge"]
        + 0.3 * parts["distill_category_edge"]
    )
    assert parts["dml"] == pytest.approx(dml, rel=1e-5)
    assert parts["distill"] == pytest.approx(distill, rel=1e-5)
    assert parts["total"] == pytest.approx(dml + distill, rel=1e-5)
    # Logits are upsampled bilinearly with align_corners=True to the labels' size.
    up = F.interpolate(outputs[0].detach(), size=(16, 16), mode="bilinear", align_corners=True)
    expected_ce = F.cross_entropy(up, labels, ignore_index=I).item()
    assert parts["parsing_ce"] == pytest.approx(expected_ce, rel=1e-5)


def test_replace_composition_drops_the_hard_label_ce_and_edge_ce():
    """The released code's CSR loss: soft targets take the hard targets' places (same lambdas);
    Lovász and the attention terms stay on the hard labels."""
    n, c = 2, 5
    labels = _labels(n, c, 16, 16)
    outputs = _outputs(n, c, 4, 4, seed=3)
    teacher = _outputs(n, c, 4, 4, seed=4, requires_grad=False)
    weights = replace(LossWeights(), binary_attention=2.5, binary_edge=0.7, distill_parsing=9.0)
    total, parts = DMLCSRLoss(weights, composition="replace")(outputs, labels, teacher_outputs=teacher, cycle=1)
    expected = (
        parts["distill_parsing"] + parts["parsing_lovasz"] + 0.7 * parts["distill_binary_edge"]
        + parts["distill_category_edge"] + 2.5 * parts["binary_attention"] + parts["category_attention"]
    )
    assert parts["total"] == pytest.approx(expected, rel=1e-5)
    _, added = DMLCSRLoss(weights)(outputs, labels, teacher_outputs=teacher, cycle=1)
    assert added["total"] - parts["total"] > parts["parsing_ce"]  # add keeps the hard CE on top
    # Without a teacher (the DML phase) both compositions are the same loss.
    plain = [DMLCSRLoss(weights, composition=k)(outputs, labels)[1]["total"] for k in ("add", "replace")]
    assert plain[0] == plain[1]
    with pytest.raises(ValueError, match="composition"):
        DMLCSRLoss(composition="sum")


def test_dmlcsr_without_teacher_and_argument_checks():
    labels = _labels(1, 3, 8, 8)
    outputs = _outputs(1, 3, 8, 8, seed=6)
    total, parts = DMLCSRLoss()(outputs, labels)
    assert parts["distill"] == 0.0 and "distill_parsing" not in parts
    total.backward()
    with pytest.raises(ValueError):
        DMLCSRLoss()(outputs, labels, teacher_outputs=outputs)  # cycle missing
    with pytest.raises(ValueError):
        DMLCSRLoss()(outputs[0], labels)  # not the training tuple
    with pytest.raises(ValueError):
        DMLCSRLoss(mode="reference")


def test_dmlcsr_all_ignored_batch_is_finite():
    labels = torch.full((1, 8, 8), I, dtype=torch.long)
    outputs = _outputs(1, 3, 2, 2, seed=7)
    total, _ = DMLCSRLoss()(outputs, labels, teacher_outputs=outputs, cycle=3)
    total.backward()
    assert total.item() == 0.0
    assert all(torch.isfinite(o.grad).all() for o in outputs)
