"""Label/image file reading and writing: bit-exact round trips and clear rejections."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from labelaudit.data.errors import BadInputError
from labelaudit.data.io import (
    check_label_values, png_header, read_image, read_label, read_part_mask, write_label,
)


def test_write_read_label_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    label = rng.integers(0, 19, size=(37, 53), dtype=np.uint8)
    label[0, :5] = 255
    path = write_label(tmp_path / "sub" / "a.png", label)
    back = read_label(path)
    assert back.dtype == np.uint8 and back.shape == (37, 53)
    np.testing.assert_array_equal(back, label)
    hdr = png_header(path)
    assert (hdr.color_type, hdr.bit_depth, hdr.width, hdr.height) == (0, 8, 53, 37)
    # atomic write leaves no temporary files behind and overwrites in place
    write_label(path, np.zeros((2, 2), np.uint8))
    assert read_label(path).shape == (2, 2)
    assert sorted(os.listdir(tmp_path / "sub")) == ["a.png"]


def test_write_label_rejects_wrong_dtype(tmp_path):
    with pytest.raises(ValueError):
        write_label(tmp_path / "a.png", np.zeros((4, 4), np.int64))
    with pytest.raises(ValueError):
        write_label(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))


def test_palette_and_rgb_labels_are_rejected(tmp_path):
    from PIL import Image

    label = np.array([[0, 1], [2, 3]], np.uint8)
    pal = Image.fromarray(label, mode="L").convert("P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    pal.save(tmp_path / "pal.png")
    assert png_header(tmp_path / "pal.png").color_type == 3
    with pytest.raises(BadInputError) as e:
        read_label(tmp_path / "pal.png")
    assert str(tmp_path / "pal.png") in str(e.value) and "palette" in str(e.value)

    cv2.imwrite(str(tmp_path / "rgb.png"), np.dstack([label] * 3))
    with pytest.raises(BadInputError, match="RGB") as e:
        read_label(tmp_path / "rgb.png")
    assert e.value.path == tmp_path / "rgb.png"


def test_low_bit_depth_label_keeps_indices(tmp_path):
    from PIL import Image

    label = np.array([[0, 1, 1], [1, 0, 0]], bool)
    Image.fromarray(label).save(tmp_path / "b.png")  # mode "1": 1-bit greyscale
    assert png_header(tmp_path / "b.png").bit_depth == 1
    np.testing.assert_array_equal(read_label(tmp_path / "b.png"), label.astype(np.uint8))


def test_16bit_label_accepted_when_values_fit(tmp_path):
    cv2.imwrite(str(tmp_path / "ok.png"), np.array([[0, 5], [255, 3]], np.uint16))
    np.testing.assert_array_equal(read_label(tmp_path / "ok.png"), [[0, 5], [255, 3]])
    cv2.imwrite(str(tmp_path / "big.png"), np.array([[0, 300]], np.uint16))
    with pytest.raises(BadInputError, match="300"):
        read_label(tmp_path / "big.png")


def test_not_a_png_and_missing_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"hello world, not a png at all")
    with pytest.raises(BadInputError, match="not a PNG"):
        read_label(tmp_path / "x.png")
    with pytest.raises(BadInputError, match="not found") as e:
        read_label(tmp_path / "missing.png")
    assert "missing.png" in str(e.value)


def test_read_image_is_rgb_and_rejects_corrupt(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 0] = 200  # red in RGB
    cv2.imwrite(str(tmp_path / "a.png"), img[:, :, ::-1])
    out = read_image(tmp_path / "a.png")
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out[..., 0] == 200).all() and (out[..., 2] == 0).all()

    (tmp_path / "bad.jpg").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(BadInputError, match="corrupt") as e:
        read_image(tmp_path / "bad.jpg")
    assert str(tmp_path / "bad.jpg") in str(e.value)

    ok, buf = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))
    (tmp_path / "trunc.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(BadInputError, match="truncated"):
        read_image(tmp_path / "trunc.jpg")


def test_part_mask_one_or_three_channels(tmp_path):
    m = np.zeros((6, 6), np.uint8)
    m[1:3, 2:5] = 255
    cv2.imwrite(str(tmp_path / "g.png"), m)
    cv2.imwrite(str(tmp_path / "c.png"), np.dstack([m] * 3))
    for name in ("g.png", "c.png"):
        np.testing.assert_array_equal(read_part_mask(tmp_path / name), m > 0)


def test_check_label_values(tmp_path):
    check_label_values(np.array([[0, 10, 255]], np.uint8), 11, tmp_path / "l.png")
    with pytest.raises(BadInputError) as e:
        check_label_values(np.array([[0, 11, 255, 12]], np.uint8), 11, tmp_path / "l.png")
    assert "11, 12" in str(e.value) and "l.png" in str(e.value)
