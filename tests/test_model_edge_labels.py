"""Edge labels on hand-drawn label maps (expected maps written out by hand)."""

import torch

from model.edge_labels import edge_labels

I = 255  # ignore


def _t(rows):
    return torch.tensor(rows, dtype=torch.long)


def test_square_on_background_binary_and_category():
    label = torch.zeros(5, 5, dtype=torch.long)
    label[1:3, 1:3] = 1
    binary, category = edge_labels(label.unsqueeze(0))
    expected_binary = _t(
        [
            [0, 1, 1, 0, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0],
            [0, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
        ]
    )
    expected_category = torch.zeros(5, 5, dtype=torch.long)
    expected_category[1:3, 1:3] = 1  # background (class 0) edge pixels stay 0
    assert binary.shape == (1, 5, 5) and binary.dtype == torch.long
    assert torch.equal(binary[0], expected_binary)
    assert torch.equal(category[0], expected_category)


def test_category_edge_keeps_nonzero_background_class_and_width_2_dilates():
    label = torch.full((7, 7), 3, dtype=torch.long)
    label[1:3, 1:3] = 2
    binary, category = edge_labels(label.unsqueeze(0), width=2)
    expected_binary = torch.zeros(7, 7, dtype=torch.long)
    expected_binary[:5, :5] = 1
    expected_binary[4, 4] = 0  # Chebyshev distance 2 from every width-1 edge pixel
    assert torch.equal(binary[0], expected_binary)
    expected_category = expected_binary * 3
    expected_category[1:3, 1:3] = 2
    assert torch.equal(category[0], expected_category)


def test_ignored_pixels_never_make_edges_and_stay_ignored():
    label = _t([[1, 1, I, 2], [1, 1, I, 2], [1, 1, 1, 1]]).unsqueeze(0)
    before = label.clone()
    binary, category = edge_labels(label)
    assert torch.equal(binary[0], _t([[0, 0, I, 0], [0, 0, I, 1], [0, 0, 0, 1]]))
    assert torch.equal(category[0], _t([[0, 0, I, 0], [0, 0, I, 2], [0, 0, 0, 1]]))
    # A wide band must not overwrite ignored pixels either.
    binary2, _ = edge_labels(label, width=3)
    # Edges sit in column 3; width 3 reaches 2 columns left, so column 0 stays 0.
    assert torch.equal(binary2[0], _t([[0, 1, I, 1], [0, 1, I, 1], [0, 1, 1, 1]]))
    assert torch.equal(label, before)


def test_images_in_a_batch_are_independent_and_2d_input_works():
    a = torch.zeros(4, 4, dtype=torch.long)
    b = torch.zeros(4, 4, dtype=torch.long)
    b[:, 2:] = 1
    binary, _ = edge_labels(torch.stack([a, b]), width=2)
    assert binary[0].sum() == 0  # no bleeding of b's edges into a
    assert torch.equal(binary[1], torch.ones(4, 4, dtype=torch.long))
    binary2d, category2d = edge_labels(b)
    assert binary2d.shape == (4, 4)
    assert torch.equal(binary2d, _t([[0, 1, 1, 0]] * 4))
    assert torch.equal(category2d, _t([[0, 0, 1, 0]] * 4))


def test_num_classes_check_and_all_ignored():
    import pytest

    with pytest.raises(ValueError):
        edge_labels(_t([[[0, 5]]]), num_classes=3)
    binary, category = edge_labels(torch.full((1, 3, 3), I, dtype=torch.long), width=2)
    assert (binary == I).all() and (category == I).all()
