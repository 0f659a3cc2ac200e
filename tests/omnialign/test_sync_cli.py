"""``omnialign sync``: JSON schema, human summary, plot, errors (real encodes)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from omnialign.cli import main


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from engine.media.synth import SynthSpec, synthesize

    path = tmp_path_factory.mktemp("sync_cli") / "c.mp4"
    truth = synthesize(SynthSpec(duration_s=10.0, offset_ms=180, drift_ppm=-600, speech=True, seed=4), path)
    return str(path), truth


def test_json_schema_exactly(clip, capsys):
    path, truth = clip
    assert main(["sync", path, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["offset_ms", "drift_ppm", "confidence", "warp"]
    assert all(isinstance(out[k], float) for k in ("offset_ms", "drift_ppm", "confidence"))
    assert 0.0 <= out["confidence"] <= 1.0
    warp = np.array(out["warp"])
    assert warp.ndim == 2 and warp.shape[1] == 2 and all(isinstance(v, float) for row in out["warp"] for v in row)
    assert warp[0, 0] <= 0.0 and warp[-1, 0] >= 10.0 - 0.05
    assert np.all(np.diff(warp[:, 0]) > 0) and np.all(np.diff(warp[:, 1]) >= 0)
    assert abs(out["offset_ms"] - 180) <= 5.0
    tv = np.array([e.t_video_s for e in truth.events])
    ta = np.array([e.t_audio_s for e in truth.events])
    assert np.abs(np.interp(tv, warp[:, 0], warp[:, 1]) - ta).max() <= 0.040


def test_human_summary_and_plot(clip, capsys, tmp_path):
    path, _ = clip
    png = tmp_path / "sync.png"
    assert main(["sync", path, "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    m = re.search(r"offset ([+-][0-9.]+) ms .* drift ([+-][0-9]+) ppm, confidence ([0-9.]+)", out)
    assert m is not None, out
    assert abs(float(m.group(1)) - 180) <= 5.0 and 0.0 <= float(m.group(3)) <= 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs_fail_with_one_line(tmp_path, capsys):
    from engine.media.synth import SynthSpec, synthesize

    bad = tmp_path / "bad.mp4"
    bad.write_text("not media")
    audio_only = tmp_path / "a.wav"
    synthesize(SynthSpec(duration_s=1.0, with_video=False), audio_only)
    for target, words in ((bad, ""), (tmp_path / "missing.mp4", "no such file"), (audio_only, "no video stream")):
        assert main(["sync", str(target), "--json"]) == 1
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("omnialign: error:") and words in err[0]
        assert captured.out == ""


def test_a_splice_on_the_continuous_cues_is_reported_and_plotted(capsys, tmp_path):
    from tests.engine.align.test_coupled import make_mouth_clip

    path = tmp_path / "spliced.mp4"
    make_mouth_clip(path, 14.0, -60.0, seed=4, splice=(7.0, 160.0))
    png = tmp_path / "splice.png"
    assert main(["sync", str(path), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    runs = re.findall(r"from +([0-9.]+) s: offset ([+-][0-9.]+) ms \(continuous cues on this side\)", out)
    assert len(runs) == 2, out
    assert abs(float(runs[0][1]) + 60.0) <= 20.0 and abs(float(runs[1][1]) - 100.0) <= 20.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
