"""Rasterising a `Face`: its label map (nearest, no anti-aliasing) and its photo-like image
(anti-aliased, possibly at 2x the label size, with lighting, blur and sensor noise).
"""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class _Canvas:
    """An image being painted and what every layer of it shares."""

    face: Face
    k: int                          # image pixels per label pixel
    img: np.ndarray                 # (n, n, 3) float32, painted in place
    fu: np.ndarray                  # (n, n) face-unit x of each image pixel
    fv: np.ndarray                  # (n, n) face-unit y
    tex: np.ndarray                 # (n, n) fine texture, drawn after the background
    fall: np.ndarray                # (n, n, 1) the skin's shading falloff

    def alpha(self, polys, thickness: float | None = None, soft: float = 0.0) -> np.ndarray:
        return _alpha(self.img.shape[:2], polys, self.k, thickness=thickness, soft=soft)

    def skin(self, tone: float = 1.0) -> np.ndarray:
        return (self.face.colours["skin"] * tone)[None, None, :] * self.fall

    def textured(self, colour: np.ndarray, amount: float) -> np.ndarray:
        return colour[None, None, :] * (1 + amount * self.tex)[..., None]


def render_image(face: Face, rng: np.random.Generator, k: int = 1) -> np.ndarray:
    """(kH, kW, 3) uint8 RGB image of the face; k = image pixels per label pixel.

    Layers, back to front: background with clutter, hair behind the head, neck and clothes,
    ears, skin, nose, eyes and brows, mouth, glasses, front hair, hat, earrings; then lighting,
    blur and sensor noise. The random draws keep that order (same seed, same bytes).
    """
    n = face.size * k
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    img = _background(face, rng, k, xx, yy)
    fu, fv = _face_coords(face, k, xx, yy)
    tex = _field(rng, (n, n), max(4, n // 6), 1.0)
    fall = (1 - face.params["skin_falloff"] * np.clip(fu ** 2 / 0.6 + (fv - 0.1) ** 2 / 1.2, 0, 1.5)
            + 0.03 * tex)[..., None]
    cv = _Canvas(face, k, img, fu, fv, tex, fall)
    strands = cv2.resize(rng.normal(0, 1, (6, max(2, n // 3))).astype(np.float32), (n, n),
                         interpolation=cv2.INTER_LINEAR)
    hair = face.colours["hair"][None, None, :] * (1 + 0.12 * strands + 0.05 * cv.tex)[..., None]
    _paint_body(cv, hair)
    _paint_nose(cv)
    _paint_eyes(cv)
    _paint_mouth(cv)
    _paint_front(cv, hair)
    return _lighting(cv.img, rng, k, xx, yy)


def _face_coords(face: Face, k: int, xx: np.ndarray, yy: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Face coordinates (u, v) of every image pixel, for shading."""
    # python floats keep the arrays float32 under NumPy 2 promotion rules
    cx0, cy0, unit = float(face.centre[0]), float(face.centre[1]), float(face.unit)
    lx, ly = (xx - (k - 1) / 2) / k - cx0, (yy - (k - 1) / 2) / k - cy0
    c, s = float(np.cos(face.angle)), float(np.sin(face.angle))
    return (c * lx + s * ly) / unit, (-s * lx + c * ly) / unit


def _background(face: Face, rng: np.random.Generator, k: int, xx: np.ndarray,
                yy: np.ndarray) -> np.ndarray:
    """A colour gradient, a smooth texture and up to seven clutter shapes."""
    n = xx.shape[0]
    shape = (n, n)
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
    return img


def _paint_body(cv: _Canvas, hair: np.ndarray) -> None:
    """Hair behind the head, neck, clothes (maybe striped), necklace, ears, skin and blush."""
    P, D, C, params, k = cv.face.parts, cv.face.decor, cv.face.colours, cv.face.params, cv.k
    if "hair_back" in P:
        _over(cv.img, cv.alpha(P["hair_back"]), hair * 0.85)
    chin_shadow = (1 - 0.2 * np.clip(1.2 - cv.fv, 0, 1))[..., None]
    _over(cv.img, cv.alpha(P["neck"]), cv.skin(0.86) * chin_shadow)
    cloth = cv.textured(C["cloth"], 0.06)
    if params["cloth_stripes"]:
        stripes = (np.sin(cv.fu * params["stripe_freq"]) > 0)[..., None]
        cloth = np.where(stripes, cloth, C["cloth2"][None, None, :])
    _over(cv.img, cv.alpha(P["cloth"]), cloth)
    if "neck_l" in P:
        _over(cv.img, cv.alpha(P["neck_l"]), C["metal"] * (1 + 0.15 * cv.tex[..., None]))
    for side in ("l_ear", "r_ear"):
        if side in P:
            _over(cv.img, cv.alpha(P[side]), cv.skin(0.95))
            sgn = -1 if side[0] == "l" else 1
            _over(cv.img, 0.5 * cv.alpha(D[f"ear_inner_{sgn}"], soft=0.6 * k), C["skin"] * 0.7)
    _over(cv.img, cv.alpha(P["skin"]), cv.skin())
    if params["blush"]:
        for sgn in (-1, 1):
            _over(cv.img, params["blush"] * cv.alpha(D[f"cheek_{sgn}"], soft=2.0 * k), C["lip"])


def _paint_nose(cv: _Canvas) -> None:
    """Skin tone with a left/right shading gradient, soft edges, a ridge and nostrils."""
    P, D, skin, k = cv.face.parts, cv.face.decor, cv.face.colours["skin"], cv.k
    centre = _mean_u(cv.face, P["nose"][0])
    shade = 1 + cv.face.params["nose_shade"] * np.tanh(4 * (cv.fu - centre))
    _over(cv.img, cv.alpha(P["nose"], soft=0.7 * k),
          cv.skin(cv.face.params["nose_tone"]) * shade[..., None])
    _over(cv.img, 0.35 * cv.alpha(D["ridge"], soft=0.8 * k), np.minimum(skin * 1.15, 255))
    for sgn in (-1, 1):
        _over(cv.img, 0.8 * cv.alpha(D[f"nostril_{sgn}"], soft=0.5 * k), skin * 0.4)


def _paint_eyes(cv: _Canvas) -> None:
    """Sclera, iris, pupil and glint clipped to the eye opening; a dark upper lid; brows."""
    P, D, C, k = cv.face.parts, cv.face.decor, cv.face.colours, cv.k
    for sgn, side in ((-1, "l"), (1, "r")):
        eye_a = cv.alpha(P[f"{side}_eye"])
        _over(cv.img, eye_a, C["sclera"])
        _over(cv.img, eye_a * cv.alpha(D[f"iris_{sgn}"]), C["iris"])
        _over(cv.img, eye_a * cv.alpha(D[f"pupil_{sgn}"]), (15, 12, 12))
        _over(cv.img, eye_a * cv.alpha(D[f"glint_{sgn}"]), (250, 250, 250))
        _over(cv.img, 0.8 * cv.alpha(D[f"lid_{sgn}"], thickness=max(1, 0.022 * cv.face.unit * k)),
              C["brow"] * 0.5)
        _over(cv.img, 0.92 * cv.alpha(P[f"{side}_brow"], soft=0.4 * k),
              cv.textured(C["brow"], 0.1))


def _paint_mouth(cv: _Canvas) -> None:
    """One lip colour for both lips, a dark inner mouth, teeth, a mouth line."""
    P, D, C, k = cv.face.parts, cv.face.decor, cv.face.colours, cv.k
    lips = cv.textured(C["lip"], 0.04)
    if "mouth" in P:
        _over(cv.img, cv.alpha(P["mouth"]), C["mouth"])
        if "teeth" in D:
            _over(cv.img, cv.alpha(P["mouth"]) * cv.alpha(D["teeth"]), (235, 232, 220))
    _over(cv.img, cv.alpha(P["u_lip"] + P["l_lip"], soft=0.4 * k), lips)
    _over(cv.img, 0.6 * cv.alpha(D["mouth_line"], thickness=k), C["lip"] * 0.45)


def _paint_front(cv: _Canvas, hair: np.ndarray) -> None:
    """Glasses (tinted lenses, frames, arms), front hair, hat, earrings."""
    P, D, C, params = cv.face.parts, cv.face.decor, cv.face.colours, cv.face.params
    if "eye_g" in P:
        lens_a = cv.alpha(D["lens"]) * params["lens_alpha"]
        _over(cv.img, lens_a, C["tint"] * (0.25 if params["sunglasses"] else 1.0))
        frame_t = max(1.0, params["frame_px"] * cv.face.unit * cv.k)
        _over(cv.img, cv.alpha([np.vstack([p, p[:1]]) for p in D["lens"]], thickness=frame_t),
              C["frame"])
        _over(cv.img, cv.alpha(P["eye_g"][1::2] + P["eye_g"][-1:]), C["frame"])
    if "hair_front" in P:
        _over(cv.img, cv.alpha(P["hair_front"]), hair)
    if "hat" in P:
        _over(cv.img, cv.alpha(P["hat"]), C["hat"] * (1 + 0.08 * cv.tex[..., None]))
    if "ear_r" in P:
        _over(cv.img, cv.alpha(P["ear_r"]), C["earring"])


def _lighting(img: np.ndarray, rng: np.random.Generator, k: int, xx: np.ndarray,
              yy: np.ndarray) -> np.ndarray:
    """A smooth gradient multiplied in, a colour cast, then blur and sensor noise -> uint8."""
    n = xx.shape[0]
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
