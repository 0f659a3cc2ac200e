"""``omnialign rvq fit`` / ``rvq encode`` end to end on a synthesized clip."""

from __future__ import annotations

import json

from omnialign.cli import main


def test_fit_then_encode_json(tmp_path, capsys):
    clip = tmp_path / "c.mp4"
    main(["synth", str(clip), "--duration-s", "4", "--speech"])
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    capsys.readouterr()
    code = main(["rvq", "fit", "--input", str(clip), str(bad), "--out", str(tmp_path / "cb"),
                 "--audio-codebook-size", "32", "--video-codebook-size", "32", "--audio-quantizers", "3"])
    out = capsys.readouterr()
    assert code == 1 and "not a media file" in out.err  # the bad input fails alone
    assert "audio: 3x32 codes over 80-d" in out.out
    manifest = json.loads((tmp_path / "cb" / "manifest.json").read_text())
    assert manifest["modalities"] == ["audio", "video"]

    assert main(["rvq", "encode", str(clip), "--codebooks", str(tmp_path / "cb"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["index"] for r in rows] == [0, 1]
    for r in rows:
        assert r["codebook_version"] == manifest["codebook_version"]
        a, v = r["audio"], r["video"]
        assert len(a["codes"]) == len(a["t_us"]) == len(a["dur_us"]) and len(a["codes"][0]) == 3
        assert all(r["t_start_us"] <= t < r["t_end_us"] for t in a["t_us"] + v["t_us"])
        assert max(max(c) for c in a["codes"]) < 32
        assert v["tokens_out"] < v["tokens_in"]
        assert set(v["t_us"]) <= set(v["keyframe_t_us"])  # tokens come from kept keyframes only

    assert main(["rvq", "encode", str(clip), "--codebooks", str(tmp_path)]) == 1
    assert "not a codebook folder" in capsys.readouterr().err
