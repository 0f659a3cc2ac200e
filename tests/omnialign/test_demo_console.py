"""A quiet console: ``omnialign demo`` and ``omnialign ingest`` print only omnialign's own lines.

The real console script runs as a subprocess (its own Ray, as a user's would); every line of
stdout and stderr is checked against what third-party noise looks like: Python warnings,
tracebacks, Ray's Python and C++ log lines, vLLM's log lines and tqdm-like progress bars.
Those go to the log file whose path the command prints, which must exist and hold them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "omnialign"

#: What a line of third-party noise looks like, by kind.
NOISE = {
    "python warning": re.compile(r"\b\w*Warning: |warnings\.warn\("),
    "traceback": re.compile(r"Traceback \(most recent call last\)"),
    "ray worker/raylet prefix": re.compile(r"\((raylet|pid=\d+|autoscaler|gcs_server)[^)]*\)"),
    "ray C++ log": re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\]|\b\w+\.(cc|h):\d+:"),
    "ray python log": re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+\.py:\d+ -- "),
    "ray data": re.compile(r"Progress bars disabled|Running Dataset|Starting execution of Dataset|ray\.data"),
    "vllm log": re.compile(r"^(DEBUG|INFO|WARNING|ERROR)\s.*\[\S+\.py:\d+\]|\bvllm\b.*\b(INFO|WARNING|ERROR)\b|"
                           r"\b(INFO|WARNING|ERROR)\b.*\bvllm\b"),
    "progress bar": re.compile(r"it/s\]|s/it\]|\d+%\|"),
}
#: The line naming the log file (printed once, on stderr).
LOG_LINE = re.compile(r"^omnialign: Ray and library logs -> (\S+)$")


def _env() -> dict:
    env = dict(os.environ)
    env.update(VLLM_CPU_KVCACHE_SPACE="1", RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    env.pop("RAY_ADDRESS", None)  # a local Ray of its own, as for a user
    return env


def _run(args: list[str], timeout: float) -> tuple[int, list[str]]:
    proc = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=_env())
    # "\r" rewrites a terminal line (progress); each rewrite counts as a line of its own.
    lines = [part for line in (proc.stdout + "\n" + proc.stderr).splitlines() for part in line.split("\r")]
    return proc.returncode, lines


def _noise(lines: list[str]) -> list[str]:
    return [f"{kind}: {line}" for line in lines for kind, pattern in NOISE.items() if pattern.search(line)]


def _log_file(lines: list[str]) -> Path:
    found = [m.group(1) for line in lines if (m := LOG_LINE.match(line))]
    assert len(found) == 1, f"expected one log-file line, got {found}"
    path = Path(found[0])
    assert path.is_file() and path.stat().st_size > 0, f"{path} missing or empty: the logs went nowhere"
    return path


def test_noise_patterns_spare_our_output_and_catch_the_known_noise():
    ours = ["1. synthesized 3 clips of 12 s (H.264 + AAC, transcripts) in /tmp/x",
            "     stream_id  rows  true_offset_ms  est_offset_ms  error_ms  true_drift_ppm  est_drift_ppm  confidence",
            "clip0-5d2875ce     6          +120.0         +119.7     -0.31            +200           +201        1.00",
            "   18 rows in 32.2 s wall for 36 s of media", "4. search 'a bird flying over the port':",
            "   1  clip2-bb234f81        1     2.0  text_emb  a red kite circles above the harbour",
            "omnialign: Ray and library logs -> /tmp/ray/session_1/logs/omnialign-driver.log",
            "   ingest: 18 segments, 36.0 s media, 1.1x real time ",
            "no codebooks at /tmp/db/codebooks: fitting them on the given files",
            "18 rows in 20.1 s (1.8x real time) -> /tmp/db"]
    assert _noise(ours) == []
    seen = [
        "2026-12-01 18:59:40,869\tWARNING authentication_token_setup.py:85 -- Token authentication is enabled",
        "/work/main/actors/pipeline.py:177: RayDeprecationWarning: `ray_remote_args` is deprecated",
        "[2026-12-01 19:00:03,715 E 7075 7075] core_worker.cc:2465: Actor with class name: 'MapWorker'",
        "2026-12-01 19:00:03,848\tWARNING __init__.py:28 -- Progress bars disabled. To enable, set ...",
        "Loading weights: 100%|██████████| 103/103 [00:00<00:00, 22399.20it/s]",
        "(raylet) A worker died or was killed while executing a task",
        "(pid=1234) hello from a worker",
        "INFO 12-01 19:00:00 [loader.py:12] vllm loading model",
        "Traceback (most recent call last):",
    ]
    assert [line for line in seen if not _noise([line])] == []


@pytest.mark.slow
def test_demo_console_is_ours_alone(tmp_path):
    code, lines = _run(["demo", "--out", str(tmp_path)], timeout=900)
    assert code == 0, "\n".join(lines[-40:])
    assert _noise(lines) == [], "\n".join(_noise(lines))
    text = "\n".join(lines)
    for expected in ("1. synthesized 3 clips", "2. fitted RVQ codebooks", "3. ingesting the 3 clips",
                     "true_offset_ms", "18 rows in", "4. search", "5. wrote"):
        assert expected in text
    streams = [line for line in lines if re.match(r"^\s*clip\d-[0-9a-f]{8}\s+6\s", line)]
    assert len(streams) == 3, text  # rows per stream, one line each
    log = _log_file(lines).read_text(errors="replace")
    # What used to reach the console is fixed at its source, not only moved to the log file.
    assert "RayDeprecationWarning" not in log and "Loading weights" not in log


@pytest.mark.slow
def test_ingest_console_is_ours_alone(tmp_path):
    clip, db = tmp_path / "c.mp4", tmp_path / "db"
    assert subprocess.run([str(SCRIPT), "synth", str(clip), "--duration-s", "6"], capture_output=True,
                          timeout=120, env=_env()).returncode == 0
    code, lines = _run(["ingest", str(clip), "--db", str(db), "--tokenizer-actors", "1:1"], timeout=600)
    assert code == 0, "\n".join(lines[-40:])
    assert _noise(lines) == [], "\n".join(_noise(lines))
    assert any(re.match(r"^\s*c-[0-9a-f]{8}\s+3\s+0\s.*\bok$", line) for line in lines), "\n".join(lines)
    assert any(re.match(r"^3 rows in .* -> ", line) for line in lines)
    _log_file(lines)
    # --json: stdout is one JSON document and nothing else (Ray's driver prints cluster events,
    # "(raylet) A worker died ...", to stdout; they go to the log file).
    proc = subprocess.run([str(SCRIPT), "ingest", str(clip), "--db", str(tmp_path / "db2"), "--tokenizer-actors", "1:1",
                           "--json"], capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    assert json.loads(proc.stdout)["rows_total"] == 3, proc.stdout
