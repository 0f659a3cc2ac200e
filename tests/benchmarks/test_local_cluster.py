"""The local autoscaling cluster (Ray's v1 autoscaler over fake nodes) and the load it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.local_cluster import LOCAL_CONFIG, LocalAutoscalingCluster, LocalClusterConfig
from engine.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]


def test_both_cluster_configs_pass_rays_own_validation():
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    for path in (ROOT / "cluster.yaml", LOCAL_CONFIG):
        cfg = yaml.safe_load(path.read_text())
        validate_config(fillout_defaults(cfg))  # what `ray up` and the monitor do
        assert cfg["available_node_types"][cfg["head_node_type"]] is not None


def test_the_benchmark_cluster_is_cluster_local_yaml_with_its_own_address_and_shape():
    cluster = LocalAutoscalingCluster(LocalClusterConfig(worker_cpus=3, max_workers=5, idle_timeout_s=30))
    cfg = cluster.autoscaling_config()
    assert cfg["provider"]["gcs_address"] == cluster.address and cfg["idle_timeout_minutes"] == 0.5
    worker = cfg["available_node_types"]["cpu_worker"]
    assert worker["resources"]["CPU"] == 3 and worker["max_workers"] == 5 and "memory" in worker["resources"]
    assert cluster.processes() == []  # nothing started, nothing of anyone else's claimed


@pytest.mark.parametrize("kw", [{"head_cpus": -1}, {"min_workers": 3, "max_workers": 2}, {"idle_timeout_s": 0}])
def test_bad_cluster_shapes_are_refused(kw):
    with pytest.raises(InvalidInputError):
        LocalClusterConfig(**kw)


@pytest.mark.slow
def test_live_streams_while_nodes_come_and_go_store_every_segment_once(ray_local, tmp_path):
    """The quick autoscale benchmark in its own process: (1) a baseline job of 2 live streams and
    a burst job, the autoscaler adding nodes and removing them when idle; (2) 2 live streams
    whose tokenizers' node is killed mid-stream and replaced. Every segment is stored exactly
    once, a real Prometheus scraping the run answers every ingest, sync and autoscaler query
    of the dashboard, and the Ray of this test session (another cluster) is left running."""
    import ray

    out = tmp_path / "autoscale.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "autoscale.py"), "--quick", "--prometheus",
                           "--only", "autoscaling", "--only", "node_loss", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    auto, loss = res["summary"]["autoscaling"], res["summary"]["node_loss"]
    for s in (auto, loss):
        assert s["rows_stored"] == s["rows_expected"] > 0 and s["rows_missing"] == 0 and s["rows_duplicated"] == 0, s
        assert s["jobs_failed"] == 0
    assert auto["peak_nodes"] >= 2 and auto["idle_to_min_s"] is not None  # nodes added, then all removed
    assert res["runs"]["node_loss"]["killed"] is not None and loss["idle_to_min_s"] is not None
    assert all(r["leftover_processes_after_stop"] == 0 for r in res["runs"].values())
    assert res["dashboard"] and all(q["series"] > 0 for q in res["dashboard"]), res["dashboard"]
    assert {q["row"] for q in res["dashboard"]} == {"Ingest", "Sync", "Autoscaler"}
    assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
