"""Coupled real-recording clips: real photographs/clip-art and real recorded sounds and speech,
composed the way real footage couples picture and sound.

Kinds (every clip: 320×240 at 25 fps, H.264 + AAC, 16 kHz mono):

* ``cuts``: shots of photographs with a slow zoom (unrelated motion); a cut falls on each sound
  event (percussion, effects, animal sounds), a few sounds have no cut and a few cuts no sound.
* ``brightness``: speech over a photograph whose brightness follows the loudness.
* ``scale``: speech over a photograph with a clip-art figure whose size follows the loudness.
* ``mouth``: speech over a slowly panning photograph; a small dark mouth-like ellipse whose opening
  follows the speech envelope, everything else unrelated.
* ``mouth_gap``: as ``mouth``, but the mouth is hidden for a long middle stretch (no coupling at
  all there) while a clip-art figure wanders about.

The audio is rendered on the video timeline and then mapped with the clip's secret relation
``t_audio = offset(t) + t·(1 + drift)`` (offset jumping at splices), so the truth is exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.data.media_io import decode_audio, encode_clip

RATE_HZ = 16_000
FPS = 25.0
W, H = 320, 240


def load_picture(path: str | Path, size=(W, H)) -> np.ndarray:
    """RGB uint8 picture resized (cover-crop) to ``size`` × 1.25 (room for zoom and pan)."""
    img = Image.open(path).convert("RGB")
    tw, th = int(size[0] * 1.25), int(size[1] * 1.25)
    s = max(tw / img.width, th / img.height)
    img = img.resize((max(tw, int(img.width * s + 0.5)), max(th, int(img.height * s + 0.5))), Image.BILINEAR)
    x0, y0 = (img.width - tw) // 2, (img.height - th) // 2
    return np.asarray(img.crop((x0, y0, x0 + tw, y0 + th)), np.uint8)


def load_sprite(path: str | Path, height: int = 90) -> np.ndarray:
    """RGBA float clip-art scaled to ``height`` px."""
    img = Image.open(path).convert("RGBA")
    w = max(1, int(img.width * height / img.height))
    return np.asarray(img.resize((w, height), Image.BILINEAR), np.float32) / 255.0


def _view(pic: np.ndarray, u: float, zoom: float) -> np.ndarray:
    """A W×H window of ``pic`` at pan position ``u`` in [0, 1] and zoom in [1, 1.25]."""
    ph, pw = pic.shape[:2]
    cw, ch = int(pw / zoom), int(ph / zoom)
    x0 = int((pw - cw) * u)
    y0 = int((ph - ch) * 0.5)
    crop = pic[y0:y0 + ch, x0:x0 + cw]
    yi = (np.arange(H) * ch / H).astype(int)
    xi = (np.arange(W) * cw / W).astype(int)
    return crop[yi][:, xi]


def _paste(img: np.ndarray, sprite: np.ndarray, cx: int, cy: int, scale: float = 1.0) -> None:
    sh, sw = sprite.shape[:2]
    h, w = max(2, int(sh * scale)), max(2, int(sw * scale))
    yi = (np.arange(h) * sh / h).astype(int)
    xi = (np.arange(w) * sw / w).astype(int)
    s = sprite[yi][:, xi]
    x0, y0 = cx - w // 2, cy - h // 2
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if xb <= xa or yb <= ya:
        return
    part = s[ya - y0:yb - y0, xa - x0:xb - x0]
    alpha = part[..., 3:4]
    region = img[ya:yb, xa:xb].astype(np.float32)
    img[ya:yb, xa:xb] = (region * (1 - alpha) + part[..., :3] * 255.0 * alpha).astype(np.uint8)


def envelope(x: np.ndarray, t_s: np.ndarray, win_s: float = 0.03) -> np.ndarray:
    """Loudness in [0, 1] (40 dB range below the clip's peak) of ``x`` around each time."""
    hop = int(0.005 * RATE_HZ)
    n = len(x) // hop
    e = np.sqrt((x[:n * hop].reshape(n, hop) ** 2).mean(axis=1) + 1e-10)
    k = max(1, int(win_s / 0.005))
    e = np.convolve(e, np.ones(k) / k, mode="same")
    db = 20 * np.log10(e + 1e-5)
    env = np.clip((db - (db.max() - 40.0)) / 40.0, 0.0, 1.0)
    return np.interp(t_s, (np.arange(n) + 0.5) * hop / RATE_HZ, env)


def speech_track(files: list[str], duration_s: float, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Utterances (real recordings) one after another with 0.2–0.9 s pauses, to ``duration_s``;
    returns the track and the files used."""
    out = np.zeros(int(duration_s * RATE_HZ), np.float32)
    pos = int(rng.uniform(0.2, 0.6) * RATE_HZ)
    used = []
    for k in rng.permutation(len(files)):
        if pos >= len(out):
            break
        x = decode_audio(files[k], RATE_HZ, max_s=6.0)
        if len(x) < RATE_HZ // 4:
            continue
        x = 0.5 * x / (np.abs(x).max() + 1e-6)
        m = min(len(x), len(out) - pos)
        out[pos:pos + m] += x[:m]
        used.append(files[k])
        pos += m + int(rng.uniform(0.2, 0.9) * RATE_HZ)
    return out, used


def map_audio(native: np.ndarray, offset_ms: float, drift_ppm: float, splices: list[tuple[float, float]]) -> np.ndarray:
    """The recorded audio: content of video time ``t`` heard at ``offset(t) + t·(1+drift)``.

    ``splices`` are ``(t_video_s, jump_ms)``: from that video time on, the offset is larger by
    the jump (a later segment overwrites where the audio jumps earlier)."""
    scale = 1.0 + drift_ppm * 1e-6
    bounds = [0.0] + [t for t, _ in splices] + [len(native) / RATE_HZ]
    offs = np.cumsum([offset_ms] + [j for _, j in splices]) / 1000.0
    out = np.zeros(len(native), np.float32)
    src_idx = np.arange(len(native))
    for k in range(len(offs)):
        tau0 = offs[k] + bounds[k] * scale
        tau1 = offs[k] + bounds[k + 1] * scale
        i0, i1 = max(0, int(np.ceil(tau0 * RATE_HZ))), min(len(out), int(np.floor(tau1 * RATE_HZ)))
        if i1 <= i0:
            continue
        tau = np.arange(i0, i1) / RATE_HZ
        out[i0:i1] = np.interp((tau - offs[k]) / scale * RATE_HZ, src_idx, native, left=0.0, right=0.0)
    return out


def truth_audio_s(t_video_s: np.ndarray, offset_ms: float, drift_ppm: float, splices) -> np.ndarray:
    """Audio time of each video time under a clip's relation."""
    off = np.full(len(t_video_s), offset_ms / 1000.0)
    for t, j in splices:
        off = off + np.where(t_video_s >= t, j / 1000.0, 0.0)
    return off + t_video_s * (1.0 + drift_ppm * 1e-6)


def compose(kind: str, dst: Path, duration_s: float, pictures: list[str], sprites: list[str], speech: list[str],
            sounds: list[str], rng: np.random.Generator) -> dict:
    """Renders one clip of ``kind`` (native timeline) and returns what the audio was built from."""
    n_frames = int(duration_s * FPS)
    t_frames = np.arange(n_frames) / FPS
    pics = [load_picture(pictures[i]) for i in rng.choice(len(pictures), size=8, replace=False)]
    native = np.zeros(int(duration_s * RATE_HZ), np.float32)
    used: list[str] = []
    cut_times: list[float] = []
    if kind == "cuts":
        t = rng.uniform(0.5, 1.0)
        while t < duration_s - 0.6:
            # A picture changes only on a frame: an editor cuts on a frame and lays the sound
            # on it. (A cut between frames would be seen up to a frame after its sound starts,
            # so the truth would be off by up to 40 ms for a perfect estimator.)
            t = np.ceil(t * FPS - 1e-9) / FPS
            snd = sounds[int(rng.integers(len(sounds)))]
            used.append(snd)
            x = decode_audio(snd, RATE_HZ, max_s=1.0)
            # The event is where the sound becomes audible: leading silence of the file is not
            # part of it (a cut falls on the audible onset in real footage too).
            loud = np.flatnonzero(np.abs(x) >= 0.05 * (np.abs(x).max() + 1e-9))
            x = x[loud[0]:][: int(0.8 * RATE_HZ)] if len(loud) else x[:0]
            x = 0.6 * x / (np.abs(x).max() + 1e-6) * np.linspace(1, 0.2, len(x)) if len(x) else x
            r = rng.uniform()
            if r > 0.12:  # most sounds have their cut; some are off-screen
                i = int(t * RATE_HZ)
                m = min(len(x), len(native) - i)
                native[i:i + m] += x[:m]
            if r < 0.9:
                cut_times.append(t)
            t += rng.uniform(0.7, 2.0)
        native += (0.003 * rng.standard_normal(len(native))).astype(np.float32)
    else:
        native, used = speech_track(speech, duration_s, rng)
    env = envelope(native, t_frames)
    sprite = load_sprite(sprites[int(rng.integers(len(sprites)))], 100)
    mouth_xy = (int(rng.integers(80, 240)), int(rng.integers(70, 170)))
    pan_speed = rng.uniform(0.03, 0.08)

    def frames():
        shot = 0
        for j, t in enumerate(t_frames):
            if kind == "cuts":
                while shot < len(cut_times) and t >= cut_times[shot]:
                    shot += 1
                start = cut_times[shot - 1] if shot else 0.0
                img = _view(pics[shot % len(pics)], 0.5, 1.0 + 0.08 * (t - start))
            else:
                u = 0.5 + 0.45 * np.sin(2 * np.pi * pan_speed * t)
                img = _view(pics[0], u, 1.1).copy()
            e = float(env[j])
            if kind == "brightness":
                img = np.clip(img.astype(np.float32) * (0.55 + 0.6 * e), 0, 255).astype(np.uint8)
            elif kind == "scale":
                _paste(img, sprite, W // 2, H // 2, 0.6 + 0.7 * e)
            elif kind in ("mouth", "mouth_gap"):
                hidden = kind == "mouth_gap" and 0.35 * duration_s <= t < 0.7 * duration_s
                if kind == "mouth_gap":
                    _paste(img, sprite, int(W / 2 + 100 * np.sin(0.7 * t)), int(H / 2 + 50 * np.cos(1.1 * t)))
                _mouth(img, mouth_xy, 0.0 if hidden else e)
            yield img

    return {"native": native, "frames": frames, "used": sorted(set(used)), "cut_times": cut_times,
            "n_frames": n_frames}


def _mouth(img: np.ndarray, xy: tuple[int, int], opening: float) -> None:
    """A skin-coloured face patch with a dark ellipse whose height follows ``opening``."""
    cx, cy = xy
    yy, xx = np.mgrid[-22:23, -30:31]
    face = (xx / 30.0) ** 2 + (yy / 22.0) ** 2 <= 1.0
    ys, xs = slice(cy - 22, cy + 23), slice(cx - 30, cx + 31)
    patch = img[ys, xs]
    patch[face] = (205, 160, 135)
    ry = 1.0 + 10.0 * opening
    mouth = (xx / 16.0) ** 2 + (yy / ry) ** 2 <= 1.0
    patch[mouth] = (60, 15, 20)


def build_coupled_clip(spec: dict, dst: Path, assets: dict) -> dict:
    """Builds one coupled clip from its manifest spec; returns the spec plus the sources used."""
    rng = np.random.default_rng(spec["seed"])
    speech = assets["speech_ru"] if spec.get("speech") == "ru" else assets["speech"]
    comp = compose(spec["kind"], dst, spec["duration_s"], assets["pictures"], assets["sprites"], speech,
                   assets["sounds"], rng)
    audio = map_audio(comp["native"], spec["offset_ms"], spec["drift_ppm"], [tuple(s) for s in spec["splices"]])
    encode_clip(dst, comp["frames"](), FPS, audio, RATE_HZ)
    return {**spec, "cut_times_s": [round(t, 4) for t in comp["cut_times"]]}
