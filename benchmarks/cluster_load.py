"""Ingest load on a local autoscaling cluster: live ``omnialign ingest`` jobs on a schedule, and a
sampler that records what the cluster does meanwhile.

Each job is what a Ray user runs against a cluster: ``omnialign ingest ... --ray-address`` in
its own driver process (as ``ray job submit`` would start it), its stateful stages pinned to the
head by the head-only resource, its tokenizer pool free to land on any worker node. The sampler
connects to the cluster as a driver of its own and reads node processes, the autoscaler's
Prometheus endpoint, live actors and the LanceDB table; it never schedules anything.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.local_cluster import STABLE_RESOURCE, LocalAutoscalingCluster
from engine.errors import InvalidInputError

#: Segment length of every job (the CLI default).
SEGMENT_S = 2.0


@dataclass(frozen=True)
class Step:
    """Jobs started together.

    Attributes:
        at_s: Start, seconds after the schedule starts.
        jobs: Ingest jobs started at once.
        streams_per_job: Live streams each job ingests.
        duration_s: Length of each stream (played at real-time pace); a multiple of the segment.
        label: Name in tables and plots.
    """

    at_s: float
    jobs: int
    streams_per_job: int
    duration_s: float
    label: str

    def __post_init__(self) -> None:
        if self.at_s < 0 or self.jobs < 1 or self.streams_per_job < 1:
            raise InvalidInputError("step", f"need at_s >= 0 and at least one job and stream, got {self}")
        if self.duration_s <= 0 or abs(self.duration_s / SEGMENT_S - round(self.duration_s / SEGMENT_S)) > 1e-9:
            raise InvalidInputError("step.duration_s", f"must be a positive multiple of {SEGMENT_S} s, got {self.duration_s}")

    @property
    def segments(self) -> int:
        return round(self.duration_s / SEGMENT_S)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_media(root: Path, steps: list[Step]) -> dict:
    """One clip per stream of the schedule (real PyAV encodes of synthetic A/V, distinct seeds)
    and small codebooks fitted on the first; cached under ``root``."""
    from engine.media.decode import MediaConfig, iter_segments
    from engine.media.synth import SynthSpec, synthesize
    from engine.tokenize.tokenizer import RegionConfig, Tokenizer, TokenizerConfig

    root.mkdir(parents=True, exist_ok=True)
    clips: dict[tuple[int, int, int], str] = {}
    for s, step in enumerate(steps):
        for j in range(step.jobs):
            for k in range(step.streams_per_job):
                path = root / f"step{s}_job{j}_stream{k}_{step.duration_s:g}s.mp4"
                if not path.is_file():
                    synthesize(SynthSpec(duration_s=step.duration_s, width=160, height=120, seed=1000 * s + 10 * j + k), path)
                clips[(s, j, k)] = str(path)
    codebooks = root / "codebooks"
    if not (codebooks / "manifest.json").is_file():
        cfg = TokenizerConfig(audio_quantizers=2, audio_codebook_size=32, video_quantizers=2, video_codebook_size=32,
                              region=RegionConfig(resize_height_px=48, resize_width_px=64, patch_px=16, dim=16))
        first = next(iter(clips.values()))
        Tokenizer.fit(list(iter_segments(first, MediaConfig(video_width=160, video_height=120))), cfg).save(codebooks)
    return {"clips": clips, "codebooks": str(codebooks)}


@dataclass
class Job:
    """One running ``omnialign ingest`` driver."""

    step: int
    index: int
    clips: list[str]
    proc: subprocess.Popen
    metrics_port: int
    t_start_s: float
    t_end_s: float | None = None
    summary: dict | None = None
    stderr_path: str = ""


def start_job(cluster: LocalAutoscalingCluster, media: dict, db_dir: str, step_i: int, job_i: int, step: Step,
              t0: float, log_dir: Path) -> Job:
    """Starts one live ingest job of ``step`` against ``cluster``."""
    clips = [media["clips"][(step_i, job_i, k)] for k in range(step.streams_per_job)]
    port = _free_port()
    stderr_path = log_dir / f"job_{step_i}_{job_i}.err"
    cmd = [str(Path(sys.executable).parent / "omnialign"), "ingest", *clips, "--db", db_dir, "--codebooks", media["codebooks"],
           "--live", "--no-asr", "--ray-address", cluster.address, "--tokenizer-cpus", "1",
           "--tokenizer-actors", f"1:{step.streams_per_job}", "--stateful-resource", STABLE_RESOURCE,
           "--metrics-port", str(port), "--json"]
    env = {**cluster.env(), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=open(stderr_path, "w"), text=True)
    return Job(step_i, job_i, clips, proc, port, time.monotonic() - t0, stderr_path=str(stderr_path))


def _scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples if not s.labels
            or s.name.startswith("omnialign_segments_committed")}


@dataclass
class Sampler:
    """Samples the cluster every ``period_s`` in a thread; :attr:`samples` holds the timeline."""

    cluster: LocalAutoscalingCluster
    db_dir: str
    jobs: list[Job]
    t0: float
    period_s: float = 1.0
    samples: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._lag = {}  # job -> (sum, count) of its end-to-end lag histogram

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> list[dict]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                self.samples.append(self.sample())
            except Exception as exc:  # a sample never stops the run; the gap shows in the timeline
                self.samples.append({"t_s": round(t - self.t0, 2), "error": f"{type(exc).__name__}: {exc}"[:200]})
            self._stop.wait(max(0.0, self.period_s - (time.monotonic() - t)))

    def sample(self) -> dict:
        t = time.monotonic() - self.t0
        metrics = {}
        try:
            metrics = self.cluster.autoscaler_metrics()
        except OSError:
            pass

        def total(prefix: str, label: str = "") -> float:
            return sum(v for k, v in metrics.items() if k.startswith(prefix + "{") and label in k)

        lag_sum = lag_n = 0.0
        for job in self.jobs:
            if job.t_end_s is None:
                try:
                    m = _scrape(job.metrics_port)
                    self._lag[id(job)] = (m.get("omnialign_end_to_end_lag_seconds_sum", 0.0),
                                          m.get("omnialign_end_to_end_lag_seconds_count", 0.0))
                except OSError:
                    pass
            s, n = self._lag.get(id(job), (0.0, 0.0))
            lag_sum, lag_n = lag_sum + s, lag_n + n
        return {"t_s": round(t, 2), "worker_nodes": len(self.cluster.worker_raylets()),
                "autoscaler_active_workers": total("autoscaler_active_nodes", "NodeType=cpu_worker"),
                "pending_nodes": total("autoscaler_pending_nodes"),
                "pending_cpu": total("autoscaler_pending_resources", "resource=CPU"),
                "tokenizer_actors": _tokenizer_actors(self.cluster.dashboard_url), "rows": _rows(self.db_dir),
                "jobs_running": sum(j.t_end_s is None for j in self.jobs), "lag_sum_s": lag_sum, "lag_n": lag_n}


def _tokenizer_actors(dashboard_url: str) -> int | None:
    """Alive actors of the tokenizer pools (Ray's state API)."""
    try:
        from ray.util.state import list_actors

        alive = list_actors(address=dashboard_url, filters=[("state", "=", "ALIVE")], limit=10_000,
                            raise_on_missing_output=False)
    except Exception:
        return None
    return sum("TokenizeSegments" in (a.class_name or "") for a in alive)


def _rows(db_dir: str) -> int:
    import lancedb

    try:
        return lancedb.connect(db_dir).open_table("segments").count_rows()
    except (ValueError, FileNotFoundError, OSError):
        return 0


def run_schedule(cluster: LocalAutoscalingCluster, steps: list[Step], media: dict, work: Path,
                 kill_node_after_rows: int | None = None, settle_to_min_s: float = 90.0,
                 min_workers: int = 0, prometheus=None) -> dict:
    """Runs ``steps`` on ``cluster`` and returns the timeline, the jobs and the stored rows.

    Args:
        cluster: A started cluster.
        steps: The schedule.
        media: :func:`prepare_media`'s output.
        work: Folder for the table and the job logs.
        kill_node_after_rows: Once this many rows are stored, kill the worker node that holds
            the most tokenizer actors (a node lost mid-stream); None: no fault.
        settle_to_min_s: After the last job, keep sampling until the cluster is back at
            ``min_workers`` worker nodes, at most this long.
        min_workers: The cluster's minimum.
        prometheus: A started :class:`benchmarks.prometheus.PrometheusServer`: it scrapes the
            autoscaler and every running job's metrics port.
    """
    import ray

    work.mkdir(parents=True, exist_ok=True)
    db_dir = str(work / "db")
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    jobs: list[Job] = []
    t0, t0_unix = time.monotonic(), time.time()
    sampler = Sampler(cluster, db_dir, jobs, t0).start()
    killed = None
    pending = sorted(((st.at_s, i) for i, st in enumerate(steps)))
    try:
        while pending or any(j.t_end_s is None for j in jobs):
            now = time.monotonic() - t0
            while pending and pending[0][0] <= now:
                _, i = pending.pop(0)
                jobs.extend(start_job(cluster, media, db_dir, i, j, steps[i], t0, work) for j in range(steps[i].jobs))
                if prometheus is not None:
                    prometheus.set_targets([f"127.0.0.1:{cluster.metrics_port}",
                                            *(f"127.0.0.1:{j.metrics_port}" for j in jobs if j.t_end_s is None)])
            for job in jobs:
                if job.t_end_s is None and job.proc.poll() is not None:
                    job.t_end_s = time.monotonic() - t0
                    out = job.proc.stdout.read()
                    job.summary = _last_json(out)
            if kill_node_after_rows is not None and killed is None and _rows(db_dir) >= kill_node_after_rows:
                victim = _node_with_most_tokenizers(cluster)
                if victim is not None:
                    killed = {"t_s": round(time.monotonic() - t0, 2), "node": victim, "rows_before": _rows(db_dir)}
                    cluster.kill_worker_node(victim)
            time.sleep(0.25)
        t_last = time.monotonic() - t0
        deadline = time.monotonic() + settle_to_min_s
        while time.monotonic() < deadline and len(cluster.worker_raylets()) > min_workers:
            time.sleep(0.5)
        time.sleep(1.5)  # one more sample at the minimum
    finally:
        samples = sampler.stop()
        for job in jobs:
            if job.proc.poll() is None:
                job.proc.kill()
        ray.shutdown()
    return {"samples": samples, "t0_unix_s": t0_unix, "t_last_job_end_s": round(t_last, 2), "killed": killed,
            "jobs": [{"step": j.step, "job": j.index, "t_start_s": round(j.t_start_s, 2), "t_end_s": j.t_end_s and round(j.t_end_s, 2),
                      "exit_code": j.proc.returncode, "summary": j.summary, "stderr": j.stderr_path} for j in jobs],
            "rows": check_rows(db_dir, steps, media)}


def _last_json(out: str) -> dict | None:
    for line in reversed((out or "").strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def _node_with_most_tokenizers(cluster: LocalAutoscalingCluster) -> str | None:
    from ray.util.state import list_actors

    alive = set(cluster.worker_raylets())
    counts: dict[str, int] = {}
    for a in list_actors(address=cluster.dashboard_url, filters=[("state", "=", "ALIVE")], limit=10_000,
                         raise_on_missing_output=False):
        if "TokenizeSegments" in (a.class_name or "") and a.node_id in alive:
            counts[a.node_id] = counts.get(a.node_id, 0) + 1
    return max(counts, key=counts.get) if counts else None


def check_rows(db_dir: str, steps: list[Step], media: dict) -> dict:
    """Every stream's stored segments against its expected ones: missing and duplicated rows."""
    from engine.media.sources import default_stream_id
    from engine.store.table import SegmentStore

    try:
        store = SegmentStore.open(db_dir)
    except Exception:  # no table: nothing was stored
        store = None
    expected = missing = duplicated = 0
    per_stream = {}
    for (s, _j, _k), clip in media["clips"].items():
        if s >= len(steps):
            continue
        sid = default_stream_id(clip)
        n = steps[s].segments
        rows = store.count(sid) if store else 0
        idx = store.committed_indexes(sid) if store else set()
        miss = len(set(range(n)) - idx)
        dup = rows - len(idx)
        expected, missing, duplicated = expected + n, missing + miss, duplicated + dup
        per_stream[sid] = {"expected": n, "rows": rows, "missing": miss, "duplicated": dup}
    return {"expected": expected, "stored": sum(v["rows"] for v in per_stream.values()), "missing": missing,
            "duplicated": duplicated, "per_stream": per_stream}
