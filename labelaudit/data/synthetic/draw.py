"""Rasterising a `Face`: its label map (nearest, no anti-aliasing) and its photo-like image
(anti-aliased, possibly at 2x the label size, with lighting, blur and sensor noise).
"""
from __future__ import annotations

import cv2
import numpy as np

from labelaudit.data.classes import ClassSet
from labelaudit.data.synthetic.face import SKIN_TONES, Face, blobby, ellipse, jitter

# Painter's order of the LABEL map; later parts overwrite earlier ones. eye_g comes before the
# eyes and brows because the official CelebAMask-HQ merge order paints those over eyeglasses; the
# CelebAMask writer then stores disjoint part masks, so the official merge reproduces this map.
LABEL_ORDER: tuple[str, ...] = (
    "hair_back", "neck", "cloth", "neck_l", "l_ear", "r_ear", "skin", "nose", "eye_g",
    "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip", "hair_front", "hat", "ear_r",
)

# Drawing part -> class name, per number of classes. None = background (drawn, not labelled).
_PART_CLASS_11 = {
    "hair_back": "hair", "hair_front": "hair", "neck": None, "cloth": None, "l_ear": "skin",
    "r_ear": "skin", "skin": "skin", "nose": "nose", "l_eye": "l_eye", "r_eye": "r_eye",
    "l_brow": "l_brow", "r_brow": "r_brow", "mouth": "i_mouth", "u_lip": "u_lip", "l_lip": "l_lip",
}
_PART_CLASS_19 = {
    **{k: k for k in LABEL_ORDER}, "hair_back": "hair", "hair_front": "hair",
}


def part_classes(class_set: ClassSet) -> dict[str, int]:
    """Drawing part -> label id in `class_set` (11- or 19-class); parts absent map to 0."""
    table = _PART_CLASS_19 if class_set.num_classes == 19 else _PART_CLASS_11
    return {p: (0 if c is None else class_set.index(c)) for p, c in table.items()}


# --------------------------------------------------------------------------- rasterising

def _fix(polys: list[np.ndarray], k: int) -> list[np.ndarray]:
    """Label-pixel polygons -> int32 fixed-point (4 fractional bits) at image scale k."""
    return [np.round((p * k + (k - 1) / 2) * 16).astype(np.int32).reshape(-1, 1, 2) for p in polys]


def fill_label(canvas: np.ndarray, polys: list[np.ndarray], value: int) -> None:
    """Paint polygons into a label map (nearest, 8-connected edges, no anti-aliasing)."""
    cv2.fillPoly(canvas, _fix(polys, 1), int(value), lineType=cv2.LINE_8, shift=4)


def part_mask(face: Face, part: str) -> np.ndarray:
    """(H, W) bool: the full shape of one part, ignoring occlusion."""
    m = np.zeros((face.size, face.size), np.uint8)
    fill_label(m, face.parts.get(part, []), 1)
    return m.astype(bool)


def render_label(face: Face, class_set: ClassSet) -> np.ndarray:
    """(H, W) uint8 label map of the face in `class_set` (painter's order LABEL_ORDER)."""
    ids = part_classes(class_set)
    label = np.zeros((face.size, face.size), np.uint8)
    hide_eyes = face.params.get("hide_eyes", 0.0) > 0
    for part in LABEL_ORDER:
        if part not in ids or part not in face.parts:
            continue
        if hide_eyes and part in ("l_eye", "r_eye"):
            continue
        fill_label(label, face.parts[part], ids[part])
    return label


def _alpha(shape, polys, k, thickness: float | None = None, soft: float = 0.0) -> np.ndarray:
    """(H, W) float32 anti-aliased coverage of polygons (or open polylines if thickness)."""
    m = np.zeros(shape, np.uint8)
    if thickness is None:
        cv2.fillPoly(m, _fix(polys, k), 255, lineType=cv2.LINE_AA, shift=4)
    else:
        cv2.polylines(m, _fix(polys, k), False, 255, thickness=max(1, int(round(thickness))),
                      lineType=cv2.LINE_AA, shift=4)
    a = m.astype(np.float32) / 255.0
    if soft > 0:
        a = cv2.GaussianBlur(a, (0, 0), soft)
    return a


def _over(img: np.ndarray, alpha: np.ndarray, colour) -> None:
    """img <- img + alpha * (colour - img), only inside alpha's bounding box (speed)."""
    x, y, w, h = cv2.boundingRect((alpha > 0).view(np.uint8))
    if w == 0:
        return
    box = (slice(y, y + h), slice(x, x + w))
    colour = np.asarray(colour, np.float32)
    if colour.ndim == 3:
        colour = colour[box]
    sub = img[box]
    sub += alpha[box][..., None] * (colour - sub)


def _field(rng, shape, cells: int, amp: float) -> np.ndarray:
    """Smooth random field (H, W) float32 with values ~ N(0, amp)."""
    small = rng.normal(0, amp, (cells, cells)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _clutter_colour(rng, face: Face) -> np.ndarray:
    r = rng.uniform()
    if r < 0.3:
        return jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 20)
    if r < 0.45:
        return jitter(rng, face.colours["skin"], 12)
    if r < 0.6:
        return jitter(rng, face.colours["hair"], 20)
    if r < 0.7:
        return jitter(rng, face.colours["lip"], 20)
    return rng.uniform(0, 255, 3).astype(np.float32)


def render_image(face: Face, rng: np.random.Generator, k: int = 1) -> np.ndarray:
    """(kH, kW, 3) uint8 RGB image of the face; k = image pixels per label pixel."""
    n = face.size * k
    shape = (n, n)
    P, D, C = face.parts, face.decor, face.colours
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    # face coordinates of every image pixel, for shading
    # (python floats keep the arrays float32 under NumPy 2 promotion rules)
    cx0, cy0, unit = float(face.centre[0]), float(face.centre[1]), float(face.unit)
    lx, ly = (xx - (k - 1) / 2) / k - cx0, (yy - (k - 1) / 2) / k - cy0
    c, s = float(np.cos(face.angle)), float(np.sin(face.angle))
    fu, fv = (c * lx + s * ly) / unit, (-s * lx + c * ly) / unit

    # background: gradient + texture + clutter
    c0, c1 = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    phi = rng.uniform(0, 2 * np.pi)
    g = np.clip(((xx * float(np.cos(phi)) + yy * float(np.sin(phi))) / n + 1) / 2, 0, 1)[..., None]
    img = c0 + g * (c1 - c0)
    img += _field(rng, shape, int(rng.integers(3, 9)), rng.uniform(5, 25))[..., None]
    for _ in range(int(rng.integers(0, 8))):
        cx, cy = rng.uniform(-0.1, 1.1, 2) * face.size
        r = rng.uniform(0.05, 0.35) * face.size
        kind = rng.integers(3)
        if kind == 0:
            poly = ellipse(cx, cy, r, r * rng.uniform(0.3, 1), rot=rng.uniform(0, np.pi))
        elif kind == 1:
            poly = ellipse(cx, cy, r, r * rng.uniform(0.1, 1), rot=rng.uniform(0, np.pi), n=4)
        else:
            poly = blobby(rng, cx, cy, r, wobble=0.5)
        soft = rng.uniform(0, 1.5) * k
        _over(img, _alpha(shape, [poly], k, soft=soft), _clutter_colour(rng, face))

    tex = _field(rng, shape, max(4, n // 6), 1.0)
    skin = C["skin"]

    fall = (1 - face.params["skin_falloff"] * np.clip(fu ** 2 / 0.6 + (fv - 0.1) ** 2 / 1.2, 0, 1.5)
            + 0.03 * tex)[..., None]

    def skin_field(tone: float = 1.0) -> np.ndarray:
        return (skin * tone)[None, None, :] * fall

    # hair behind the head: vertical strands
    strands = cv2.resize(rng.normal(0, 1, (6, max(2, n // 3))).astype(np.float32), (n, n),
                         interpolation=cv2.INTER_LINEAR)
    hair_field = C["hair"][None, None, :] * (1 + 0.12 * strands + 0.05 * tex)[..., None]
    if "hair_back" in P:
        _over(img, _alpha(shape, P["hair_back"], k), hair_field * 0.85)
    chin_shadow = (1 - 0.2 * np.clip(1.2 - fv, 0, 1))[..., None]
    _over(img, _alpha(shape, P["neck"], k), skin_field(0.86) * chin_shadow)
    cloth_col = C["cloth"][None, None, :] * (1 + 0.06 * tex)[..., None]
    if face.params["cloth_stripes"]:
        stripes = (np.sin(fu * face.params["stripe_freq"]) > 0)[..., None]
        cloth_col = np.where(stripes, cloth_col, C["cloth2"][None, None, :])
    _over(img, _alpha(shape, P["cloth"], k), cloth_col)
    if "neck_l" in P:
        _over(img, _alpha(shape, P["neck_l"], k), C["metal"] * (1 + 0.15 * tex[..., None]))
    for side in ("l_ear", "r_ear"):
        if side in P:
            _over(img, _alpha(shape, P[side], k), skin_field(0.95))
            sgn = -1 if side[0] == "l" else 1
            _over(img, 0.5 * _alpha(shape, D[f"ear_inner_{sgn}"], k, soft=0.6 * k), skin * 0.7)
    _over(img, _alpha(shape, P["skin"], k), skin_field())
    blush = face.params["blush"]
    if blush:
        for sgn in (-1, 1):
            _over(img, blush * _alpha(shape, D[f"cheek_{sgn}"], k, soft=2.0 * k), C["lip"])
    # nose: skin tone with a left/right shading gradient, soft edges, nostrils
    nose_col = skin_field(face.params["nose_tone"])
    nose_a = _alpha(shape, P["nose"], k, soft=0.7 * k)
    shade = 1 + face.params["nose_shade"] * np.tanh(4 * (fu - _mean_u(face, P["nose"][0])))
    _over(img, nose_a, nose_col * shade[..., None])
    _over(img, 0.35 * _alpha(shape, D["ridge"], k, soft=0.8 * k), np.minimum(skin * 1.15, 255))
    for sgn in (-1, 1):
        _over(img, 0.8 * _alpha(shape, D[f"nostril_{sgn}"], k, soft=0.5 * k), skin * 0.4)
    # eyes: sclera, iris, pupil clipped to the eye opening; a dark upper lid
    for sgn, side in ((-1, "l"), (1, "r")):
        eye_a = _alpha(shape, P[f"{side}_eye"], k)
        _over(img, eye_a, C["sclera"])
        _over(img, eye_a * _alpha(shape, D[f"iris_{sgn}"], k), C["iris"])
        _over(img, eye_a * _alpha(shape, D[f"pupil_{sgn}"], k), (15, 12, 12))
        _over(img, eye_a * _alpha(shape, D[f"glint_{sgn}"], k), (250, 250, 250))
        _over(img, 0.8 * _alpha(shape, D[f"lid_{sgn}"], k, thickness=max(1, 0.022 * face.unit * k)),
              C["brow"] * 0.5)
        brow_col = C["brow"][None, None, :] * (1 + 0.1 * tex)[..., None]
        _over(img, 0.92 * _alpha(shape, P[f"{side}_brow"], k, soft=0.4 * k), brow_col)
    # mouth: one lip colour for both lips, dark inner mouth, teeth, a mouth line
    lipf = C["lip"][None, None, :] * (1 + 0.04 * tex)[..., None]
    if "mouth" in P:
        _over(img, _alpha(shape, P["mouth"], k), C["mouth"])
        if "teeth" in D:
            _over(img, _alpha(shape, P["mouth"], k) * _alpha(shape, D["teeth"], k), (235, 232, 220))
    _over(img, _alpha(shape, P["u_lip"] + P["l_lip"], k, soft=0.4 * k), lipf)
    _over(img, 0.6 * _alpha(shape, D["mouth_line"], k, thickness=k), C["lip"] * 0.45)
    if "eye_g" in P:
        lens_a = _alpha(shape, D["lens"], k) * face.params["lens_alpha"]
        _over(img, lens_a, C["tint"] * (0.25 if face.params["sunglasses"] else 1.0))
        frame_t = max(1.0, face.params["frame_px"] * face.unit * k)
        _over(img, _alpha(shape, [np.vstack([p, p[:1]]) for p in D["lens"]], k, thickness=frame_t),
              C["frame"])
        _over(img, _alpha(shape, P["eye_g"][1::2] + P["eye_g"][-1:], k), C["frame"])
    if "hair_front" in P:
        _over(img, _alpha(shape, P["hair_front"], k), hair_field)
    if "hat" in P:
        _over(img, _alpha(shape, P["hat"], k), C["hat"] * (1 + 0.08 * tex[..., None]))
    if "ear_r" in P:
        _over(img, _alpha(shape, P["ear_r"], k), C["earring"])

    # lighting: a smooth gradient multiplied in, a colour cast, then blur and sensor noise
    psi = rng.uniform(0, 2 * np.pi)
    gain, slope = float(rng.uniform(0.75, 1.15)), float(rng.uniform(0, 0.45))
    light = gain * (1 + slope * ((xx * float(np.cos(psi)) + yy * float(np.sin(psi))) / n - 0.5))
    img *= light[..., None] * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.8) * k)
    img += float(rng.uniform(1.5, 6.0)) * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _mean_u(face: Face, poly: np.ndarray) -> float:
    """Mean face-unit x of a label-pixel polygon."""
    c, s = np.cos(face.angle), np.sin(face.angle)
    d = poly.mean(0) - face.centre
    return float((c * d[0] + s * d[1]) / face.unit)
