"""Write the corrected label tree of a scan run: accepted regions take the teacher's label.

A whole-part finding (flip / missing / spurious) relabels its region as its suggested class, the
"given->suggested" the reviewer accepted; a boundary finding takes the teacher's label pixel by
pixel (its region can border several classes).

Layout: the dataset's own label files, every one of them, at the same paths relative to the
dataset root: copied byte for byte unless an accepted finding changes them. Index-PNG formats
(LaPa, folder) are rewritten in place; multi-file formats get their native files regenerated
from the corrected map (Helen: the 11 `_lblNN` maps as 0/255 masks; CelebAMask-HQ: one 0/255
mask per present part; overlaps such as eyes over eyeglasses cannot be recovered from one map,
so the regenerated parts do not overlap). Multi-file formats also get the merged
`labels/<id>.png` for every image, which is what `train --labels DIR` reads.

Beside the labels: `changes.csv` (image, finding, pixels, from, to) and `manifest.json` (sha256
of every written file, source scan run, policy, decisions used). The tree is built in a
temporary sibling folder and renamed into place at the end; the source tree is never touched.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from labelaudit.data import write_label
from labelaudit.store import Finding, Image, ImageScore, Run, Store, repo

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@dataclass
class ExportResult:
    out: Path
    run_id: int
    policy: str
    n_images: int
    n_images_changed: int
    n_findings_applied: int
    n_pixels_changed: int


def parse_policy(policy: str) -> float | None:
    """"accepted" -> None; "threshold:S" -> S (accept every finding scoring >= S unless rejected)."""
    if policy == "accepted":
        return None
    if policy.startswith("threshold:"):
        try:
            s = float(policy.split(":", 1)[1])
        except ValueError:
            s = -1.0
        if 0.0 <= s <= 1.0:
            return s
    raise ValueError(f"--policy must be 'accepted' or 'threshold:S' with 0 <= S <= 1, got {policy!r}")


def _inside(path: Path, root: Path) -> bool:
    path, root = path.resolve(), root.resolve()
    return path == root or root in path.parents


def _applied_findings(store: Store, run_id: int, threshold: float | None) -> dict[int, list[Finding]]:
    """{image_id: findings to apply}: accepted ones, or (threshold) all >= S not rejected."""
    out: dict[int, list[Finding]] = {}
    with store.session() as s:
        run = s.get(Run, run_id)
        dec = repo.decisions_for_run(s, run)
        for f in repo.iter_findings(s, run):
            d = dec.findings.get(f.id)
            img = dec.images.get(f.image_id)
            verdict = d.verdict if d is not None else (img.verdict if img is not None else None)
            take = verdict == "accept" or (threshold is not None and f.score >= threshold
                                           and verdict not in ("reject", "relabel"))
            if take:
                s.expunge(f)
                out.setdefault(f.image_id, []).append(f)
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_labels(store: Store, out: str | Path, *, run_id: int | None = None,
                  policy: str = "accepted", overwrite: bool = False) -> ExportResult:
    """Write the corrected label tree of scan run `run_id` (default: the latest) to `out`."""
    from labelaudit.scan.summary import resolve_scan_run

    threshold = parse_policy(policy)
    run_id = resolve_scan_run(store, run_id)
    with store.session() as s:
        run = s.get(Run, run_id)
        ds = run.dataset
        root = Path(ds.root)
        source = repo.open_dataset_source(ds)
        run_dir = Path(run.config.get("run_dir", "."))
        images = {im.id: im for im in s.scalars(
            select(Image).join(ImageScore, ImageScore.image_id == Image.id)
            .where(ImageScore.run_id == run_id))}
        for im in images.values():
            s.expunge(im)
    out = Path(out)
    if _inside(out, root) or _inside(root, out):
        raise ValueError(f"{out}: refusing to export into (or over) the source dataset {root}")
    if out.exists() and any(out.iterdir()):
        if not overwrite or not (out / MANIFEST).exists():
            raise FileExistsError(f"{out} is not empty" + ("" if (out / MANIFEST).exists() else
                                  " and holds no labelaudit export") + "; choose another --out")
    applied = _applied_findings(store, run_id, threshold)
    maps_dir = run_dir / "scans" / str(run_id) / "teacher"

    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    written: dict[str, str] = {}
    changes: list[tuple[str, int, int, str, str]] = []
    n_changed_images = n_pixels = n_applied = n_images = 0
    names = source.classes.names
    by_relpath = {im.image_relpath: im for im in images.values()}
    try:
        for split in ("train", "val", "test"):
            for rec in source.records(split):
                n_images += 1
                rel_img = str(source.image_relpath(rec))
                im = by_relpath.get(rel_img)
                fixes = applied.get(im.id, []) if im is not None else []
                label = source.load_label(rec) if (fixes or rec.label_parts) else None
                if fixes:
                    assert label is not None
                    teacher_path = maps_dir / f"{im.id}.png"
                    teacher = cv2.imread(str(teacher_path), cv2.IMREAD_UNCHANGED) \
                        if teacher_path.exists() else None
                    new = label.copy()
                    for f in fixes:
                        m = f.mask(label.shape)
                        if m is None:
                            continue
                        src_vals = new[m]
                        per_pixel = (f.kind == "boundary" and teacher is not None
                                     and teacher.shape == label.shape)
                        dst = teacher[m] if per_pixel \
                            else np.full(int(m.sum()), f.suggested_class, np.uint8)
                        diff = src_vals != dst
                        for a, b in set(zip(src_vals[diff].tolist(), dst[diff].tolist())):
                            px = int(((src_vals == a) & (dst == b)).sum())
                            changes.append((rel_img, f.id, px, names[a], names[b]))
                        new[m] = dst
                        n_applied += 1
                    changed = int((new != label).sum())
                    n_pixels += changed
                    n_changed_images += int(changed > 0)
                    label = new
                    _write_native(source, rec, label, tmp, written)
                else:
                    _copy_native(source, rec, tmp, written)
                if rec.label_parts:  # merged index PNG for `train --labels`
                    assert label is not None
                    dst = tmp / source.label_relpath(rec)
                    write_label(dst, label)
                    written[str(source.label_relpath(rec))] = _sha256(dst)
        with open(tmp / "changes.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["image", "finding", "pixels", "from", "to"])
            w.writerows(changes)
        manifest = {
            "format": "labelaudit-export-v1", "source_root": str(root), "dataset_kind": source.kind,
            "scan_run_id": run_id, "policy": policy, "n_images": n_images,
            "n_images_changed": n_changed_images, "n_findings_applied": n_applied,
            "n_pixels_changed": n_pixels,
            "findings_applied": sorted(f.id for fs in applied.values() for f in fs),
            "files": dict(sorted(written.items())),
            "changes_csv_sha256": _sha256(tmp / "changes.csv"),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with store.session() as s:
        repo.record_export(s, s.get(Run, run_id), out_dir=out.resolve(), policy=policy,
                           n_images_changed=n_changed_images, n_pixels_changed=n_pixels,
                           manifest_sha256=_sha256(out / MANIFEST))
    log.info("exported %d images (%d changed, %d px) to %s", n_images, n_changed_images, n_pixels, out)
    return ExportResult(out, run_id, policy, n_images, n_changed_images, n_applied, n_pixels)


def _native_files(source, rec) -> list[Path]:
    return [p for p in rec.label_parts if p.exists()] if rec.label_parts else [rec.label_path]


def _copy_native(source, rec, tmp: Path, written: dict[str, str]) -> None:
    for p in _native_files(source, rec):
        rel = p.relative_to(source.root)
        dst = tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dst)
        written[str(rel)] = _sha256(dst)


def _write_native(source, rec, label: np.ndarray, tmp: Path, written: dict[str, str]) -> None:
    """The corrected map in the source's own files (see the module docstring)."""
    if not rec.label_parts:
        rel = rec.label_path.relative_to(source.root)
        write_label(tmp / rel, label)
        written[str(rel)] = _sha256(tmp / rel)
        return
    if source.kind == "helen":
        parts = list(enumerate(rec.label_parts))  # one map per class id
    else:  # celebamask: part i -> class i + 1; a missing file means the part is absent
        parts = [(i + 1, p) for i, p in enumerate(rec.label_parts)]
    for cls, p in parts:
        rel = p.relative_to(source.root)
        mask = (label == cls).astype(np.uint8) * 255
        if source.kind != "helen" and not mask.any():
            continue
        dst = tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(dst), mask):
            raise OSError(f"{dst}: could not write the part mask")
        written[str(rel)] = _sha256(dst)
