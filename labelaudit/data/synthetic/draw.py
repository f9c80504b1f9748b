"""Procedurally drawn faces: one random face's geometry, its label map and its photo-like image.

Geometry lives in *face units* (the face ellipse has half-height 1, y points down, x to the image
right) and is mapped to label pixels by a similarity transform (scale, in-plane rotation,
translation). Every part is a list of float polygons in label-pixel coordinates, so the label map
(nearest, no anti-aliasing) and the image (anti-aliased, possibly at 2x the label size) are
rasterised from the same shapes.

Left/right convention: `l_*` is the part on the IMAGE's left (the subject's right side). A
horizontal flip of image and label therefore maps every `l_*` pixel onto an `r_*` part, which is
what `ClassSet.flip_pairs` swaps.

Colour is deliberately ambiguous so that a model needs spatial context: both eyes, both brows
and both ears share colours, the two lips share one colour, the nose is skin with shading, the
neck is skin-coloured background (11 classes), and background clutter reuses skin, hair and lip
colours.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from labelaudit.data.classes import ClassSet

# Painter's order of the LABEL map; parts later in the list overwrite earlier ones. For 19
# classes this equals merging CelebAMask-HQ part masks in the official order for every pixel that
# the drawing lets two parts share (eye_g under eyes and brows; hair over face parts).
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

_SKIN = np.array([
    (255, 224, 196), (241, 194, 167), (228, 178, 146), (214, 160, 126), (198, 134, 103),
    (170, 112, 80), (140, 92, 66), (105, 70, 52), (236, 190, 176), (250, 210, 170),
], np.float32)
_HAIR = np.array([
    (24, 20, 18), (45, 32, 26), (70, 48, 34), (110, 76, 48), (150, 112, 72), (205, 175, 120),
    (225, 200, 150), (140, 62, 32), (150, 150, 150), (215, 212, 205),
], np.float32)
_IRIS = np.array([(92, 60, 32), (45, 32, 26), (70, 110, 160), (80, 118, 72), (130, 100, 52)],
                 np.float32)
_METAL = np.array([(212, 175, 55), (192, 192, 196), (235, 230, 220), (30, 30, 30), (160, 90, 40)],
                  np.float32)


def part_classes(class_set: ClassSet) -> dict[str, int]:
    """Drawing part -> label id in `class_set` (11- or 19-class); parts absent map to 0."""
    table = _PART_CLASS_19 if class_set.num_classes == 19 else _PART_CLASS_11
    return {p: (0 if c is None else class_set.index(c)) for p, c in table.items()}


@dataclass
class Face:
    """One random face: polygons (label pixels) per part plus appearance parameters."""

    size: int
    rich: bool                      # 19-class variant: accessories, ears/neck/cloth labelled
    centre: np.ndarray              # (2,) face centre, label pixels
    unit: float                     # label pixels per face unit
    angle: float                    # in-plane rotation, radians
    parts: dict[str, list[np.ndarray]] = field(default_factory=dict)   # labelled parts
    decor: dict[str, list[np.ndarray]] = field(default_factory=dict)   # image-only shapes
    colours: dict[str, np.ndarray] = field(default_factory=dict)       # RGB float
    params: dict[str, float] = field(default_factory=dict)
    landmarks: np.ndarray | None = None                                # (106, 2) label pixels

    def to_px(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) face units -> label pixels."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        rot = np.array([[c, -s], [s, c]])
        return self.centre + self.unit * (np.asarray(pts, np.float64) @ rot.T)


# --------------------------------------------------------------------------- shapes (face units)

def _ellipse(cx, cy, a, b, rot=0.0, n=40, t0=0.0, t1=2 * np.pi) -> np.ndarray:
    t = np.linspace(t0, t1, n, endpoint=(t1 - t0) < 2 * np.pi - 1e-9)
    x, y = a * np.cos(t), b * np.sin(t)
    c, s = np.cos(rot), np.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], 1)


def _band(xs: np.ndarray, ys: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Closed polygon of a curve (xs, ys) thickened vertically by +-half."""
    return np.concatenate([np.stack([xs, ys - half], 1), np.stack([xs, ys + half], 1)[::-1]])


def _thick_polyline(pts: np.ndarray, half: float) -> np.ndarray:
    """Closed polygon around an open polyline, offset by +-half along the normals."""
    d = np.gradient(pts, axis=0)
    nrm = np.stack([-d[:, 1], d[:, 0]], 1)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-12
    return np.concatenate([pts + half * nrm, (pts - half * nrm)[::-1]])


def _blobby(rng: np.random.Generator, cx, cy, r, n=16, wobble=0.3) -> np.ndarray:
    """Irregular closed blob of mean radius r."""
    k = np.arange(n)
    rad = r * (1 + wobble * np.convolve(np.pad(rng.normal(size=n), 1, mode="wrap"),
                                        np.ones(3) / 3, "valid"))
    t = 2 * np.pi * k / n
    return np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], 1)


# --------------------------------------------------------------------------- sampling

def _jitter(rng, colour, amount) -> np.ndarray:
    return np.clip(colour + rng.uniform(-amount, amount, 3), 0, 255).astype(np.float32)


def sample_face(rng: np.random.Generator, size: int, rich: bool) -> Face:
    """Draw the geometry and colours of one face in a size x size label frame."""
    u = rng.uniform
    scale = u(0.6, 1.0)
    unit = scale * size * 0.4
    slack = (1.0 - scale) * size * 0.22 + size * 0.03
    centre = np.array([size / 2 + u(-slack, slack), size * (0.5 if not rich else 0.47)
                       + u(-slack, slack)])
    face = Face(size=size, rich=rich, centre=centre, unit=unit, angle=np.deg2rad(u(-25, 25)))
    P, D = face.parts, face.decor
    px = face.to_px

    # --- colours
    skin = _jitter(rng, _SKIN[rng.integers(len(_SKIN))], 14)
    hair = (_jitter(rng, _HAIR[rng.integers(len(_HAIR))], 18) if u() > 0.08
            else rng.uniform(30, 230, 3).astype(np.float32))
    lip_mix = u(0.4, 0.85)
    lip = np.clip((1 - lip_mix) * skin + lip_mix * _jitter(rng, np.array([185, 70, 85.0]), 30),
                  0, 255)
    brow = np.clip(hair * u(0.55, 0.95) if hair.mean() < 170 else skin * u(0.45, 0.7), 0, 255)
    face.colours.update(
        skin=skin, hair=hair, lip=lip.astype(np.float32), brow=brow.astype(np.float32),
        iris=_jitter(rng, _IRIS[rng.integers(len(_IRIS))], 15),
        sclera=_jitter(rng, np.array([232, 228, 222.0]), 14),
        mouth=_jitter(rng, np.array([70, 25, 30.0]), 20),
        cloth=rng.uniform(10, 245, 3).astype(np.float32),
        cloth2=rng.uniform(10, 245, 3).astype(np.float32),
        metal=_jitter(rng, _METAL[rng.integers(len(_METAL))], 15),
        frame=_jitter(rng, _METAL[rng.integers(len(_METAL))], 20) * u(0.4, 1.0),
        hat=rng.uniform(10, 245, 3).astype(np.float32),
        earring=_jitter(rng, _METAL[rng.integers(len(_METAL))], 15),
        tint=rng.uniform(40, 200, 3).astype(np.float32),
    )
    face.params.update(nose_tone=u(0.9, 1.06), nose_shade=u(0.08, 0.22) * rng.choice([-1, 1]),
                       skin_falloff=u(0.08, 0.25), blush=u(0, 0.25) if u() < 0.5 else 0.0,
                       cloth_stripes=float(u() < 0.3), stripe_freq=u(4, 12))

    # --- face outline (egg: narrower chin)
    a = 0.74 * u(0.9, 1.08)
    taper = u(0.08, 0.2)
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    outline = np.stack([a * np.cos(t) * (1 - taper * np.sin(t)), np.sin(t)], 1)
    yaw = u(-0.2, 0.2)                        # horizontal shift of inner parts (face units)
    foreshort = {-1: 1 - 0.9 * max(0.0, -yaw), 1: 1 - 0.9 * max(0.0, yaw)}
    side_name = {-1: "l", 1: "r"}             # l_* = image-left (module docstring)

    # --- neck and clothes (neck is background for 11 classes)
    nw = u(0.34, 0.46)
    neck = np.array([[-nw, 0.3], [nw, 0.3], [nw * 1.15, 3.5], [-nw * 1.15, 3.5]])
    c0 = u(1.15, 1.5)
    sh = u(2.0, 2.8)
    vdepth = u(0.15, 0.6)
    if u() < 0.5:   # V neck
        cut = [[nw + 0.05, c0], [0.0, c0 + vdepth], [-nw - 0.05, c0]]
    else:           # round neck
        cut = list(_ellipse(0, c0, nw + 0.05, vdepth, t0=0, t1=np.pi, n=14))
    cloth = np.array([[-nw - 0.05, c0], [-sh * 0.6, c0 + 0.35], [-sh, c0 + 0.9], [-sh, 4.0],
                      [sh, 4.0], [sh, c0 + 0.9], [sh * 0.6, c0 + 0.35], *cut])

    # --- hair
    style = rng.choice(["bald", "short", "long", "bun"], p=[0.06, 0.42, 0.38, 0.14])
    vol, top = u(0.05, 0.2), u(0.1, 0.3)
    A, B, hcy = a + vol, 1.0 + top, -0.08
    bangs = u() < 0.35
    locks = style == "long" and u() < 0.5
    h_side = u(-0.3, 0.0)
    back: list[np.ndarray] = []
    front: list[np.ndarray] = []
    if style != "bald":
        tt = np.linspace(np.pi / 2, np.pi / 2 + 2 * np.pi, 160)
        ring = np.stack([A * np.cos(tt), hcy + B * np.sin(tt)], 1)
        if style == "long":
            v_end, flare = u(1.2, 2.3), u(0.05, 0.35)
            arc = ring[ring[:, 1] <= 0.0]   # contiguous: left -> top -> right
            xs = np.linspace(A + flare, -A - flare, 24)
            bottom = np.stack([xs, v_end + 0.08 * np.sin(xs * u(5, 9) + u(0, 6))], 1)
            back.append(np.concatenate([arc, [[A + flare * 0.5, 0.6]], bottom,
                                        [[-A - flare * 0.5, 0.6]]]))
        else:
            back.append(ring[ring[:, 1] <= u(-0.15, 0.2)])
            if style == "bun":
                back.append(_ellipse(u(-0.2, 0.2), -1.0 - top - u(0.05, 0.2), u(0.22, 0.35),
                                     u(0.2, 0.3)))
        # front hair: above a hairline curve, inside the head outline
        h0 = u(-0.5, -0.3) if bangs else u(-0.8, -0.55)
        parting = u(-0.3, 0.3)
        p_exp = u(1.5, 4.0)
        arc = ring[ring[:, 1] <= h_side]
        xs = np.linspace(A, -A, 40)
        ys = h0 + (h_side - h0) * np.clip(np.abs(xs - parting * a) / (a * (1 + abs(parting))),
                                          0, 1) ** p_exp
        if bangs:
            ys = ys + 0.05 * np.abs(np.sin(xs * u(14, 24)))
        front.append(np.concatenate([arc, np.stack([xs, np.minimum(ys, h_side)], 1)]))
        if locks:
            for s in (-1, 1):
                x_in = s * (a * u(0.82, 0.95))
                x_out = s * (A + u(0.1, 0.3))
                lv = u(1.2, 2.0)
                front.append(np.array([[x_in, h_side], [x_out, h_side - 0.1], [x_out, lv],
                                       [(x_in + x_out) / 2, lv + 0.1], [x_in + s * 0.05, 0.5]]))

    # --- ears
    ear_y = u(-0.12, 0.02)
    ears: dict[int, np.ndarray] = {}
    if not locks and u() < 0.9:
        for s in (-1, 1):
            f = 1 - 3.0 * max(0.0, s * yaw)
            ew_, eh_ = u(0.09, 0.12) * max(f, 0.2), u(0.17, 0.22)
            ears[s] = _ellipse(s * (a * 0.97 - 0.6 * yaw * s), ear_y, ew_ + 0.05, eh_,
                               rot=s * u(0.05, 0.25))

    # --- eyes and brows
    eye_y, sep = u(-0.16, -0.06), u(0.27, 0.33)
    ew, eh, tilt = u(0.12, 0.16), u(0.045, 0.085), u(-0.06, 0.1)
    gaze = u(-0.3, 0.3)
    brow_y = eye_y - u(0.19, 0.26)
    bl, bth, arch = u(0.14, 0.2), u(0.028, 0.06), u(0.02, 0.07)
    eyes, brows, iris = {}, {}, {}
    for s in (-1, 1):
        f = foreshort[s]
        cx = s * sep * f + yaw
        tx = np.linspace(-1, 1, 21)
        w = ew * f
        up = eye_y - eh * (1 - tx ** 2) ** 0.8 - s * tilt * ew * tx * 0.5
        lo = eye_y + 0.6 * eh * (1 - tx ** 2) ** 0.9 - s * tilt * ew * tx * 0.5
        eyes[s] = np.concatenate([np.stack([cx + w * tx, up], 1),
                                  np.stack([cx + w * tx, lo], 1)[::-1][1:-1]])
        iris[s] = (cx + gaze * w * 0.4, eye_y + 0.1 * eh)
        bx = cx + s * 0.02 + bl * f * tx
        outer = (s * tx + 1) / 2                     # 0 at the inner end, 1 at the outer end
        by = brow_y - arch * np.sin(np.pi * np.clip(0.35 + 0.65 * outer, 0, 1) ** 0.9)
        brows[s] = _band(bx, by, bth * (1 - 0.55 * outer ** 2) + 0.008)
    ri = min(eh * 1.0, ew * 0.5)

    # --- nose
    nx = yaw * 1.15
    nb = u(0.2, 0.3)
    nwb = u(0.09, 0.13)
    top_y = eye_y + 0.03
    vs = np.linspace(top_y, nb - 0.04, 10)
    half = 0.035 + (nwb - 0.035) * ((vs - top_y) / (nb - 0.04 - top_y)) ** 2
    bottom = _ellipse(nx, nb - 0.04, nwb, 0.07, t0=0, t1=np.pi, n=15)
    nose = np.concatenate([np.stack([nx + half, vs], 1), bottom, np.stack([nx - half, vs], 1)[::-1]])

    # --- mouth
    mx, my = yaw * 0.9, u(0.47, 0.56)
    mw = u(0.18, 0.27)
    smile = u(-0.02, 0.06)
    open_ = u(0.02, 0.11) if u() < 0.5 else (0.0 if u() < 0.6 else 0.012)
    ul, ll = u(0.035, 0.065), u(0.045, 0.085)
    tm = np.linspace(-1, 1, 25)
    xm = mx + mw * tm
    line = my - smile * tm ** 2
    g = (1 - tm ** 2) ** 0.8
    bow = np.sqrt(1 - tm ** 2) * (1 - 0.3 * np.exp(-(tm / 0.15) ** 2))
    in_up = line - open_ / 2 * g
    in_lo = line + open_ / 2 * g
    up_top = in_up - ul * bow - 0.004
    lo_bot = in_lo + ll * (1 - tm ** 2) ** 0.7 + 0.004
    u_lip = np.concatenate([np.stack([xm, up_top], 1), np.stack([xm, in_up], 1)[::-1]])
    l_lip = np.concatenate([np.stack([xm, in_lo], 1), np.stack([xm, lo_bot], 1)[::-1]])
    mouth = np.concatenate([np.stack([xm, in_up], 1), np.stack([xm, in_lo], 1)[::-1]])

    # --- accessories (19-class variant only)
    glasses = rich and u() < 0.3
    sunglasses = glasses and u() < 0.3
    hat = rich and style != "long" and u() < 0.15
    necklace = rich and u() < 0.25
    earrings = rich and bool(ears) and u() < 0.3

    # ---------------------------------------------------------------- assemble (label pixels)
    if back:
        P["hair_back"] = [px(p) for p in back]
    P["neck"] = [px(neck)]
    P["cloth"] = [px(cloth)]
    for s, e in ears.items():
        P[f"{side_name[s]}_ear"] = [px(e)]
        D[f"ear_inner_{s}"] = [px(_ellipse(e[:, 0].mean() + s * 0.01, ear_y, 0.045, 0.11))]
    P["skin"] = [px(outline)]
    P["nose"] = [px(nose)]
    for s in (-1, 1):
        P[f"{side_name[s]}_eye"] = [px(eyes[s])]
        P[f"{side_name[s]}_brow"] = [px(brows[s])]
        ix, iy = iris[s]
        D[f"iris_{s}"] = [px(_ellipse(ix, iy, ri, ri, n=24))]
        D[f"pupil_{s}"] = [px(_ellipse(ix, iy, ri * 0.45, ri * 0.45, n=16))]
        D[f"glint_{s}"] = [px(_ellipse(ix + ri * 0.3, iy - ri * 0.3, ri * 0.18, ri * 0.18, n=8))]
        D[f"lid_{s}"] = [px(eyes[s][:21])]
        D[f"nostril_{s}"] = [px(_ellipse(nx + s * nwb * 0.5, nb - 0.03, nwb * 0.28, 0.022,
                                         rot=s * 0.3, n=12))]
        D[f"cheek_{s}"] = [px(_ellipse(s * 0.42 + yaw * 0.5, 0.2, 0.18, 0.12))]
    D["ridge"] = [px(_ellipse(nx + face.params["nose_shade"] * 0.2, (top_y + nb) / 2 - 0.03,
                              0.022, (nb - top_y) / 2 - 0.05, n=16))]
    if open_ > 0:
        P["mouth"] = [px(mouth)]
        if open_ > 0.04 and u() < 0.7:
            D["teeth"] = [px(_band(xm * 0.8 + mx * 0.2, in_up + open_ * 0.22 * g, open_ * 0.2 * g))]
    P["u_lip"] = [px(u_lip)]
    P["l_lip"] = [px(l_lip)]
    D["mouth_line"] = [px(np.stack([xm, line], 1))]
    if front:
        P["hair_front"] = [px(p) for p in front]
    face.params.update(ear_y=ear_y, style=["bald", "short", "long", "bun"].index(style))

    if glasses:
        ft = max(1.2 / unit, u(0.02, 0.035))
        lenses, g_parts = [], []
        for s in (-1, 1):
            f = foreshort[s]
            cx = s * sep * f + yaw
            lw, lh = ew * f * u(1.35, 1.6), u(0.1, 0.14)
            lens = _ellipse(cx, eye_y + 0.01, lw, lh, n=36)
            lenses.append(px(lens))
            g_parts.append(px(_ellipse(cx, eye_y + 0.01, lw + ft, lh + ft, n=36)))
            arm = np.array([[cx + s * lw, eye_y - 0.02], [s * a * 0.99 + 0.3 * yaw, eye_y - 0.04]])
            g_parts.append(px(_thick_polyline(np.linspace(arm[0], arm[1], 6), ft / 2)))
        inner_l, inner_r = -sep * foreshort[-1] + yaw, sep * foreshort[1] + yaw
        bx = np.linspace(inner_l + ew * 0.9, inner_r - ew * 0.9, 8)
        by = eye_y - 0.03 - 0.03 * np.sin(np.linspace(0, np.pi, 8))
        g_parts.append(px(_thick_polyline(np.stack([bx, by], 1), ft / 2)))
        P["eye_g"] = g_parts
        D["lens"] = lenses
        face.params.update(frame_px=ft, sunglasses=float(sunglasses),
                           lens_alpha=u(0.8, 0.92) if sunglasses else u(0.08, 0.25))
        if sunglasses:   # eyes are not visible, so they are not annotated
            face.params["hide_eyes"] = 1.0
    if hat:
        hy = -0.55 - u(0.0, 0.15)
        dome = _ellipse(0, hy, A + u(0.08, 0.2), B + 0.15, t0=np.pi, t1=2 * np.pi, n=30)
        brim = _ellipse(0, hy, A + u(0.25, 0.5), u(0.07, 0.12), n=30)
        P["hat"] = [px(dome), px(brim)]
    if necklace:
        th = max(2.2 / unit, u(0.035, 0.06))
        xs = np.linspace(-nw * 0.97, nw * 0.97, 24)
        y0, dep = c0 - u(0.05, 0.3), u(0.1, 0.35)
        chain = np.stack([xs, y0 + dep * (1 - (xs / nw) ** 2)], 1)
        P["neck_l"] = [px(_thick_polyline(chain, th / 2))]
    if earrings:
        r = max(1.6 / unit, u(0.03, 0.06))
        P["ear_r"] = [px(_ellipse(e[:, 0].mean(), e[:, 1].max() + r * 0.6, r, r * u(1, 1.8), n=14))
                      for e in ears.values()]

    face.params = {k: float(v) for k, v in face.params.items()}
    face.landmarks = _landmarks(px, a, taper, eyes, brows, iris, nose, nx, nb, top_y,
                                u_lip, l_lip, mouth if open_ > 0 else None, xm, line)
    return face


def _landmarks(px, a, taper, eyes, brows, iris, nose, nx, nb, top_y, u_lip, l_lip, mouth,
               xm, line) -> np.ndarray:
    """(106, 2) plausible points, grouped roughly like LaPa's 106-point scheme (unused here).

    0-32 contour, 33-42 brow tops, 43-51 nose, 52-63 eye contours, 64-71 brow bottoms,
    72-83 more eye points, 84-103 mouth, 104-105 pupils. Order inside groups is approximate.
    """
    t = np.linspace(np.pi + 0.25, -0.25, 33)
    contour = np.stack([a * np.cos(t) * (1 - taper * np.sin(t)), np.sin(t)], 1)
    pts = [contour]
    pts += [brows[s][:21][::5] for s in (-1, 1)]                          # 5 + 5
    pts.append(np.stack([np.full(4, nx), np.linspace(top_y, nb - 0.1, 4)], 1))
    pts.append(nose[10:25][::3])                                           # 5
    pts += [eyes[s][[0, 5, 10, 15, 24, 32]] for s in (-1, 1)]             # 6 + 6
    pts += [brows[s][21:][[2, 7, 12, 17]] for s in (-1, 1)]               # 4 + 4
    pts += [np.concatenate([[eyes[s].mean(0)], eyes[s][[2, 8, 12, 18, 28]]]) for s in (-1, 1)]
    outer = np.concatenate([u_lip[:25][::4][:6], l_lip[25:][::4][:6]])     # 12
    inner_src = mouth if mouth is not None else np.stack([xm, line], 1)
    inner = inner_src[np.linspace(0, len(inner_src) - 1, 8).astype(int)]    # 8
    pts += [outer, inner]
    pts.append(np.array([iris[-1], iris[1]]))
    out = np.concatenate(pts)
    assert out.shape == (106, 2), out.shape
    return px(out)


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
        return _jitter(rng, _SKIN[rng.integers(len(_SKIN))], 20)
    if r < 0.45:
        return _jitter(rng, face.colours["skin"], 12)
    if r < 0.6:
        return _jitter(rng, face.colours["hair"], 20)
    if r < 0.7:
        return _jitter(rng, face.colours["lip"], 20)
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
            poly = _ellipse(cx, cy, r, r * rng.uniform(0.3, 1), rot=rng.uniform(0, np.pi))
        elif kind == 1:
            poly = _ellipse(cx, cy, r, r * rng.uniform(0.1, 1), rot=rng.uniform(0, np.pi), n=4)
        else:
            poly = _blobby(rng, cx, cy, r, wobble=0.5)
        _over(img, _alpha(shape, [poly], k, soft=rng.uniform(0, 1.5) * k), _clutter_colour(rng, face))

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
    _over(img, _alpha(shape, P["neck"], k), skin_field(0.86) * (1 - 0.2 * np.clip(1.2 - fv, 0, 1))[..., None])
    cloth_col = C["cloth"][None, None, :] * (1 + 0.06 * tex)[..., None]
    if face.params["cloth_stripes"]:
        stripes = (np.sin(fu * face.params["stripe_freq"]) > 0)[..., None]
        cloth_col = np.where(stripes, cloth_col, C["cloth2"][None, None, :])
    _over(img, _alpha(shape, P["cloth"], k), cloth_col)
    if "neck_l" in P:
        _over(img, _alpha(shape, P["neck_l"], k), C["metal"][None, None, :] * (1 + 0.15 * tex[..., None]))
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
        _over(img, _alpha(shape, P["hat"], k), C["hat"][None, None, :] * (1 + 0.08 * tex)[..., None])
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
