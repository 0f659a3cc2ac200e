"""The console script, end to end (real encodes, real decoding)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from omnialign.cli import build_parser, main

SCRIPT = Path(sys.executable).parent / "omnialign"


def test_synth_writes_clip_and_truth(tmp_path, capsys):
    out = tmp_path / "s.mp4"
    assert main(["synth", str(out), "--duration-s", "3", "--offset-ms", "80", "--drift-ppm", "-300",
                 "--splice", "2:10", "--drop-frames", "7,8", "--seed", "3"]) == 0
    truth = json.loads(Path(str(out) + ".json").read_text())
    assert truth["spec"]["offset_ms"] == 80.0 and truth["spec"]["splices"] == [[2.0, 10.0]]
    assert len(truth["video_frame_t_us"]) == 73
    assert "wrote" in capsys.readouterr().out


def test_segments_table_and_json(tmp_path, capsys):
    clip = tmp_path / "c.mp4"
    main(["synth", str(clip), "--duration-s", "5"])
    capsys.readouterr()
    assert main(["segments", str(clip)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["index", "t_start_us", "t_end_us", "n_audio_samples", "n_video_frames"]
    assert out[2].split() == ["0", "0", "2000000", "32000", "50"]
    assert out[4].split() == ["2", "4000000", "5000000", "16000", "25"]
    assert main(["segments", str(clip), "--json", "--segment-s", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4] and rows[-1]["is_final"]


def test_bad_input_in_a_batch_fails_alone(tmp_path, capsys):
    good1, good2 = tmp_path / "g1.mp4", tmp_path / "g2.wav"
    main(["synth", str(good1), "--duration-s", "2"])
    main(["synth", str(good2), "--duration-s", "2"])
    bad = tmp_path / "bad.mp4"
    bad.write_text("not media")
    capsys.readouterr()
    code = main(["segments", str(good1), str(bad), str(tmp_path / "missing.mkv"), str(good2), "--json"])
    assert code == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    ok = {r["source"] for r in rows if "error" not in r}
    errors = {r["source"]: r["error"] for r in rows if "error" in r}
    assert ok == {str(good1), str(good2)}
    assert errors == {str(bad): "NotMediaError", str(tmp_path / "missing.mkv"): "MediaNotFoundError"}
    assert len(captured.err.strip().splitlines()) == 2 and "Traceback" not in captured.err


def test_console_script_prints_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"")
    proc = subprocess.run([str(SCRIPT), "segments", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"omnialign: error: {bad}: file is empty (0 bytes)"
    proc = subprocess.run([str(SCRIPT), "segments", "ftp://h/x.mp4"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "unsupported URL scheme" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", [[], ["synth"], ["segments"], ["sync"], ["rvq"], ["rvq", "fit"], ["rvq", "encode"], ["ingest"], ["search"], ["demo"]])
def test_help_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: omnialign" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_runs_the_pipeline_end_to_end(ray_local, tmp_path, capsys):
    from benchmarks.data.anchor_demo import export

    export(tmp_path / "media", log=lambda *_: None)
    assert main(["demo", "--out", str(tmp_path), "--media", str(tmp_path / "media")]) == 0
    out = capsys.readouterr().out
    assert "18 rows" in out and "a red kite circles above the harbour" in out.split("4. search")[1]
    for line in out.splitlines():
        if line.strip().startswith("clip") and "-" in line.split()[0]:
            error_ms = float(line.split()[4])
            assert abs(error_ms) <= 10.0  # estimated vs true offset, per stream
    assert (tmp_path / "sync_warps.png").stat().st_size > 10_000
    # Step 7: real photographs and sounds the shipped adapters never saw, found from text.
    rows = [line.split() for line in out.split("7. ingesting")[1].splitlines() if line.strip().startswith("a ")]
    found = {" ".join(r[:-4]): (r[-4], r[-2]) for r in rows}  # query -> (top picture, top sound)
    assert found["a cat"][0] == "chelsea.png" and found["a trumpet"][1] == "Trumpet2.wav"
