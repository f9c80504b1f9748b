"""A `relabel` verdict's answer: the label corrected by hand in Label Studio (docs/design.md §6).

    batch = send_for_relabel(store, url=URL, api_key=KEY)    # `labelaudit relabel`
    # annotators correct the given label in Label Studio: one brush layer per class, pre-loaded
    pulled = pull_corrections(store, url=URL, api_key=KEY)   # `labelaudit relabel --pull`
    # `labelaudit export` then writes each correction in place of its image's label

The hand-off is FiftyOne's annotation API with its Label Studio backend: a persistent FiftyOne
dataset per scan holds the images sent (one sample each, the given label as one masked
`Detection` per class), each upload is one annotation run of it. What comes back is turned into
a label map by `corrected_label` and recorded in the store's corrections table.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labelaudit.files import write_bytes_atomic
from labelaudit.review.sync import bound_dataset
from labelaudit.scan.layout import ScanMaps
from labelaudit.scan.summary import resolve_scan_run
from labelaudit.store import Run, Store, repo

log = logging.getLogger(__name__)

GIVEN_FIELD = "given_parts"    # the given label, one masked Detection per class present
EDITED_FIELD = "edited_parts"  # the same after the annotators' work (written by the pull)


def relabel_dataset_name(run_id: int, store_id: str) -> str:
    """The FiftyOne dataset of the images of scan `run_id` sent for a hand correction."""
    return f"labelaudit-{store_id[:12]}-relabel-{run_id}"


@dataclass(frozen=True)
class Sent:
    dataset: str
    anno_key: str | None  # None: nothing new to send
    n_images: int
    project_id: int | None = None


@dataclass(frozen=True)
class Pulled:
    dataset: str
    n_images: int     # images sent so far
    n_corrected: int  # corrections recorded by this pull
    n_unchanged: int  # images whose label came back as given (not edited, or edited back)


def relabel_queue(session, run: Run) -> list[int]:
    """Image ids of a scan with a relabel verdict in force, on the image or on a finding of it."""
    return sorted(set(repo.relabel_verdict_images(session, repo.decisions_for_run(session, run))))


def corrected_label(given: np.ndarray, regions: Sequence[tuple[int, np.ndarray]]) -> np.ndarray:
    """The label map that a hand edit of `given` (H, W) means; `regions` are (class id, (H, W)
    bool mask) pairs as the tool returns them, any number per class.

    Read as an edit of the given map: a class keeps the given pixels its regions still cover;
    a pixel taken from its class and painted by none is background (0); a pixel painted with
    a class it did not have takes that class, over the given one (where two classes are added
    on one pixel, the later region wins).
    """
    covered: dict[int, np.ndarray] = {}
    for cls, mask in regions:
        covered[cls] = covered.get(cls, np.zeros(given.shape, bool)) | mask
    new = given.copy()
    for cls in np.unique(given):
        if cls:
            new[(given == cls) & ~covered.get(int(cls), np.zeros(given.shape, bool))] = 0
    for cls, mask in covered.items():
        new[mask & (given != cls)] = cls
    return new


@contextmanager
def _reaching(url: str) -> Iterator[None]:
    """Label Studio unreachable or refusing the token: one error naming the server (requests'
    errors are OSErrors)."""
    try:
        yield
    except OSError as e:
        raise ValueError(f"Label Studio at {url}: {e}") from e


def send_for_relabel(store: Store, run_id: int | None = None, *, url: str, api_key: str,
                     name: str | None = None) -> Sent:
    """Upload the images with a relabel verdict in scan `run_id` (default: the latest) that were
    not sent before to a new Label Studio project, their given labels pre-loaded."""
    import fiftyone as fo

    run_id = resolve_scan_run(store, run_id)
    with store.session() as s:
        run = s.get(Run, run_id)
        names = list(run.dataset.class_names)
        queue = relabel_queue(s, run)
        rel_of = {im.id: im.image_relpath for im in repo.images_by_id(s, queue)}
        source = repo.open_dataset_source(run.dataset)
        by_rel = source.records_by_relpath()
        maps = ScanMaps.of(run)
    ds = bound_dataset(name or relabel_dataset_name(run_id, store.store_id), store)
    sent = set(ds.distinct("image_id")) if len(ds) else set()
    targets = {i: n for i, n in enumerate(names) if i}
    samples = []
    for image_id in (i for i in queue if i not in sent):
        rec = by_rel.get(rel_of[image_id])
        if rec is None:
            log.warning("%s: no longer in the dataset, not sent", rel_of[image_id])
            continue
        label = source.load_label(rec)
        parts = fo.Segmentation(mask=label).to_detections(mask_targets=targets, mask_types="stuff")
        samples.append(fo.Sample(filepath=str(_in_label_frame(rec.image_path, label.shape,
                                                              maps.relabel_image(image_id))),
                                 image_id=int(image_id), scan_run_id=run_id, **{GIVEN_FIELD: parts}))
    if not samples:
        return Sent(ds.name, None, 0)
    ids = ds.add_samples(samples)
    key = f"relabel_{len(ds.list_annotation_runs()) + 1}"
    try:
        with _reaching(url):
            results = ds.select(ids).annotate(
                key, backend="labelstudio", label_field=GIVEN_FIELD, label_type="instances",
                classes=names[1:], url=url, api_key=api_key, project_name=f"{ds.name} {key}")
    except BaseException:
        ds.delete_samples(ids)  # not sent: the next `relabel` sends them
        if key in ds.list_annotation_runs():
            ds.delete_annotation_run(key)
        raise
    log.info("sent %d images to Label Studio project %s (%s)", len(ids), results.project_id, key)
    return Sent(ds.name, key, len(ids), int(results.project_id))


def pull_corrections(store: Store, run_id: int | None = None, *, url: str, api_key: str,
                     name: str | None = None) -> Pulled:
    """Read every annotation run of the scan's relabel dataset back from Label Studio and
    record the labels that came back changed (and differ from the correction in force)."""
    import fiftyone as fo

    run_id = resolve_scan_run(store, run_id)
    name = name or relabel_dataset_name(run_id, store.store_id)
    if not fo.dataset_exists(name):
        raise LookupError(f"nothing was sent for relabelling from scan run {run_id} "
                          f"(no FiftyOne dataset {name!r}): run `labelaudit relabel` first")
    ds = bound_dataset(name, store)
    if ds.has_sample_field(EDITED_FIELD):
        ds.delete_sample_field(EDITED_FIELD)  # what comes back replaces the previous pull
    with _reaching(url):
        for key in ds.list_annotation_runs():
            ds.load_annotations(key, dest_field=EDITED_FIELD, unexpected="ignore", url=url,
                                api_key=api_key)
    with store.session() as s:
        run = s.get(Run, run_id)
        names = list(run.dataset.class_names)
        source = repo.open_dataset_source(run.dataset)
        by_rel = source.records_by_relpath()
        ids = [int(i) for i in ds.distinct("image_id")]
        rel_of = {im.id: im.image_relpath for im in repo.images_by_id(s, ids)}
        in_force = {k: c.label() for k, c in repo.corrections_for_images(s, ids).items()}
    corrected = unchanged = 0
    for sample in ds.select_fields(["image_id", EDITED_FIELD]):
        image_id, edited = int(sample["image_id"]), sample[EDITED_FIELD]
        rec = by_rel.get(rel_of.get(image_id, ""))
        if edited is None or rec is None:
            continue
        given = source.load_label(rec)
        new = corrected_label(given, _regions(edited.detections, names, given.shape))
        if np.array_equal(new, given):
            unchanged += 1
        elif image_id not in in_force or not np.array_equal(new, in_force[image_id]):
            with store.session() as s:
                repo.record_correction(s, image_id=image_id, label=new, run_id=run_id,
                                       pixels_changed=int((new != given).sum()), source="labelstudio")
            corrected += 1
    log.info("%s: %d corrections recorded, %d labels came back unchanged", name, corrected, unchanged)
    return Pulled(ds.name, len(ds), corrected, unchanged)


def _in_label_frame(image: Path, shape: tuple[int, int], cache: Path) -> Path:
    """The image itself when it has its label's size, else a copy resized to it (CelebAMask-HQ:
    1024 px images, 512 px labels): Label Studio's brush layers then match the label pixel for
    pixel, with no rescaling on the way there or back."""
    from PIL import Image as PILImage

    with PILImage.open(image) as im:
        if im.size == (shape[1], shape[0]):
            return image
    if not cache.exists():
        pixels = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if pixels is None:
            raise ValueError(f"{image}: not a readable image")
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(cache, cv2.imencode(".png", cv2.resize(
            pixels, (shape[1], shape[0]), interpolation=cv2.INTER_AREA))[1].tobytes())
    return cache


def _regions(detections, names: list[str], shape: tuple[int, int]) -> list[tuple[int, np.ndarray]]:
    """(class id, (H, W) bool mask in the label frame) of each masked detection; other labels
    (a class name the dataset does not have) are logged and left out."""
    h, w = shape
    out = []
    for d in detections:
        if d.label not in names or d.mask is None:
            log.warning("a region labelled %r came back; not a class of this dataset, ignored", d.label)
            continue
        out.append((names.index(d.label), d.to_segmentation(frame_size=(w, h)).mask > 0))
    return out
