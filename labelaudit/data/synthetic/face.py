"""Procedurally drawn faces: the geometry and colours of one random face.

Geometry lives in *face units* (the face ellipse has half-height 1, y points down, x to the image
right) and is mapped to label pixels by a similarity transform (scale, in-plane rotation,
translation). Every part is a list of float polygons in label-pixel coordinates, so the label map
and the image (see `draw`) are rasterised from the same shapes.

Left/right convention: `l_*` is the part on the IMAGE's left (the subject's right side). A
horizontal flip of image and label therefore maps every `l_*` pixel onto an `r_*` part, which is
what `ClassSet.flip_pairs` swaps.

Colour is deliberately ambiguous so that a model needs spatial context: both eyes, both brows
and both ears share colours, the two lips share one colour, the nose is skin with shading, the
neck is skin-coloured background (11 classes), and background clutter reuses skin, hair and lip
colours (see `draw.render_image`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SKIN_TONES = np.array([
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

def ellipse(cx, cy, a, b, rot=0.0, n=40, t0=0.0, t1=2 * np.pi) -> np.ndarray:
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


def blobby(rng: np.random.Generator, cx, cy, r, n=16, wobble=0.3) -> np.ndarray:
    """Irregular closed blob of mean radius r."""
    k = np.arange(n)
    rad = r * (1 + wobble * np.convolve(np.pad(rng.normal(size=n), 1, mode="wrap"),
                                        np.ones(3) / 3, "valid"))
    t = 2 * np.pi * k / n
    return np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], 1)


# --------------------------------------------------------------------------- sampling

def jitter(rng, colour, amount) -> np.ndarray:
    return np.clip(colour + rng.uniform(-amount, amount, 3), 0, 255).astype(np.float32)


def sample_face(rng: np.random.Generator, size: int, rich: bool) -> Face:
    """Draw the geometry and colours of one face in a size x size label frame.

    The parts are sampled in a fixed order (every random draw in the same sequence, so a seed
    gives the same bytes), in face units, then placed into label pixels by `_assemble` and the
    accessory functions.
    """
    u = rng.uniform
    face = _placement(rng, size, rich)
    _appearance(rng, face)
    a, taper = 0.74 * u(0.9, 1.08), u(0.08, 0.2)
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    outline = np.stack([a * np.cos(t) * (1 - taper * np.sin(t)), np.sin(t)], 1)
    yaw = u(-0.2, 0.2)                        # horizontal shift of inner parts (face units)
    foreshort = {-1: 1 - 0.9 * max(0.0, -yaw), 1: 1 - 0.9 * max(0.0, yaw)}
    body = _neck_and_cloth(rng)
    hair = _hair(rng, a)
    ear_y, ears = _ears(rng, a, yaw, hair.locks)
    eyes = _eyes_and_brows(rng, yaw, foreshort)
    nose = _nose(rng, yaw, eyes.eye_y)
    mouth = _mouth(rng, yaw)
    glasses = rich and u() < 0.3
    sunglasses = glasses and u() < 0.3
    hat = rich and hair.style != "long" and u() < 0.15
    necklace = rich and u() < 0.25
    earrings = rich and bool(ears) and u() < 0.3

    _assemble(rng, face, outline, yaw, body, hair, ear_y, ears, eyes, nose, mouth)
    if glasses:
        _glasses(rng, face, eyes, foreshort, a, yaw, sunglasses)
    if hat:
        _hat(rng, face, hair)
    if necklace:
        _necklace(rng, face, body)
    if earrings:
        _earrings(rng, face, ears)
    face.params = {k: float(v) for k, v in face.params.items()}
    face.landmarks = _landmarks(face.to_px, a, taper, eyes, nose, mouth)
    return face


@dataclass
class _Body:
    """Neck and clothes (face units); the neck is background for 11 classes."""

    half_width: float               # the neck's half-width
    collar_y: float                 # where the neckline meets the neck
    neck: np.ndarray
    cloth: np.ndarray


@dataclass
class _Hair:
    """Hair polygons (face units) and what the ears and hat need to know of them."""

    style: str                      # bald, short, long or bun
    width: float                    # the hair ring's half-width (A)
    height: float                   # its half-height (B)
    locks: bool                     # long locks in front of the ears
    back: list[np.ndarray]
    front: list[np.ndarray]


@dataclass
class _Eyes:
    """Eyes, brows and irises per side (-1: image-left, 1: image-right), face units."""

    eye_y: float
    sep: float
    width: float                    # the eye's half-width before foreshortening
    eyes: dict[int, np.ndarray]
    brows: dict[int, np.ndarray]
    iris: dict[int, tuple[float, float]]
    iris_radius: float


@dataclass
class _Nose:
    x: float
    bottom: float
    base_half_width: float
    top_y: float
    polygon: np.ndarray


@dataclass
class _Mouth:
    x: float
    xm: np.ndarray                  # sample abscissae along the mouth
    line: np.ndarray                # the lips' meeting line at xm
    open_: float                    # gap between the lips (0: closed)
    gap: np.ndarray                 # the opening's profile along xm
    in_up: np.ndarray               # the upper lip's inner edge
    u_lip: np.ndarray
    l_lip: np.ndarray
    mouth: np.ndarray


def _placement(rng: np.random.Generator, size: int, rich: bool) -> Face:
    """A face of random scale, position and in-plane rotation in the label frame."""
    u = rng.uniform
    scale = u(0.6, 1.0)
    unit = scale * size * 0.4
    slack = (1.0 - scale) * size * 0.22 + size * 0.03
    centre = np.array([size / 2 + u(-slack, slack), size * (0.5 if not rich else 0.47)
                       + u(-slack, slack)])
    return Face(size=size, rich=rich, centre=centre, unit=unit, angle=np.deg2rad(u(-25, 25)))


def _appearance(rng: np.random.Generator, face: Face) -> None:
    """The face's colours and shading parameters."""
    u = rng.uniform
    skin = jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 14)
    hair = (jitter(rng, _HAIR[rng.integers(len(_HAIR))], 18) if u() > 0.08
            else rng.uniform(30, 230, 3).astype(np.float32))
    lip_mix = u(0.4, 0.85)
    lip = np.clip((1 - lip_mix) * skin + lip_mix * jitter(rng, np.array([185, 70, 85.0]), 30),
                  0, 255)
    brow = np.clip(hair * u(0.55, 0.95) if hair.mean() < 170 else skin * u(0.45, 0.7), 0, 255)
    face.colours.update(
        skin=skin, hair=hair, lip=lip.astype(np.float32), brow=brow.astype(np.float32),
        iris=jitter(rng, _IRIS[rng.integers(len(_IRIS))], 15),
        sclera=jitter(rng, np.array([232, 228, 222.0]), 14),
        mouth=jitter(rng, np.array([70, 25, 30.0]), 20),
        cloth=rng.uniform(10, 245, 3).astype(np.float32),
        cloth2=rng.uniform(10, 245, 3).astype(np.float32),
        metal=jitter(rng, _METAL[rng.integers(len(_METAL))], 15),
        frame=jitter(rng, _METAL[rng.integers(len(_METAL))], 20) * u(0.4, 1.0),
        hat=rng.uniform(10, 245, 3).astype(np.float32),
        earring=jitter(rng, _METAL[rng.integers(len(_METAL))], 15),
        tint=rng.uniform(40, 200, 3).astype(np.float32),
    )
    face.params.update(nose_tone=u(0.9, 1.06), nose_shade=u(0.08, 0.22) * rng.choice([-1, 1]),
                       skin_falloff=u(0.08, 0.25), blush=u(0, 0.25) if u() < 0.5 else 0.0,
                       cloth_stripes=float(u() < 0.3), stripe_freq=u(4, 12))


def _neck_and_cloth(rng: np.random.Generator) -> _Body:
    u = rng.uniform
    nw = u(0.34, 0.46)
    neck = np.array([[-nw, 0.3], [nw, 0.3], [nw * 1.15, 3.5], [-nw * 1.15, 3.5]])
    c0 = u(1.15, 1.5)
    sh = u(2.0, 2.8)
    vdepth = u(0.15, 0.6)
    if u() < 0.5:   # V neck
        cut = [[nw + 0.05, c0], [0.0, c0 + vdepth], [-nw - 0.05, c0]]
    else:           # round neck
        cut = list(ellipse(0, c0, nw + 0.05, vdepth, t0=0, t1=np.pi, n=14))
    cloth = np.array([[-nw - 0.05, c0], [-sh * 0.6, c0 + 0.35], [-sh, c0 + 0.9], [-sh, 4.0],
                      [sh, 4.0], [sh, c0 + 0.9], [sh * 0.6, c0 + 0.35], *cut])
    return _Body(nw, c0, neck, cloth)


def _hair(rng: np.random.Generator, a: float) -> _Hair:
    """Back hair (behind the head) and front hair (above a hairline, inside the outline)."""
    u = rng.uniform
    style = str(rng.choice(["bald", "short", "long", "bun"], p=[0.06, 0.42, 0.38, 0.14]))
    vol, top = u(0.05, 0.2), u(0.1, 0.3)
    A, B, hcy = a + vol, 1.0 + top, -0.08
    bangs = u() < 0.35
    locks = style == "long" and u() < 0.5
    h_side = u(-0.3, 0.0)
    hair = _Hair(style, A, B, locks, [], [])
    if style == "bald":
        return hair
    tt = np.linspace(np.pi / 2, np.pi / 2 + 2 * np.pi, 160)
    ring = np.stack([A * np.cos(tt), hcy + B * np.sin(tt)], 1)
    if style == "long":
        v_end, flare = u(1.2, 2.3), u(0.05, 0.35)
        arc = ring[ring[:, 1] <= 0.0]   # contiguous: left -> top -> right
        xs = np.linspace(A + flare, -A - flare, 24)
        bottom = np.stack([xs, v_end + 0.08 * np.sin(xs * u(5, 9) + u(0, 6))], 1)
        hair.back.append(np.concatenate([arc, [[A + flare * 0.5, 0.6]], bottom,
                                         [[-A - flare * 0.5, 0.6]]]))
    else:
        hair.back.append(ring[ring[:, 1] <= u(-0.15, 0.2)])
        if style == "bun":
            hair.back.append(ellipse(u(-0.2, 0.2), -1.0 - top - u(0.05, 0.2), u(0.22, 0.35),
                                     u(0.2, 0.3)))
    h0 = u(-0.5, -0.3) if bangs else u(-0.8, -0.55)
    parting = u(-0.3, 0.3)
    p_exp = u(1.5, 4.0)
    arc = ring[ring[:, 1] <= h_side]
    xs = np.linspace(A, -A, 40)
    ys = h0 + (h_side - h0) * np.clip(np.abs(xs - parting * a) / (a * (1 + abs(parting))),
                                      0, 1) ** p_exp
    if bangs:
        ys = ys + 0.05 * np.abs(np.sin(xs * u(14, 24)))
    hair.front.append(np.concatenate([arc, np.stack([xs, np.minimum(ys, h_side)], 1)]))
    if locks:
        for s in (-1, 1):
            x_in = s * (a * u(0.82, 0.95))
            x_out = s * (A + u(0.1, 0.3))
            lv = u(1.2, 2.0)
            hair.front.append(np.array([[x_in, h_side], [x_out, h_side - 0.1], [x_out, lv],
                                        [(x_in + x_out) / 2, lv + 0.1], [x_in + s * 0.05, 0.5]]))
    return hair


def _ears(rng: np.random.Generator, a: float, yaw: float, locks: bool,
          ) -> tuple[float, dict[int, np.ndarray]]:
    """The ears' height and outline per side; none behind long locks or in one face in ten."""
    u = rng.uniform
    ear_y = u(-0.12, 0.02)
    ears: dict[int, np.ndarray] = {}
    if not locks and u() < 0.9:
        for s in (-1, 1):
            f = 1 - 3.0 * max(0.0, s * yaw)
            ew_, eh_ = u(0.09, 0.12) * max(f, 0.2), u(0.17, 0.22)
            ears[s] = ellipse(s * (a * 0.97 - 0.6 * yaw * s), ear_y, ew_ + 0.05, eh_,
                              rot=s * u(0.05, 0.25))
    return ear_y, ears


def _eyes_and_brows(rng: np.random.Generator, yaw: float, foreshort: dict[int, float]) -> _Eyes:
    u = rng.uniform
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
    return _Eyes(eye_y, sep, ew, eyes, brows, iris, min(eh * 1.0, ew * 0.5))


def _nose(rng: np.random.Generator, yaw: float, eye_y: float) -> _Nose:
    u = rng.uniform
    nx = yaw * 1.15
    nb = u(0.2, 0.3)
    nwb = u(0.09, 0.13)
    top_y = eye_y + 0.03
    vs = np.linspace(top_y, nb - 0.04, 10)
    half = 0.035 + (nwb - 0.035) * ((vs - top_y) / (nb - 0.04 - top_y)) ** 2
    bottom = ellipse(nx, nb - 0.04, nwb, 0.07, t0=0, t1=np.pi, n=15)
    polygon = np.concatenate([np.stack([nx + half, vs], 1), bottom,
                              np.stack([nx - half, vs], 1)[::-1]])
    return _Nose(nx, nb, nwb, top_y, polygon)


def _mouth(rng: np.random.Generator, yaw: float) -> _Mouth:
    u = rng.uniform
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
    return _Mouth(mx, xm, line, open_, g, in_up, u_lip, l_lip, mouth)


def _assemble(rng: np.random.Generator, face: Face, outline: np.ndarray, yaw: float,
              body: _Body, hair: _Hair, ear_y: float, ears: dict[int, np.ndarray], eyes: _Eyes,
              nose: _Nose, mouth: _Mouth) -> None:
    """Place the labelled parts and the image-only shapes in label pixels, in painting order."""
    P, D, px = face.parts, face.decor, face.to_px
    side_name = {-1: "l", 1: "r"}             # l_* = image-left (module docstring)
    if hair.back:
        P["hair_back"] = [px(p) for p in hair.back]
    P["neck"] = [px(body.neck)]
    P["cloth"] = [px(body.cloth)]
    for s, e in ears.items():
        P[f"{side_name[s]}_ear"] = [px(e)]
        D[f"ear_inner_{s}"] = [px(ellipse(e[:, 0].mean() + s * 0.01, ear_y, 0.045, 0.11))]
    P["skin"] = [px(outline)]
    P["nose"] = [px(nose.polygon)]
    ri, nx, nb, nwb = eyes.iris_radius, nose.x, nose.bottom, nose.base_half_width
    for s in (-1, 1):
        P[f"{side_name[s]}_eye"] = [px(eyes.eyes[s])]
        P[f"{side_name[s]}_brow"] = [px(eyes.brows[s])]
        ix, iy = eyes.iris[s]
        D[f"iris_{s}"] = [px(ellipse(ix, iy, ri, ri, n=24))]
        D[f"pupil_{s}"] = [px(ellipse(ix, iy, ri * 0.45, ri * 0.45, n=16))]
        D[f"glint_{s}"] = [px(ellipse(ix + ri * 0.3, iy - ri * 0.3, ri * 0.18, ri * 0.18, n=8))]
        D[f"lid_{s}"] = [px(eyes.eyes[s][:21])]
        D[f"nostril_{s}"] = [px(ellipse(nx + s * nwb * 0.5, nb - 0.03, nwb * 0.28, 0.022,
                                        rot=s * 0.3, n=12))]
        D[f"cheek_{s}"] = [px(ellipse(s * 0.42 + yaw * 0.5, 0.2, 0.18, 0.12))]
    D["ridge"] = [px(ellipse(nx + face.params["nose_shade"] * 0.2, (nose.top_y + nb) / 2 - 0.03,
                             0.022, (nb - nose.top_y) / 2 - 0.05, n=16))]
    _mouth_parts(rng, face, mouth)
    if hair.front:
        P["hair_front"] = [px(p) for p in hair.front]
    face.params.update(ear_y=ear_y, style=["bald", "short", "long", "bun"].index(hair.style))


def _mouth_parts(rng: np.random.Generator, face: Face, m: _Mouth) -> None:
    """The open mouth (and often teeth), both lips and the lips' meeting line."""
    P, D, px = face.parts, face.decor, face.to_px
    if m.open_ > 0:
        P["mouth"] = [px(m.mouth)]
        if m.open_ > 0.04 and rng.uniform() < 0.7:
            D["teeth"] = [px(_band(m.xm * 0.8 + m.x * 0.2, m.in_up + m.open_ * 0.22 * m.gap,
                                   m.open_ * 0.2 * m.gap))]
    P["u_lip"] = [px(m.u_lip)]
    P["l_lip"] = [px(m.l_lip)]
    D["mouth_line"] = [px(np.stack([m.xm, m.line], 1))]


def _glasses(rng: np.random.Generator, face: Face, eyes: _Eyes, foreshort: dict[int, float],
             a: float, yaw: float, sunglasses: bool) -> None:
    """Frames (labelled `eye_g`) around two lenses (image-only), arms and a bridge."""
    u, px = rng.uniform, face.to_px
    ft = max(1.2 / face.unit, u(0.02, 0.035))
    eye_y, sep, ew = eyes.eye_y, eyes.sep, eyes.width
    lenses, g_parts = [], []
    for s in (-1, 1):
        f = foreshort[s]
        cx = s * sep * f + yaw
        lw, lh = ew * f * u(1.35, 1.6), u(0.1, 0.14)
        lens = ellipse(cx, eye_y + 0.01, lw, lh, n=36)
        lenses.append(px(lens))
        g_parts.append(px(ellipse(cx, eye_y + 0.01, lw + ft, lh + ft, n=36)))
        arm = np.array([[cx + s * lw, eye_y - 0.02], [s * a * 0.99 + 0.3 * yaw, eye_y - 0.04]])
        g_parts.append(px(_thick_polyline(np.linspace(arm[0], arm[1], 6), ft / 2)))
    inner_l, inner_r = -sep * foreshort[-1] + yaw, sep * foreshort[1] + yaw
    bx = np.linspace(inner_l + ew * 0.9, inner_r - ew * 0.9, 8)
    by = eye_y - 0.03 - 0.03 * np.sin(np.linspace(0, np.pi, 8))
    g_parts.append(px(_thick_polyline(np.stack([bx, by], 1), ft / 2)))
    face.parts["eye_g"] = g_parts
    face.decor["lens"] = lenses
    face.params.update(frame_px=ft, sunglasses=float(sunglasses),
                       lens_alpha=u(0.8, 0.92) if sunglasses else u(0.08, 0.25))
    if sunglasses:   # eyes are not visible, so they are not annotated
        face.params["hide_eyes"] = 1.0


def _hat(rng: np.random.Generator, face: Face, hair: _Hair) -> None:
    u, px = rng.uniform, face.to_px
    hy = -0.55 - u(0.0, 0.15)
    dome = ellipse(0, hy, hair.width + u(0.08, 0.2), hair.height + 0.15, t0=np.pi,
                   t1=2 * np.pi, n=30)
    brim = ellipse(0, hy, hair.width + u(0.25, 0.5), u(0.07, 0.12), n=30)
    face.parts["hat"] = [px(dome), px(brim)]


def _necklace(rng: np.random.Generator, face: Face, body: _Body) -> None:
    u, nw = rng.uniform, body.half_width
    th = max(2.2 / face.unit, u(0.035, 0.06))
    xs = np.linspace(-nw * 0.97, nw * 0.97, 24)
    y0, dep = body.collar_y - u(0.05, 0.3), u(0.1, 0.35)
    chain = np.stack([xs, y0 + dep * (1 - (xs / nw) ** 2)], 1)
    face.parts["neck_l"] = [face.to_px(_thick_polyline(chain, th / 2))]


def _earrings(rng: np.random.Generator, face: Face, ears: dict[int, np.ndarray]) -> None:
    u = rng.uniform
    r = max(1.6 / face.unit, u(0.03, 0.06))
    face.parts["ear_r"] = [face.to_px(ellipse(e[:, 0].mean(), e[:, 1].max() + r * 0.6, r,
                                              r * u(1, 1.8), n=14)) for e in ears.values()]


def _landmarks(px, a: float, taper: float, e: _Eyes, n: _Nose, m: _Mouth) -> np.ndarray:
    """(106, 2) plausible points, grouped roughly like LaPa's 106-point scheme (unused here).

    0-32 contour, 33-42 brow tops, 43-51 nose, 52-63 eye contours, 64-71 brow bottoms,
    72-83 more eye points, 84-103 mouth, 104-105 pupils. Order inside groups is approximate.
    """
    t = np.linspace(np.pi + 0.25, -0.25, 33)
    contour = np.stack([a * np.cos(t) * (1 - taper * np.sin(t)), np.sin(t)], 1)
    pts = [contour]
    pts += [e.brows[s][:21][::5] for s in (-1, 1)]                        # 5 + 5
    pts.append(np.stack([np.full(4, n.x), np.linspace(n.top_y, n.bottom - 0.1, 4)], 1))
    pts.append(n.polygon[10:25][::3])                                      # 5
    pts += [e.eyes[s][[0, 5, 10, 15, 24, 32]] for s in (-1, 1)]           # 6 + 6
    pts += [e.brows[s][21:][[2, 7, 12, 17]] for s in (-1, 1)]             # 4 + 4
    pts += [np.concatenate([[e.eyes[s].mean(0)], e.eyes[s][[2, 8, 12, 18, 28]]])
            for s in (-1, 1)]
    outer = np.concatenate([m.u_lip[:25][::4][:6], m.l_lip[25:][::4][:6]])  # 12
    inner_src = m.mouth if m.open_ > 0 else np.stack([m.xm, m.line], 1)
    inner = inner_src[np.linspace(0, len(inner_src) - 1, 8).astype(int)]    # 8
    pts += [outer, inner]
    pts.append(np.array([e.iris[-1], e.iris[1]]))
    out = np.concatenate(pts)
    assert out.shape == (106, 2), out.shape
    return px(out)
