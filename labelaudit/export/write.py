"""Write the corrected label tree of a scan run in the dataset's own layout.

Layout: the dataset's own label files, every one of them, at the same paths relative to the
dataset root: copied byte for byte unless an applied finding changes them. Index-PNG formats
(LaPa, folder) are rewritten in place; multi-file formats get their native files regenerated
from the corrected map (Helen: the 11 `_lblNN` maps as 0/255 masks; CelebAMask-HQ: one 0/255
mask per present part; overlaps such as eyes over eyeglasses cannot be recovered from one map,
so the regenerated parts do not overlap). Multi-file formats also get the merged
`labels/<id>.png` for every image, which is what `train --labels DIR` reads.

An image with a hand correction in force (`labelaudit relabel`, the corrections table) gets the
corrected map instead, and its findings are not applied; a correction drawn on a label file that
has changed since is not applied (and counted).

Beside the labels: `changes.csv` (image, finding, pixels, from, to, correction) and
`manifest.json` (sha256 of every written file, source scan run, policy, findings and corrections
applied). Which findings apply is `policy.select_findings`, how they change a map is
`apply.apply_findings`; this module only reads and writes. The tree is built beside `out` and
swapped in (labelaudit.files.atomic_folder); the source tree is never touched.
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from labelaudit.data import SPLITS, write_label
from labelaudit.export.apply import apply_findings, pixel_changes
from labelaudit.export.policy import ACCEPT, Policy, parse_policy, select_findings
from labelaudit.files import atomic_folder, copy_hashed, sha256_file
from labelaudit.scan.layout import ScanMaps
from labelaudit.store import Correction, Image, ImageScore, Run, Store, repo

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
    not_applied: dict[str, int] = field(default_factory=dict)  # why -> decisions / findings
    n_corrections_applied: int = 0


@dataclass
class _Tally:
    """What the export wrote so far: sha256 per relative path, change rows, counts."""

    written: dict[str, str] = field(default_factory=dict)
    # (image, finding id or "", pixels, from, to, correction id or "")
    changes: list[tuple[str, int | str, int, str, str, int | str]] = field(default_factory=list)
    n_images: int = 0
    n_images_changed: int = 0
    n_findings_applied: int = 0
    n_pixels_changed: int = 0
    corrected: dict[int, int] = field(default_factory=dict)  # image id -> correction id applied
    not_applied: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str, n: int = 1) -> None:
        if n:
            self.not_applied[why] = self.not_applied.get(why, 0) + n


def _inside(path: Path, root: Path) -> bool:
    path, root = path.resolve(), root.resolve()
    return path == root or root in path.parents


RELABEL_WHY = "relabel verdicts: need a hand correction (labelaudit relabel)"
GONE_WHY = "findings on images no longer in the dataset"
NO_MASK_WHY = "findings with no stored mask"
CORRECTED_WHY = "findings on images corrected by hand (the correction is written instead)"
STALE_WHY = "hand corrections drawn on a label file that has changed since"


def _corrections(store: Store, image_ids: list[int]) -> dict[int, Correction]:
    """The correction in force per image, detached from the session (its map, PNG bytes, is
    decoded only when its image is written)."""
    with store.session() as s:
        found = repo.corrections_for_images(s, image_ids)
        for c in found.values():
            s.expunge(c)
    return found


def _findings_to_apply(store: Store, run_id: int, policy: Policy) -> tuple[dict[int, list], list[int]]:
    """({image id: findings to apply}, most suspicious first; the image of each relabel verdict
    in force). Only the findings a policy can apply are read: those accepted (directly or
    through their image) and, for a threshold policy, those scoring at or above it; not every
    finding of the run."""
    with store.session() as s:
        run = s.get(Run, run_id)
        dec = repo.decisions_for_run(s, run)
        by_finding, by_image = dec.verdicts()
        pool = {f.id: f for f in repo.findings_by_id(s, [k for k, v in by_finding.items() if v == ACCEPT])}
        for fs in repo.findings_for_images(s, run, [k for k, v in by_image.items() if v == ACCEPT]).values():
            pool.update((f.id, f) for f in fs)
        if policy.threshold is not None:
            pool.update((f.id, f) for f in repo.iter_findings(s, run, policy.threshold))
        relabel = repo.relabel_verdict_images(s, dec)
        ordered = sorted(pool.values(), key=lambda f: (-f.score, f.id))
        chosen = select_findings(ordered, by_finding, by_image, policy)
        for fs in chosen.values():
            for f in fs:
                s.expunge(f)
    return chosen, relabel


def _check_out(out: Path, root: Path, overwrite: bool) -> None:
    if _inside(out, root) or _inside(root, out):
        raise ValueError(f"{out}: refusing to export into (or over) the source dataset {root}")
    if out.exists() and any(out.iterdir()):
        if not overwrite or not (out / MANIFEST).exists():
            raise FileExistsError(f"{out} is not empty" + ("" if (out / MANIFEST).exists() else
                                  " and holds no labelaudit export") + "; choose another --out")


def export_labels(store: Store, out: str | Path, *, run_id: int | None = None,
                  policy: str = "accepted", overwrite: bool = False) -> ExportResult:
    """Write the corrected label tree of scan run `run_id` (default: the latest) to `out`."""
    from labelaudit.scan.summary import resolve_scan_run

    chosen_policy = parse_policy(policy)
    run_id = resolve_scan_run(store, run_id)
    with store.session() as s:
        run = s.get(Run, run_id)
        source = repo.open_dataset_source(run.dataset)
        maps = ScanMaps.of(run)
        images = {im.image_relpath: im.id for im in s.scalars(
            select(Image).join(ImageScore, ImageScore.image_id == Image.id)
            .where(ImageScore.run_id == run_id))}
    out = Path(out)
    _check_out(out, source.root, overwrite)
    tally = _Tally()
    corrections = _corrections(store, list(images.values()))
    applied, relabel = _findings_to_apply(store, run_id, chosen_policy)
    with store.session() as s:  # the teacher's map is what a finding's mask may be cut from
        stored = repo.scan_map_pngs(s, s.get(Run, run_id), list(applied))
    seen: set[int] = set()
    with atomic_folder(out) as tmp:
        for split in SPLITS:
            for rec in source.records(split):
                image_id = images.get(str(source.image_relpath(rec)))
                fixes = applied.get(image_id, []) if image_id is not None else []
                seen.add(image_id)
                teacher = maps.read(image_id, stored.get(image_id))[0] if fixes else None
                _export_record(source, rec, image_id, fixes, teacher, tmp, tally,
                               corrections.get(image_id))
        tally.skip(GONE_WHY, sum(len(fs) for im, fs in applied.items() if im not in seen))
        # a relabel verdict waits on until its image has a correction that could be written
        tally.skip(RELABEL_WHY, sum(im not in tally.corrected for im in relabel))
        applied = {im: fs for im, fs in applied.items() if im in seen and im not in tally.corrected}
        _write_manifest(tmp, tally, source, run_id, policy, applied)
    with store.session() as s:
        repo.record_export(s, s.get(Run, run_id), out_dir=out.resolve(), policy=policy,
                           n_images_changed=tally.n_images_changed,
                           n_pixels_changed=tally.n_pixels_changed,
                           manifest_sha256=sha256_file(out / MANIFEST))
    log.info("exported %d images (%d changed, %d px) to %s", tally.n_images,
             tally.n_images_changed, tally.n_pixels_changed, out)
    for why, n in tally.not_applied.items():
        log.info("not applied: %d %s", n, why)
    return ExportResult(out, run_id, policy, tally.n_images, tally.n_images_changed,
                        tally.n_findings_applied, tally.n_pixels_changed, dict(tally.not_applied),
                        len(tally.corrected))


def _fits(rec, label: np.ndarray, corrected: np.ndarray, correction: Correction) -> bool:
    """A correction fits the label file as it is now: its frame, and for one-file labels the
    sha256 of the file it was drawn on."""
    return corrected.shape == label.shape and (
        bool(rec.label_parts) or correction.base_sha256 is None
        or sha256_file(rec.label_path) == correction.base_sha256)


def _export_record(source, rec, image_id: int | None, fixes: list, teacher: np.ndarray | None,
                   tmp: Path, tally: _Tally, correction: Correction | None = None) -> None:
    """One image's label files: the hand correction in force when it fits, else corrected where
    findings apply (`teacher`: the scan's argmax map of the image, None if it kept none), else
    copied byte for byte."""
    tally.n_images += 1
    label = source.load_label(rec) if (fixes or rec.label_parts or correction) else None
    new = correction.label() if correction is not None else None
    if new is not None and not _fits(rec, label, new, correction):
        tally.skip(STALE_WHY)
        new = None
    if new is not None or fixes:
        names, rel_img = source.classes.names, str(source.image_relpath(rec))
        if new is not None:
            tally.skip(CORRECTED_WHY, len(fixes))
            tally.changes += [(rel_img, "", n, names[a], names[b], correction.id)
                              for a, b, n in pixel_changes(label, new)]
            tally.corrected[image_id] = correction.id
        else:
            result = apply_findings(label, fixes, teacher)
            tally.changes += [(rel_img, c.finding_id, c.pixels, names[c.before], names[c.after], "")
                              for c in result.changes]
            tally.n_findings_applied += result.n_applied
            tally.skip(NO_MASK_WHY, len(fixes) - result.n_applied)
            new = result.label
        changed = int((new != label).sum())
        tally.n_pixels_changed += changed
        tally.n_images_changed += int(changed > 0)
        label = new
        _write_native(source, rec, label, tmp, tally.written)
    else:
        _copy_native(source, rec, tmp, tally.written)
    if rec.label_parts:  # merged index PNG for `train --labels`
        rel = source.label_relpath(rec)
        write_label(tmp / rel, label)
        tally.written[str(rel)] = sha256_file(tmp / rel)


def _write_manifest(tmp: Path, tally: _Tally, source, run_id: int, policy: str, applied: dict) -> None:
    with open(tmp / "changes.csv", "w", newline="") as fh:  # tmp is swapped in whole
        w = csv.writer(fh)
        w.writerow(["image", "finding", "pixels", "from", "to", "correction"])
        w.writerows(tally.changes)
    manifest = {
        "format": "labelaudit-export-v1", "source_root": str(source.root), "dataset_kind": source.kind,
        "scan_run_id": run_id, "policy": policy, "n_images": tally.n_images,
        "n_images_changed": tally.n_images_changed, "n_findings_applied": tally.n_findings_applied,
        "n_pixels_changed": tally.n_pixels_changed,
        "findings_applied": sorted(f.id for fs in applied.values() for f in fs),
        "corrections_applied": sorted(tally.corrected.values()),
        "not_applied": tally.not_applied,
        "files": dict(sorted(tally.written.items())),
        "changes_csv_sha256": sha256_file(tmp / "changes.csv"),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))


def _native_files(rec) -> list[Path]:
    return [p for p in rec.label_parts if p.exists()] if rec.label_parts else [rec.label_path]


def _copy_native(source, rec, tmp: Path, written: dict[str, str]) -> None:
    for p in _native_files(rec):
        rel = p.relative_to(source.root)
        dst = tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        written[str(rel)] = copy_hashed(p, dst)


def _write_native(source, rec, label: np.ndarray, tmp: Path, written: dict[str, str]) -> None:
    """The corrected map in the source's own files (see the module docstring)."""
    if not rec.label_parts:
        rel = rec.label_path.relative_to(source.root)
        write_label(tmp / rel, label)
        written[str(rel)] = sha256_file(tmp / rel)
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
        written[str(rel)] = sha256_file(dst)
