"""Every dev-set clip decodes (msvideo1/Vorbis MKV, MPEG-4/AC3 AVI, MJPEG/PCM-u8 AVI, H.264/AAC
MP4) or fails with a typed media error. Runs only where the dev set was built
(``python -m benchmarks.data.devsets``); nothing is downloaded here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.data.devsets import REAL_VIDEOS, default_cache
from engine.errors import MediaError
from engine.media.decode import MediaConfig, iter_segments

MANIFEST = default_cache() / "manifest.json"
pytestmark = pytest.mark.skipif(not MANIFEST.exists(), reason="dev set not built (python -m benchmarks.data.devsets)")


def _decode(path: str) -> int:
    cfg = MediaConfig(segment_s=2.0, video_width=64, video_height=48, require_audio=True, require_video=True)
    return sum(1 for _ in iter_segments(path, cfg))


def test_built_dev_clips_decode():
    m = json.loads(MANIFEST.read_text())
    paths = [c["path"] for c in m["coupled"]]
    paths += [v["path"] for c in m["real_videos"] for v in [c["copy"]] + c["variants"]]
    for p in paths:
        assert _decode(p) >= 2, p


@pytest.mark.parametrize("package,rel,name,silent", REAL_VIDEOS, ids=[r[2] for r in REAL_VIDEOS])
def test_original_real_videos_decode_or_fail_typed(package, rel, name, silent):
    src = Path(json.loads(MANIFEST.read_text())["cache"]) / "x" / rel
    try:
        assert _decode(str(src)) >= 2
    except MediaError as e:  # typed; Megamind.avi's AC3 tail is the known case
        assert str(src) in str(e)
