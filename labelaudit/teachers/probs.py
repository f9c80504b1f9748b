"""Probability maps on disk: written by `labelaudit predict` or by any other program, read as a teacher.

The format (docs/design.md §11), one folder:

    classes.json            {"format": "labelaudit-probs-v1", "classes": ["background", "skin", ...]}
                            (a plain JSON list of names is accepted too)
    <image path>.npz        for every image, at its path relative to the dataset root with the
                            suffix replaced: train/images/0001.jpg -> train/images/0001.npz;
                            one array "probs", (C, H, W) in classes.json's order, in the frame of
                            the image's label: float16/float32 probabilities, or uint8 q where the
                            probability is q / 255.

Reading checks every map: C must match classes.json, values finite and >= 0, each pixel's row
summing to 1 (within 0.01, or C/255 for uint8), class names the same set as the dataset's (any
order: they are reordered). A map at another resolution is resized (bilinear, renormalised),
with one warning per teacher. A missing map is the image's problem, not the scan's: the scan
reports it, skips the image and counts it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from labelaudit.data.classes import ClassSet
from labelaudit.files import atomic_file
from labelaudit.teachers.base import Teacher

log = logging.getLogger(__name__)

FORMAT = "labelaudit-probs-v1"
CLASSES_FILE = "classes.json"
FLOAT_TOLERANCE = 0.01


class ProbsError(ValueError):
    """A probability map or classes.json that cannot be used; the message names the file."""


def map_path(folder: Path, key: str | Path) -> Path:
    """Where the map of the image at dataset-relative path `key` lives in `folder`."""
    return Path(folder) / Path(key).with_suffix(".npz")


def write_classes(folder: Path, names: list[str]) -> None:
    with atomic_file(Path(folder) / CLASSES_FILE, "w") as f:
        json.dump({"format": FORMAT, "classes": list(names)}, f, indent=1)


def write_map(folder: Path, key: str | Path, probs: np.ndarray, dtype: str = "float16") -> Path:
    """Store one image's (C, H, W) probabilities as float16 or uint8 (q = round(255 p))."""
    if dtype == "uint8":
        arr = np.clip(np.rint(probs * 255.0), 0, 255).astype(np.uint8)
    elif dtype in ("float16", "float32"):
        arr = probs.astype(dtype)
    else:
        raise ValueError(f"map dtype {dtype!r}: choose float16, float32 or uint8")
    path = map_path(folder, key)
    with atomic_file(path) as f:
        np.savez_compressed(f, probs=arr)
    return path


def read_classes(folder: Path) -> list[str]:
    path = Path(folder) / CLASSES_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProbsError(f"{path}: not found; a probability folder names its classes there") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ProbsError(f"{path}: unreadable ({e})") from e
    names = data.get("classes") if isinstance(data, dict) else data
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        raise ProbsError(f'{path}: expected {{"classes": [names...]}} or a list of class names')
    if len(set(names)) != len(names):
        raise ProbsError(f"{path}: class names repeat: {names}")
    return names


def class_order(file_names: list[str], classes: ClassSet, where: Path) -> np.ndarray:
    """Index into the file's channels for each of the dataset's classes, in the dataset's order."""
    missing = [n for n in classes.names if n not in file_names]
    extra = [n for n in file_names if n not in classes.names]
    if missing or extra:
        raise ProbsError(f"{where}: classes differ from the dataset's ({', '.join(classes.names)}): "
                         f"missing {missing or 'none'}, unknown {extra or 'none'}")
    return np.asarray([file_names.index(n) for n in classes.names])


def check_map(arr: np.ndarray, n_classes: int, path: Path) -> np.ndarray:
    """The map as float32 probabilities, or ProbsError saying what is wrong with it."""
    if arr.ndim != 3 or arr.shape[0] != n_classes:
        raise ProbsError(f"{path}: probs has shape {arr.shape}; expected ({n_classes}, H, W) "
                         f"for the {n_classes} classes of {CLASSES_FILE}")
    if arr.dtype == np.uint8:
        p, tol = arr.astype(np.float32) / 255.0, n_classes / 255.0
    elif arr.dtype.kind == "f":
        p, tol = arr.astype(np.float32), FLOAT_TOLERANCE
    else:
        raise ProbsError(f"{path}: probs is {arr.dtype}; expected float16, float32 or uint8")
    if not np.isfinite(p).all():
        raise ProbsError(f"{path}: probs holds NaN or infinite values")
    if (p < 0).any():
        raise ProbsError(f"{path}: probs holds negative values (min {p.min():.3g})")
    sums = p.sum(0)
    worst = float(np.abs(sums - 1.0).max())
    if worst > tol:
        raise ProbsError(f"{path}: per-pixel probabilities do not sum to 1 (off by up to "
                         f"{worst:.3g}; tolerance {tol:.3g}): softmax outputs are expected")
    return p / np.maximum(sums, 1e-6)


class ProbsTeacher(Teacher):
    """A folder of probability maps in the format above."""

    name = "probs"
    may_miss = True

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ProbsError(f"{self.folder}: no such probability folder")
        self.file_names = read_classes(self.folder)
        self._warned_resize = False

    def missing(self, key: str) -> str | None:
        path = map_path(self.folder, key)
        return None if path.is_file() else f"no probability map {path}"

    def load(self, key: str, classes: ClassSet, frame: tuple[int, int]) -> np.ndarray:
        """(C, H, W) float32 for the image at `key`, in the dataset's class order and `frame`."""
        path = map_path(self.folder, key)
        if not path.is_file():
            raise ProbsError(f"{path}: no probability map; the calibration and the thresholds read "
                             "the val split's maps too (`labelaudit predict` writes them)")
        try:
            with np.load(path) as z:
                arr = z["probs"]
        except KeyError:
            raise ProbsError(f"{path}: no array named 'probs'") from None
        except (OSError, ValueError) as e:
            raise ProbsError(f"{path}: unreadable map ({e})") from e
        p = check_map(arr, len(self.file_names), path)
        p = p[class_order(self.file_names, classes, self.folder / CLASSES_FILE)]
        if p.shape[1:] != tuple(frame):
            if not self._warned_resize:
                log.warning("%s: maps at %dx%d, labels at %dx%d: resizing (bilinear)", self.folder,
                            p.shape[2], p.shape[1], frame[1], frame[0])
                self._warned_resize = True
            p = np.stack([cv2.resize(c, (frame[1], frame[0]), interpolation=cv2.INTER_LINEAR) for c in p])
            p /= np.maximum(p.sum(0), 1e-6)
        return np.ascontiguousarray(p, dtype=np.float32)

    def predict(self, batch: dict[str, Any], classes: ClassSet) -> list[np.ndarray]:
        return [self.load(key, classes, label.shape[:2])
                for key, label in zip(batch["key"], batch["label_orig"])]

    def files(self) -> list[Path]:
        return [self.folder / CLASSES_FILE]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "folder": str(self.folder.resolve()),
                "files": [str(f.resolve()) for f in self.files()]}
