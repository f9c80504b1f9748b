"""The generated default dataset: layouts, determinism, and exactly known injected noise."""
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from labelaudit.bench.baseline import colour_only_baseline_f1
from labelaudit.data.classes import CELEBAMASK, CELEBAMASK_PARTS, LAPA
from labelaudit.data.synthetic import NOISE_CODES, NOISE_TYPES, generate
from labelaudit.data.synthetic.noise import MIN_EVENT_PIXELS

N, SIZE = 30, 64


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read(path: Path) -> np.ndarray:
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert arr is not None, path
    return arr


def merge_celebamask_parts(root: Path, index: int, size: int) -> np.ndarray:
    """Merge image `index`'s part masks in the official order (later parts overwrite)."""
    folder = root / "CelebAMask-HQ-mask-anno" / str(index // 2000)
    label = np.zeros((size, size), np.uint8)
    for pid, part in enumerate(CELEBAMASK_PARTS, 1):
        path = folder / f"{index:05d}_{part}.png"
        if path.exists():
            label[_read(path) > 127] = pid
    return label


def _records(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "noise.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """One generated set per format (n=30, 64 px labels, 30% noise so every image kind shows)."""
    out = {}
    for fmt in ("lapa", "celebamask", "helen"):
        root = tmp_path_factory.mktemp(fmt) / "data"
        out[fmt] = (root, generate(root, fmt, n=N, size=SIZE, noise_rate=0.3, seed=3,
                                   progress=False))
    return out


def _clean_and_given(root: Path, fmt: str, stem: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(clean, given) label maps of one image, read back from the files of `fmt`."""
    if fmt == "lapa":
        return (_read(root / split / "labels_clean" / f"{stem}.png"),
                _read(root / split / "labels" / f"{stem}.png"))
    clean = _read(root / "labels_clean" / f"{stem}.png")
    if fmt == "celebamask":
        return clean, merge_celebamask_parts(root, int(stem), SIZE)
    maps = np.stack([_read(root / "labels" / stem / f"{stem}_lbl{c:02d}.png") for c in range(11)])
    return clean, maps.argmax(0).astype(np.uint8)


def test_lapa_layout_is_exactly_the_real_one(sets):
    root, summary = sets["lapa"]
    assert sorted(p.name for p in root.iterdir()) == [
        "noise.jsonl", "noise_types", "synthetic.json", "test", "train", "val"]
    for split, count in summary.counts.items():
        assert sorted(p.name for p in (root / split).iterdir()) == [
            "images", "labels", "labels_clean", "landmarks"]
        stems = sorted(p.stem for p in (root / split / "images").iterdir())
        assert len(stems) == count
        assert all(p.suffix == ".jpg" for p in (root / split / "images").iterdir())
        for sub, ext in (("labels", ".png"), ("labels_clean", ".png"), ("landmarks", ".txt")):
            names = sorted(p.name for p in (root / split / sub).iterdir())
            assert names == [s + ext for s in stems]
    lines = next((root / "train" / "landmarks").iterdir()).read_text().splitlines()
    assert lines[0] == "106" and len(lines) == 107
    pts = np.array([[float(v) for v in ln.split()] for ln in lines[1:]])
    assert pts.shape == (106, 2) and (pts > 0).all() and (pts < 2 * SIZE).all()
    assert summary.counts == {"train": 24, "val": 3, "test": 3}


def test_celebamask_and_helen_layouts(sets):
    root, _ = sets["celebamask"]
    assert (root / "CelebA-HQ-img" / "0.jpg").exists()
    assert _read(root / "CelebA-HQ-img" / "0.jpg").shape == (2 * SIZE, 2 * SIZE, 3)
    masks = list((root / "CelebAMask-HQ-mask-anno" / "0").iterdir())
    assert masks and all(p.stem.split("_", 1)[1] in CELEBAMASK_PARTS for p in masks)
    mapping = (root / "CelebA-HQ-to-CelebA-mapping.txt").read_text().splitlines()
    assert mapping[0].split() == ["idx", "orig_idx", "orig_file"] and len(mapping) == N + 1
    lines = (root / "list_eval_partition.txt").read_text().splitlines()
    partition = dict(ln.split() for ln in lines)
    splits = [partition[ln.split()[2]] for ln in mapping[1:]]
    assert splits == ["0"] * 24 + ["1"] * 3 + ["2"] * 3
    for ln in mapping[1:]:
        i, j, f = ln.split()
        assert f == f"{int(j) + 1:06d}.jpg"

    root, _ = sets["helen"]
    for name, count in (("exemplars.txt", 24), ("tuning.txt", 3), ("testing.txt", 3)):
        lines = (root / name).read_text().splitlines()
        assert [int(ln.split(" , ")[0]) for ln in lines] == list(range(1, count + 1))
        for ln in lines:
            stem = ln.split(" , ")[1]
            assert (root / "images" / f"{stem}.jpg").exists()
            assert len(list((root / "labels" / stem).glob(f"{stem}_lbl*.png"))) == 11


@pytest.mark.parametrize("fmt", ["lapa", "celebamask", "helen"])
def test_label_pngs_are_single_channel_uint8_class_ids(sets, fmt):
    root, summary = sets[fmt]
    C = len(summary.class_names)
    pngs = [p for p in root.rglob("*.png") if "noise_types" not in p.parts]
    assert pngs
    for p in pngs:
        arr = _read(p)
        assert arr.dtype == np.uint8 and arr.ndim == 2 and arr.shape == (SIZE, SIZE), p
        if "labels_clean" in p.parts or (fmt == "lapa" and "labels" in p.parts):
            assert arr.max() < C, p
        else:   # per-part / per-class masks
            assert set(np.unique(arr)) <= {0, 255}, p


@pytest.mark.parametrize("fmt", ["lapa", "celebamask", "helen"])
def test_noise_is_exactly_where_recorded(sets, fmt):
    """given != clean exactly on the non-zero noise-type pixels; events count those pixels."""
    root, summary = sets[fmt]
    records = _records(root)
    assert len(records) == summary.counts["train"]
    n_train = summary.counts["train"]
    assert sum(r["noisy"] for r in records) == round(0.3 * n_train) == summary.n_noisy
    for r in records:
        clean, given = _clean_and_given(root, fmt, r["stem"], "train")
        types_path = root / "noise_types" / f"{r['stem']}.png"
        if not r["noisy"]:
            assert r["events"] == [] and not types_path.exists()
            np.testing.assert_array_equal(given, clean)
            continue
        types = _read(types_path)
        np.testing.assert_array_equal(given != clean, types > 0)
        assert 1 <= len(r["events"]) <= 2
        for e in r["events"]:
            assert e["pixels"] >= MIN_EVENT_PIXELS
            assert e["from_class"] == summary.class_names[e["from_id"]]
        assert sum(e["pixels"] for e in r["events"]) == int((types > 0).sum())
        for t in {e["type"] for e in r["events"]}:
            assert (types == NOISE_CODES[t]).sum() == sum(
                e["pixels"] for e in r["events"] if e["type"] == t)
    # validation and test stay clean
    for split in ("val", "test"):
        if fmt == "lapa":
            for p in (root / split / "labels").iterdir():
                clean = _read(root / split / "labels_clean" / p.name)
                np.testing.assert_array_equal(_read(p), clean)
    recorded = {r["stem"] for r in records}
    assert {p.stem for p in (root / "noise_types").iterdir()} <= recorded


def test_val_and_test_are_clean_in_every_format(sets):
    for fmt in ("celebamask", "helen"):
        root, _ = sets[fmt]
        train = {r["stem"] for r in _records(root)}
        for p in (root / "labels_clean").iterdir():
            if p.stem in train:
                continue
            clean, given = _clean_and_given(root, fmt, p.stem, "")
            np.testing.assert_array_equal(given, clean)


def test_celebamask_official_merge_reproduces_labels_and_glasses_overlap_eyes(sets):
    root, _ = sets["celebamask"]
    eye_g = CELEBAMASK.index("eye_g")
    overlapping = 0
    for i in range(N):
        clean = _read(root / "labels_clean" / f"{i}.png")
        types = root / "noise_types" / f"{i}.png"
        merged = merge_celebamask_parts(root, i, SIZE)
        if not types.exists():
            np.testing.assert_array_equal(merged, clean)
        g = root / "CelebAMask-HQ-mask-anno" / "0" / f"{i:05d}_eye_g.png"
        if g.exists():
            overlapping += int(((_read(g) > 0) & (merged > eye_g)).any())
    # some eyeglasses masks extend under the eyes, so the merge order matters as in real data
    assert overlapping >= 1


def test_helen_argmax_is_unambiguous(sets):
    root, _ = sets["helen"]
    stem = (root / "exemplars.txt").read_text().splitlines()[0].split(" , ")[1]
    maps = np.stack([_read(root / "labels" / stem / f"{stem}_lbl{c:02d}.png") for c in range(11)])
    np.testing.assert_array_equal((maps == 255).sum(0), 1)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = generate(tmp_path / "a", "lapa", n=8, size=SIZE, seed=5, progress=False).root
    b = generate(tmp_path / "b", "lapa", n=8, size=SIZE, seed=5, progress=False).root
    c = generate(tmp_path / "c", "lapa", n=8, size=SIZE, seed=6, progress=False).root
    ha, hb, hc = _tree_hashes(a), _tree_hashes(b), _tree_hashes(c)
    assert ha == hb
    common = set(ha) & set(hc)
    assert all(ha[k] != hc[k] for k in common if k.endswith(".jpg"))


def test_celebamask_is_deterministic(tmp_path):
    a = generate(tmp_path / "a", "celebamask", n=6, size=SIZE, seed=1, progress=False).root
    b = generate(tmp_path / "b", "celebamask", n=6, size=SIZE, seed=1, progress=False).root
    assert _tree_hashes(a) == _tree_hashes(b)


@pytest.mark.parametrize("kind", NOISE_TYPES)
@pytest.mark.parametrize("fmt", ["lapa", "celebamask"])
def test_each_noise_type_alone(tmp_path, kind, fmt):
    s = generate(tmp_path / "d", fmt, n=12, size=SIZE, noise_rate=0.5, noise_types=(kind,),
                 seed=2, progress=False)
    events = [e for r in _records(s.root) for e in r["events"]]
    assert s.n_noisy == round(0.5 * s.counts["train"]) == 5
    assert events and {e["type"] for e in events} == {kind}
    assert s.noisy_per_type[kind] == s.n_noisy
    for p in (s.root / "noise_types").iterdir():
        assert set(np.unique(_read(p))) == {0, NOISE_CODES[kind]}


def test_flip_event_swaps_left_and_right(tmp_path):
    s = generate(tmp_path / "d", "lapa", n=12, size=SIZE, noise_rate=0.5, noise_types=("flip",),
                 seed=4, progress=False)
    pairs = {frozenset(p) for p in ((2, 3), (4, 5), (7, 9))}
    for r in _records(s.root):
        for e in r["events"]:
            assert frozenset((e["from_id"], e["to_id"])) in pairs and e["detail"] == "swap"


def test_left_parts_are_on_the_image_left(sets):
    """The documented convention: l_* is the part on the image's left (rotation <= 25 deg)."""
    root, _ = sets["lapa"]
    for p in (root / "val" / "labels_clean").iterdir():
        lab = _read(p)
        for l_id, r_id in LAPA.flip_pairs:
            xl, xr = np.nonzero(lab == l_id)[1], np.nonzero(lab == r_id)[1]
            if xl.size and xr.size:
                assert xl.mean() < xr.mean()


def test_noise_free_and_validation(tmp_path):
    s = generate(tmp_path / "d", "helen", n=10, size=SIZE, noise_rate=0.0, progress=False)
    assert s.n_noisy == 0 and not (s.root / "noise_types").exists()
    assert all(not r["noisy"] for r in _records(s.root))
    with pytest.raises(ValueError):
        generate(tmp_path / "e", "lapa", n=10, noise_types=("smudge",), progress=False)
    with pytest.raises(ValueError):
        generate(tmp_path / "e", "pascal", n=10, progress=False)


def test_refuses_to_overwrite_foreign_folders(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        generate(target, "lapa", n=4, size=SIZE, progress=False, overwrite=True)
    assert (target / "precious.txt").read_text() == "keep"
    s = generate(tmp_path / "gen", "lapa", n=4, size=SIZE, progress=False)
    with pytest.raises(FileExistsError):
        generate(s.root, "lapa", n=4, size=SIZE, progress=False)
    generate(s.root, "lapa", n=10, size=SIZE, progress=False, overwrite=True)
    assert len(list((s.root / "train" / "images").iterdir())) == 8


def test_colour_alone_cannot_parse_the_faces(tmp_path):
    root = generate(tmp_path / "d", "lapa", n=60, size=SIZE, seed=0, progress=False).root
    assert colour_only_baseline_f1(root, "lapa") <= 0.6


@pytest.mark.parametrize("fmt", ["lapa", "celebamask", "helen"])
def test_real_loaders_read_the_generated_layouts(sets, fmt):
    """`open_source` reads every format's output; given and clean labels round-trip bit-exact."""
    from labelaudit.data import formats

    root, summary = sets[fmt]
    noisy = {r["stem"] for r in _records(root) if r["noisy"]}
    options = {"cache": False} if fmt == "celebamask" else {}   # keep the shared tree unchanged
    for kind in (fmt, "synthetic"):
        source = formats.open_source(kind, root, **options)
        assert source.classes.names == summary.class_names
        for split, count in summary.counts.items():
            recs = source.records(split)
            assert len(recs) == count
            for rec in recs[:4] + [r for r in recs if r.id in noisy][:3]:
                image, label = source.load_pair(rec)
                assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
                clean, given = _clean_and_given(root, fmt, rec.id, split)
                np.testing.assert_array_equal(label, given)
                np.testing.assert_array_equal(source.load_clean_label(rec), clean)
                assert (rec.id in noisy) == bool((label != clean).any())


def test_label_noise_of_the_clean_tree_is_all_fixed(tmp_path):
    from labelaudit.bench.labels import clean_label_tree, label_noise
    from labelaudit.data.synthetic import generate

    summary = generate(tmp_path / "data", n=20, size=64, noise_rate=0.5, seed=3, progress=False)
    tree = clean_label_tree(tmp_path / "data", tmp_path / "clean")
    got = label_noise(tmp_path / "data", tree)
    assert got.before == summary.noisy_pixels > 0
    assert (got.after, got.fixed, got.broken) == (0, got.before, 0)
