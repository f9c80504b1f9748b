"""The embedded default dataset: procedurally drawn faces with known, injected label noise.

    generate(out, format="lapa")        write a LaPa-, CelebAMask-HQ- or Helen-layout dataset

Only training images carry noise (validation and test stay clean). Ground truth of the noise:
clean labels (`<split>/labels_clean/` for LaPa, `labels_clean/` otherwise), `noise.jsonl` (one
line per training image) and `noise_types/<stem>.png` (0 clean, else the type's code in
`NOISE_CODES`: 1 flip, 2 drop, 3 boundary, 4 blob, 5-10 the annotator family) for every noisy
image. Output is byte-identical for the same arguments.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from labelaudit.data.synthetic.draw import part_mask, render_image, render_label
from labelaudit.data.synthetic.face import sample_face
from labelaudit.data.synthetic.noise import (
    ANNOTATOR_TYPES, CLASSIC_TYPES, NOISE_CODES, NOISE_TYPES, inject_noise,
)
from labelaudit.data.synthetic.writers import SPLITS, WRITERS, Sample, write_index_png
from labelaudit.files import atomic_folder

__all__ = ["generate", "SynthSummary", "NOISE_TYPES", "NOISE_CODES", "CLASSIC_TYPES",
           "ANNOTATOR_TYPES", "FORMATS", "MANIFEST"]

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("lapa", "celebamask", "helen")
MANIFEST = "synthetic.json"
"""Written last into the output root: generation arguments and counts (marks a complete set)."""

_TWO_EVENT_PROB = 0.2
_MAX_REDRAWS = 50


@dataclass
class SynthSummary:
    """What `generate` wrote."""

    root: Path
    format: str
    class_names: tuple[str, ...]
    counts: dict[str, int]                   # images per split
    n_noisy: int                             # noisy training images
    noisy_per_type: dict[str, int]           # noisy training images with >= 1 event of a type
    noisy_pixels: int                        # label pixels changed, all images
    paths: dict[str, Path] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"format": self.format, "class_names": list(self.class_names),
                "counts": self.counts, "n_noisy": self.n_noisy,
                "noisy_per_type": self.noisy_per_type, "noisy_pixels": self.noisy_pixels,
                "paths": {k: str(p.relative_to(self.root)) if p != self.root else "."
                          for k, p in self.paths.items()}}


def split_counts(n: int, splits: tuple[float, float, float]) -> dict[str, int]:
    """Images per split: val and test rounded, train takes the rest."""
    n_val, n_test = round(n * splits[1]), round(n * splits[2])
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def _check(format, n, size, noise_rate, noise_types, splits) -> None:
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if n < 1 or size < 32:
        raise ValueError(f"need n >= 1 and size >= 32, got n={n}, size={size}")
    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1], got {noise_rate}")
    bad = [t for t in noise_types if t not in NOISE_TYPES]
    if bad or (noise_rate > 0 and not noise_types):
        raise ValueError(
            f"noise_types must be a non-empty subset of {NOISE_TYPES}, got {noise_types}")
    if len(splits) != 3 or min(splits) < 0 or abs(sum(splits) - 1) > 1e-6:
        raise ValueError(f"splits must be 3 non-negative fractions summing to 1, got {splits}")


def _draw_sample(seed, index, size, class_set, scale, noisy, noise_types):
    """(image, clean, noisy label, noise-type map or None, events, landmarks, glasses)."""
    rich = class_set.num_classes == 19
    for attempt in range(_MAX_REDRAWS):
        rng = np.random.default_rng([seed, index, attempt])
        face = sample_face(rng, size, rich)
        clean = render_label(face, class_set)
        label, types, events = clean, None, []
        if noisy:
            nrng = np.random.default_rng([seed, index, attempt, 1])
            n_events = 2 if nrng.uniform() < _TWO_EVENT_PROB else 1
            got = inject_noise(clean, class_set, nrng, tuple(noise_types), n_events)
            if got is None:    # no part of this face is big enough: draw another face
                continue
            label, types, events = got
        image = render_image(face, rng, scale)
        landmarks = face.landmarks * scale + (scale - 1) / 2
        glasses = part_mask(face, "eye_g") if rich and "eye_g" in face.parts else None
        return image, clean, label, types, events, landmarks, glasses
    raise RuntimeError(f"no face of size {size} fits noise types {noise_types} (image {index})")


def generate(
    out: Path | str,
    format: str = "lapa",
    n: int = 200,
    size: int = 128,
    noise_rate: float = 0.15,
    noise_types: tuple[str, ...] = CLASSIC_TYPES,
    seed: int = 0,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    progress: bool = True,
    overwrite: bool = False,
) -> SynthSummary:
    """Write `n` generated faces (labels size x size) in `format`'s layout to `out`.

    A `noise_rate` fraction (rounded) of the training images gets 1 (sometimes 2) noise events
    drawn from `noise_types`. The set is built in a sibling folder and swapped in at the end;
    an existing `out` is replaced only with `overwrite=True` and only if it holds a generated set.
    """
    _check(format, n, size, noise_rate, noise_types, splits)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{out} is not empty (pass overwrite=True to replace a generated set)")
        if not (out / MANIFEST).exists():
            raise FileExistsError(f"{out} has no {MANIFEST}: refusing to replace a folder this "
                                  "generator did not write")
    counts = split_counts(n, splits)
    n_noisy = round(noise_rate * counts["train"])
    with atomic_folder(out) as tmp:
        writer = WRITERS[format](tmp)
        per_type, noisy_pixels = _write_samples(writer, tmp, seed, n, size, counts, n_noisy,
                                                noise_types, progress)
        summary = SynthSummary(
            root=out, format=format, class_names=writer.class_set.names, counts=counts,
            n_noisy=n_noisy, noisy_per_type=per_type, noisy_pixels=noisy_pixels,
            paths=_paths(out, format),
        )
        manifest = {"generator": "labelaudit.data.synthetic", "n": n, "size": size,
                    "image_size": size * writer.image_scale, "noise_rate": noise_rate,
                    "noise_types": list(noise_types), "seed": seed, "splits": list(splits),
                    "left_right": "l_* = part on the image's left (the subject's right)",
                    **summary.to_json()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    log.info("synthetic %s: %s images in %s, %d noisy training images %s",
             format, counts, out, n_noisy, per_type)
    return summary


def _paths(out: Path, format: str) -> dict[str, Path]:
    paths = {"root": out, "noise": out / "noise.jsonl", "noise_types": out / "noise_types",
             "manifest": out / MANIFEST}
    if format == "lapa":
        paths.update({f"labels_clean/{s}": out / s / "labels_clean" for s in SPLITS})
    else:
        paths["labels_clean"] = out / "labels_clean"
    return paths


def _write_samples(writer, tmp: Path, seed: int, n: int, size: int, counts: dict[str, int],
                   n_noisy: int, noise_types: tuple[str, ...], progress: bool) -> tuple[dict[str, int], int]:
    """Draw and write every sample, the noise maps and noise.jsonl; (images per noise type,
    wrong pixels)."""
    split_of = [s for s in SPLITS for _ in range(counts[s])]
    noisy_set = set(np.random.default_rng([seed, 0]).choice(counts["train"], n_noisy, replace=False)
                    .tolist()) if n_noisy else set()
    per_type = {t: 0 for t in noise_types}
    noisy_pixels = 0
    records = []
    for i in tqdm(range(n), desc=f"synthetic {writer.format}", disable=None if progress else True):
        noisy = i in noisy_set
        image, clean, label, types, events, landmarks, glasses = _draw_sample(
            seed, i, size, writer.class_set, writer.image_scale, noisy, noise_types)
        sample = Sample(i, split_of[i], writer.stem(i), image, label, clean, landmarks, glasses)
        writer.write(sample)
        if noisy:
            write_index_png(tmp / "noise_types" / f"{sample.stem}.png", types)
            for t in {e.type for e in events}:
                per_type[t] += 1
            noisy_pixels += sum(e.pixels for e in events)
        if sample.split == "train":
            records.append({"stem": sample.stem, "split": "train", "noisy": noisy,
                            "events": [e.to_json() for e in events]})
    writer.finish()
    with open(tmp / "noise.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return per_type, noisy_pixels
