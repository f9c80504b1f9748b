"""Reading and writing the image and label files of face-parsing datasets.

Every reader raises `BadInputError` naming the file and the problem; none returns None.
Label maps are index PNGs: one 8-bit channel, pixel value = class id, 255 = ignore.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labelaudit.data.classes import IGNORE_INDEX
from labelaudit.data.errors import BadInputError
from labelaudit.files import write_bytes_atomic

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette (PIL mode P)", 4: "grayscale+alpha", 6: "RGBA"}


@dataclass(frozen=True)
class PngHeader:
    """The IHDR fields of a PNG file that decide how its pixels decode."""

    width: int
    height: int
    bit_depth: int
    color_type: int

    @property
    def color_name(self) -> str:
        return _PNG_COLOR_TYPES.get(self.color_type, f"colour type {self.color_type}")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BadInputError(path, "file not found") from None
    except IsADirectoryError:
        raise BadInputError(path, "is a directory, expected a file") from None
    except OSError as e:
        raise BadInputError(path, f"cannot read file ({e.strerror or e})") from None


def _parse_png_header(data: bytes, path: Path) -> PngHeader:
    # The IHDR chunk is always first: signature(8) length(4) "IHDR"(4) w(4) h(4) depth(1) type(1).
    if len(data) < 26 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise BadInputError(path, "not a PNG file (bad signature or header)")
    width, height, depth, color_type = struct.unpack(">IIBB", data[16:26])
    return PngHeader(width, height, depth, color_type)


def png_header(path: str | Path) -> PngHeader:
    """Read only the PNG header: exact colour type and bit depth, without decoding pixels.

    cv2 silently expands palette PNGs to BGR, so the header is the only reliable way to tell
    an index PNG from a palette or colour one.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(26)
    except FileNotFoundError:
        raise BadInputError(path, "file not found") from None
    except OSError as e:
        raise BadInputError(path, f"cannot read file ({e.strerror or e})") from None
    return _parse_png_header(data, path)


def _decode(data: bytes, path: Path, flags: int, what: str) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if arr is None:
        raise BadInputError(path, f"unreadable or corrupt {what} (decoder failed)")
    return arr


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 **RGB** (grey and alpha images are converted)."""
    path = Path(path)
    data = _read_bytes(path)
    # libjpeg decodes a truncated JPEG with a grey bottom and only a warning: catch it here.
    if data[:2] == b"\xff\xd8" and data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        raise BadInputError(path, "corrupt image: truncated JPEG (no end-of-image marker)")
    bgr = _decode(data, path, cv2.IMREAD_COLOR, "image")
    if bgr.dtype != np.uint8:  # IMREAD_COLOR gives 8 bits; keep the guard for odd codecs
        raise BadInputError(path, f"unsupported image dtype {bgr.dtype}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def read_label(path: str | Path) -> np.ndarray:
    """Read an index-PNG label map to (H, W) uint8.

    Accepted: single-channel greyscale PNGs of 8 bits (the normal case), 1/2/4 bits (values are
    taken as indices, not rescaled) and 16 bits when every value fits in 0..255. Rejected with
    BadInputError: palette, RGB(A) and grey+alpha PNGs, and anything that is not a PNG, because
    their pixel values are colours, not class indices.
    """
    path = Path(path)
    data = _read_bytes(path)
    hdr = _parse_png_header(data, path)
    if hdr.color_type != 0:
        hint = ""
        if hdr.color_type == 3:
            hint = " (convert with e.g. np.array(PIL.Image.open(p)) and write_label, if the " \
                   "palette indices are the class ids)"
        raise BadInputError(
            path, f"label PNG is {hdr.color_name}; expected a single-channel index PNG{hint}")
    arr = _decode(data, path, cv2.IMREAD_UNCHANGED, "label PNG")
    if arr.ndim != 2:
        raise BadInputError(path, f"label PNG decoded with shape {arr.shape}; expected (H, W)")
    if hdr.bit_depth < 8:
        # libpng (inside cv2) expands low-depth grey by bit replication (1 -> 255 at 1 bit).
        arr = arr // (255 // (2 ** hdr.bit_depth - 1))
    elif hdr.bit_depth == 16:
        if arr.size and int(arr.max()) > 255:
            raise BadInputError(path, f"16-bit label PNG has value {int(arr.max())} > 255")
    return arr.astype(np.uint8, copy=False)


def read_gray(path: str | Path) -> np.ndarray:
    """Read any image as (H, W) uint8 greyscale (Helen's per-class maps)."""
    path = Path(path)
    return _decode(_read_bytes(path), path, cv2.IMREAD_GRAYSCALE, "image")


def read_part_mask(path: str | Path) -> np.ndarray:
    """Read a CelebAMask-HQ part mask (white on black, 1 or 3 channels) to (H, W) bool.

    A pixel belongs to the part when its first colour channel is non-zero, as in the official
    merge script (`im[:, :, 0] != 0`); an alpha channel is ignored.
    """
    path = Path(path)
    arr = _decode(_read_bytes(path), path, cv2.IMREAD_UNCHANGED, "part mask")
    if arr.ndim == 3:
        arr = arr[:, :, 0]
    return arr != 0


def check_label_values(label: np.ndarray, num_classes: int, path: str | Path) -> None:
    """Raise BadInputError when `label` holds a value >= num_classes that is not 255 (ignore)."""
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    bad = [int(v) for v in present if v >= num_classes and v != IGNORE_INDEX]
    if bad:
        shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
        raise BadInputError(
            path, f"label values {{{shown}}} are >= the {num_classes} classes and not 255 (ignore)")


def write_label(path: str | Path, label: np.ndarray) -> Path:
    """Write (H, W) uint8 `label` as an 8-bit greyscale index PNG, atomically.

    The file appears complete or not at all (labelaudit.files.atomic_file), so readers in other
    processes never see half a PNG. Parents are created.
    """
    path = Path(path)
    label = np.asarray(label)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f"label must be (H, W) uint8, got {label.shape} {label.dtype}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(label))
    if not ok:
        raise OSError(f"cannot encode PNG for {path}")
    return write_bytes_atomic(path, buf.tobytes())
