"""``POST /v1/ingest`` drives the Ray Data pipeline (the one ``omnialign ingest`` runs), over real HTTP.

Real Ray, real Serve on 127.0.0.1, real LanceDB in a tmp folder, real PyAV clips. The app is the
real ``OmniIngress`` and ``IngestManager`` (bound exactly as :func:`serve_apps.app.build_app`
binds it); only the vLLM engine and the adapter router are stand-ins, as ingest never calls them
(starting vLLM costs a minute and 3 GB here; ``test_serve.py`` covers it).
"""

from __future__ import annotations

import collections
import socket
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from engine.media.decode import MediaConfig, iter_segments
from engine.media.synth import SynthSpec, synthesize
from engine.store.table import SegmentStore
from engine.tokenize.tokenizer import RegionConfig, Tokenizer, TokenizerConfig

pytestmark = pytest.mark.slow

SEGMENTS = 3  # a 6 s clip in 2 s segments
LONG_SEGMENTS = 8  # the 16 s live clip: long enough to outlast the pipeline's start-up


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("http_ingest")
    clip = root / "media" / "clip.mp4"
    clip.parent.mkdir()
    synthesize(SynthSpec(duration_s=6.0, offset_ms=0.0, speech=True, seed=11), clip)
    synthesize(SynthSpec(duration_s=16.0, offset_ms=0.0, seed=12), root / "media" / "long_clip.mp4")
    cfg = TokenizerConfig(audio_quantizers=2, audio_codebook_size=16, video_quantizers=2, video_codebook_size=16,
                          region=RegionConfig(resize_height_px=48, resize_width_px=64, patch_px=16, dim=16))
    Tokenizer.fit(list(iter_segments(str(clip), MediaConfig(video_width=160, video_height=120))), cfg).save(root / "codebooks")
    return {"root": root, "clip": clip, "long_clip": root / "media" / "long_clip.mp4", "codebooks": str(root / "codebooks")}


@pytest.fixture(scope="module")
def serve_port(ray_local):
    from ray import serve

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port
    serve.shutdown()


def _deploy(port: int, name: str, prefix: str, model_dir, media, db, pipeline: dict | None = None) -> str:
    """The ingest side of the real app (ingress + IngestManager), stand-ins for engine and router."""
    from ray import cloudpickle, serve

    from serve_apps.app import default_options, ingest_manager
    from serve_apps.config import AppConfig
    from serve_apps.ingress import OmniIngress

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the stand-ins below live in this test module

    @serve.deployment(name="LLMEngine", ray_actor_options={"num_cpus": 0})
    class NoEngine:
        async def check_health(self) -> None:
            return None

    @serve.deployment(name="AdapterRouter", ray_actor_options={"num_cpus": 0})
    class NoRouter:
        async def adapters(self) -> list:
            return []

    cfg = AppConfig.from_args({
        "engine": {"model_dir": str(model_dir)},
        "store": {"db_dir": str(db), "codebooks_dir": media["codebooks"], "pipeline": pipeline or {}},
        "ingest_policy": {"allowed_roots": [str(media["clip"].parent)]},
    })
    opts = default_options(cfg)
    ingress_opts = {**opts["OmniIngress"], "autoscaling_config": {"min_replicas": 1, "max_replicas": 1}}
    app = OmniIngress.options(**ingress_opts).bind(NoEngine.bind(), NoRouter.bind(),
                                                   ingest_manager(cfg, opts["IngestManager"]), cfg.to_args())
    serve.run(app, name=name, route_prefix=prefix)
    return f"http://127.0.0.1:{port}{prefix.rstrip('/')}"


@pytest.fixture(scope="module")
def app(serve_port, tiny_model_dir, media):
    db = media["root"] / "db"
    # One row per commit (as the CLI's live test): a live stream's rows show up as it plays.
    url = _deploy(serve_port, "ingest-http", "/", tiny_model_dir, media, db, pipeline={"writer_batch_rows": 1})
    return {"url": url, "db": db}


def _ingest(url: str, body: dict) -> requests.Response:
    return requests.post(url + "/v1/ingest", json=body, timeout=60)


def _wait_done(url: str, stream_id: str, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    st = None
    while time.monotonic() < deadline:
        st = requests.get(f"{url}/v1/streams/{stream_id}", timeout=30).json()
        if st["state"] in ("done", "failed"):
            return st
        time.sleep(0.5)
    raise AssertionError(f"stream {stream_id} still running: {st}")


def _metrics(url: str) -> dict:
    """``{(name, labels as a sorted tuple): value}`` of every sample ``GET /metrics`` shows."""
    r = requests.get(url + "/metrics", timeout=30)
    assert r.status_code == 200, r.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def _keys(db, stream_id: str) -> collections.Counter:
    """How often each segment index of ``stream_id`` is stored (duplicates would show as > 1)."""
    tbl = SegmentStore.open(db).table.to_arrow().select(["stream_id", "segment_index"]).to_pylist()
    return collections.Counter(r["segment_index"] for r in tbl if r["stream_id"] == stream_id)


def _exactly_once(db, stream_id: str, segments: int = SEGMENTS) -> None:
    assert _keys(db, stream_id) == collections.Counter(range(segments))


def test_http_ingest_runs_the_pipeline_and_its_metrics_show_on_the_ingress(app, media):
    url = app["url"]
    before = _metrics(url)
    r = _ingest(url, {"url": str(media["clip"]), "stream_id": "http-cam"})
    assert r.status_code == 202, r.text
    assert r.json()["stream_id"] == "http-cam" and r.json()["status_url"] == "/v1/streams/http-cam"
    # The same stream id again while it runs: the client's mistake, a 409 in the error shape.
    again = _ingest(url, {"url": str(media["clip"]), "stream_id": "http-cam"})
    assert again.status_code == 409 and "already being ingested" in again.json()["error"]["message"], again.text

    st = _wait_done(url, "http-cam")
    assert st["state"] == "done" and st["error"] is None, repr(st)
    assert st["rows"] == st["segments_written"] == SEGMENTS and st["restarts"] == 0
    assert st["offset_ms"] is not None  # the pipeline's aligner ran
    _exactly_once(app["db"], "http-cam")

    after = _metrics(url)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    # Counted by the pipeline's stages: committed segments of this stream, tokenizer tokens, latencies.
    assert delta("omnialign_segments_committed_total", stream="http-cam") == SEGMENTS
    assert delta("omnialign_tokens_in_total") > 0 and delta("omnialign_tokens_out_total") > 0
    assert delta("omnialign_stage_latency_seconds_count", stage="queue_and_tokenize") == SEGMENTS
    assert delta("omnialign_end_to_end_lag_seconds_count") == SEGMENTS
    assert ("omnialign_sync_offset_ms", (("stream", "http-cam"),)) in after

    # Re-ingesting the stream adds nothing (the pipeline skips committed segments).
    assert _ingest(url, {"url": str(media["clip"]), "stream_id": "http-cam"}).status_code == 202
    st = _wait_done(url, "http-cam")
    assert st["state"] == "done" and st["segments_written"] == 0 and st["segments_skipped"] == SEGMENTS, st
    _exactly_once(app["db"], "http-cam")


def test_http_ingest_client_mistakes_are_4xx_json(app, media):
    url = app["url"]
    r = _ingest(url, {"url": str(media["clip"].parent)})
    assert r.status_code == 400 and "folder" in r.json()["error"]["message"], r.text
    r = _ingest(url, {"url": str(media["clip"]), "stream_id": "bad id!"})
    assert r.status_code == 400 and "error" in r.json(), r.text
    r = requests.get(url + "/v1/streams/never-ingested", timeout=30)
    assert r.status_code == 404 and "never-ingested" in r.json()["error"]["message"]
    # A source that is no media fails its stream alone, reported in the status (not a 5xx).
    bad = media["clip"].parent / "broken.mp4"
    bad.write_text("not a video")
    assert _ingest(url, {"url": str(bad), "stream_id": "broken"}).status_code == 202
    st = _wait_done(url, "broken")
    assert st["state"] == "failed" and "broken.mp4" in st["error"] and st["rows"] == 0, st


def test_killing_the_tokenizer_actor_during_an_http_ingest_keeps_every_segment_exactly_once(serve_port, tiny_model_dir,
                                                                                            media, tmp_path):
    from ray import serve

    marker = tmp_path / "tokenizer.fired"
    db = tmp_path / "db"
    url = _deploy(serve_port, "ingest-http-faulty", "/faulty", tiny_model_dir, media, db,
                  pipeline={"writer_batch_rows": 1, "fault_injection": [["tokenizer", 1, str(marker)]]})
    try:
        r = _ingest(url, {"url": str(media["clip"]), "stream_id": "http-fault"})
        assert r.status_code == 202, r.text
        st = _wait_done(url, "http-fault")
        assert marker.exists()  # the tokenizer actor really died at the middle segment
        assert st["state"] == "done" and st["error"] is None and st["rows"] == SEGMENTS, st
        _exactly_once(db, "http-fault")
        m = _metrics(url)
        assert m[("omnialign_segments_committed_total", (("stream", "http-fault"),))] == SEGMENTS
    finally:
        serve.delete("ingest-http-faulty")


def test_a_killed_ingest_driver_is_relaunched_and_resumes_exactly_once(app, media):
    import ray

    url = app["url"]
    r = _ingest(url, {"url": str(media["long_clip"]), "stream_id": "http-relaunch", "live": True})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while (st := requests.get(f"{url}/v1/streams/http-relaunch", timeout=30).json())["state"] == "running":
        if st["segments_written"] >= 1:
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.2)
    assert st["state"] == "running", st  # live: the clip plays for 16 s, the first segment is in after ~2 s plus start-up
    # The stream's pipeline runs inside its placement group: the driver (0.1 CPU), the writer (0.1)
    # and at least one tokenizer (0.5) use the group's CPUs (outside it, at most 0.25 would).
    (pg_id,) = [pid for pid, info in ray.util.placement_group_table().items()
                if info["name"].startswith("omnialign-ingest:http-relaunch:") and info["state"] == "CREATED"]
    group_cpu = f"CPU_group_{pg_id}"
    assert ray.cluster_resources()[group_cpu] - ray.available_resources().get(group_cpu, 0.0) >= 0.7 - 1e-6
    (name, ns), = [(a["name"], a["namespace"]) for a in ray.util.list_named_actors(all_namespaces=True)
                   if a["name"].startswith("omnialign-ingest:http-relaunch:")]
    ray.kill(ray.get_actor(name, namespace=ns))
    st = _wait_done(url, "http-relaunch")
    assert st["state"] == "done" and st["restarts"] == 1 and st["error"] is None, st
    assert st["rows"] == LONG_SEGMENTS
    _exactly_once(app["db"], "http-relaunch", LONG_SEGMENTS)


def test_streams_the_cluster_has_no_room_for_queue_instead_of_deadlocking(serve_port, tiny_model_dir, media, tmp_path):
    from ray import serve

    db = tmp_path / "db"
    # One stream's pipeline (driver + read + writer 0.25 CPU, one tokenizer of 1 CPU) fits in
    # the 2 CPUs, two do not: started together, two half-placed pipelines could wait for each
    # other forever; as placement groups, the second waits whole.
    url = _deploy(serve_port, "ingest-http-tight", "/tight", tiny_model_dir, media, db,
                  pipeline={"tokenizer_max_actors": 1, "tokenizer_num_cpus": 1.0})
    try:
        for sid in ("tight-a", "tight-b"):
            assert _ingest(url, {"url": str(media["clip"]), "stream_id": sid}).status_code == 202
        seen = set()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            states = {sid: requests.get(f"{url}/v1/streams/{sid}", timeout=30).json()["state"]
                      for sid in ("tight-a", "tight-b")}
            seen.add(tuple(sorted(states.values())))
            if set(states.values()) <= {"done", "failed"}:
                break
            time.sleep(0.3)
        assert ("queued", "running") in seen, seen  # never both running, one waited
        for sid in ("tight-a", "tight-b"):
            st = _wait_done(url, sid, timeout_s=5)
            assert st["state"] == "done" and st["rows"] == SEGMENTS, st
            _exactly_once(db, sid)
    finally:
        serve.delete("ingest-http-tight")
