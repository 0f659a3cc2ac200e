"""The streaming ingest pipeline on a real local Ray with a real LanceDB folder."""

from __future__ import annotations

import time

import numpy as np
import pytest

from actors.pipeline import run_ingest
from engine.tokenize.features import RegionConfig
from engine.media.decode import MediaConfig, iter_segments
from engine.ingest.pipeline import PipelineConfig
from engine.store.search import SearchQuery, search
from engine.media.sources import default_stream_id
from engine.store.table import SegmentStore
from engine.media.synth import SynthSpec, synthesize
from engine.tokenize.tokenizer import Tokenizer, TokenizerConfig

pytestmark = pytest.mark.slow

SENTENCES = ("an orchestra tunes before the concert", "heavy rain floods the city streets",
             "a red kite circles above the harbour")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Three 6 s clips (offsets -200/0/+250 ms), each with a one-cue transcript, and codebooks."""
    root = tmp_path_factory.mktemp("pipeline")
    clips = []
    for i, off in enumerate((-200.0, 0.0, 250.0)):
        path = root / f"clip{i}.mp4"
        synthesize(SynthSpec(duration_s=6.0, offset_ms=off, speech=True, seed=50 + i), path)
        path.with_suffix(".srt").write_text(f"1\n00:00:02,000 --> 00:00:04,000\n{SENTENCES[i]}\n")
        clips.append(str(path))
    cfg = TokenizerConfig(audio_quantizers=2, audio_codebook_size=32, video_quantizers=2, video_codebook_size=32,
                          region=RegionConfig(resize_height_px=48, resize_width_px=64, patch_px=16, dim=16))
    segs = [s for c in clips for s in iter_segments(c, MediaConfig(video_width=160, video_height=120))]
    Tokenizer.fit(segs, cfg).save(root / "codebooks")
    bad = root / "broken.mp4"
    bad.write_text("not a video")
    return {"root": root, "clips": clips, "codebooks": str(root / "codebooks"), "bad": str(bad)}


def _config(media, db, **kw) -> PipelineConfig:
    return PipelineConfig(db_dir=str(db), codebooks_dir=media["codebooks"], writer_batch_rows=2, **kw)


def test_every_segment_once_bad_source_fails_alone_and_reingest_adds_nothing(ray_local, media, tmp_path):
    # Two streams per source actor: the bad source shares its process with a good one.
    import ray

    config = _config(media, tmp_path / "db", streams_per_source_actor=2)
    block_bytes = ray.data.DataContext.get_current().target_max_block_size
    summary = run_ingest([*media["clips"][:2], media["bad"], media["clips"][2]], config)
    assert ray.data.DataContext.get_current().target_max_block_size == block_bytes  # the caller's context, untouched
    store = SegmentStore.open(tmp_path / "db")
    by_id = {s.stream_id: s for s in summary.streams}
    for clip in media["clips"]:
        sid = default_stream_id(clip)
        assert by_id[sid].error is None and by_id[sid].segments_written == 3
        assert store.count(sid) == 3 and store.committed_indexes(sid) == {0, 1, 2}
    bad = by_id[default_stream_id(media["bad"])]
    assert bad.error.startswith("NotMediaError") and media["bad"] in bad.error and bad.segments_written == 0
    assert summary.rows_total == 9 and store.count() == 9
    out = summary.to_json()
    assert set(out) == {"streams", "rows_total", "wall_s", "realtime_factor"}
    assert set(out["streams"][0]) >= {"stream_id", "source_uri", "segments_written", "offset_ms", "drift_ppm", "confidence"}
    # every row carries the warp in force for it, and the final offsets are right
    row = store.get(default_stream_id(media["clips"][2]), 2)
    assert row.warp.shape[1] == 2 and row.codebook_version and row.keyframe_jpeg
    # no aligner died: every row carries its own segment's estimate
    assert {store.get(default_stream_id(c), i).sync_status for c in media["clips"] for i in range(3)} == {"measured"}
    assert abs(by_id[default_stream_id(media["clips"][2])].offset_ms - 250.0) <= 10.0

    again = run_ingest(media["clips"], config)
    assert again.rows_total == 0 and store.count() == 9
    assert all(s.segments_skipped == 3 for s in again.streams)


def test_actor_deaths_mid_stream_lose_and_duplicate_nothing(ray_local, media, tmp_path):
    markers = {stage: tmp_path / f"{stage}.fired" for stage in ("tokenizer", "aligner", "writer")}
    faults = (("tokenizer", 1, str(markers["tokenizer"])), ("aligner", 2, str(markers["aligner"])),
              ("writer", 1, str(markers["writer"])))
    config = _config(media, tmp_path / "db", fault_injection=faults)
    summary = run_ingest(media["clips"], config)
    assert all(m.exists() for m in markers.values())  # each actor really died once
    store = SegmentStore.open(tmp_path / "db")
    assert store.count() == 9 and summary.rows_total == 9
    for clip in media["clips"]:
        assert store.committed_indexes(default_stream_id(clip)) == {0, 1, 2}
    # The aligner restarted empty: a row whose own estimate was lost says so, none silently.
    statuses = [store.get(default_stream_id(c), i) for c in media["clips"] for i in range(3)]
    for row in statuses:
        assert row.sync_status in {"measured", "fallback", "none"}
        assert (row.av_offset_ms is None) == (row.sync_status == "none")


def test_a_source_process_killed_mid_stream_loses_only_its_own_stream(ray_local, media, tmp_path):
    """One process per source (``streams_per_source_actor=1``): ``kill -9`` of the one decoding
    a stream, while three others stream at real-time pace, ends that stream alone; the others
    complete with every segment exactly once."""
    import os
    import signal

    import ray

    # 16 s at real-time pace: every stream is still playing when the victim's first row lands.
    clips = []
    for i, name in enumerate(("a", "b", "c", "victim")):
        clips.append(str(tmp_path / f"{name}.mp4"))
        synthesize(SynthSpec(duration_s=16.0, offset_ms=0.0, speech=True, seed=61 + i), clips[-1])
    victim_id = default_stream_id(clips[-1])
    killed: list[int] = []

    def kill_victim(row, _summary) -> None:
        if killed or row.stream_id != victim_id:
            return
        (name,) = [n for n in ray.util.list_named_actors() if n.startswith("omnialign-source:")
                   and n.endswith(":" + victim_id)]
        pid = ray.get(ray.get_actor(name).__ray_call__.remote(lambda self: os.getpid()))
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    config = _config(media, tmp_path / "db", streams_per_source_actor=1, live=True)
    summary = run_ingest(clips, config, on_row=kill_victim)
    assert killed
    store = SegmentStore.open(tmp_path / "db")
    by_id = {s.stream_id: s for s in summary.streams}
    for clip in clips[:3]:
        sid = default_stream_id(clip)
        assert by_id[sid].error is None and by_id[sid].segments_written == 8, by_id[sid]
        assert store.count(sid) == 8 and store.committed_indexes(sid) == set(range(8))
    lost = by_id[victim_id]
    assert lost.error is not None and "source actor failed" in lost.error
    # What it committed before the kill is stored once, and it is resumable from there.
    assert 1 <= store.count(victim_id) == len(store.committed_indexes(victim_id)) < 8


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_rows_arrive_while_a_live_source_is_still_playing_and_metrics_are_served(ray_local, media, tmp_path):
    import urllib.request

    clip = str(media["root"] / "long_live.mp4")
    # 16 s: the actors' start-up (codebooks, the image encoder, the speech model) takes a few
    # seconds of the clip's playing time before the first row can be committed.
    synthesize(SynthSpec(duration_s=16.0, seed=60), clip)
    port = _free_port()
    config = PipelineConfig(db_dir=str(tmp_path / "db"), codebooks_dir=media["codebooks"], live=True,
                            writer_batch_rows=1, metrics_port=port)
    seen, scraped = [], []
    t0 = time.monotonic()

    def on_row(row, summary):
        seen.append(time.monotonic() - t0)
        if len(seen) == 2:  # scrape Prometheus while the ingest is running
            scraped.append(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())

    summary = run_ingest([clip], config, on_row=on_row)
    assert summary.rows_total == 8 and len(seen) == 8
    # The source plays for 16 s; the first row is committed long before it ends, and rows keep
    # arriving as the source plays rather than all at the end.
    assert seen[0] < seen[-1] - 4.0
    sid = default_stream_id(clip)
    assert f'omnialign_segments_committed_total{{stream="{sid}"}} 2.0' in scraped[0]
    assert "omnialign_end_to_end_lag_seconds_bucket" in scraped[0]


def test_search_by_text_audio_image_with_filters(ray_local, media, tmp_path):
    config = _config(media, tmp_path / "db")
    run_ingest(media["clips"], config)
    store = SegmentStore.open(tmp_path / "db")
    kite = default_stream_id(media["clips"][2])

    hits = search(store, SearchQuery(text="a bird of prey flying over a port", k=3))
    assert (hits[0].stream_id, hits[0].segment_index) == (kite, 1)

    tok = Tokenizer.load(media["codebooks"])
    segs = {(s.stream_id, s.index): s for c in media["clips"]
            for s in iter_segments(c, MediaConfig(video_width=160, video_height=120), default_stream_id(c))}
    target = segs[(default_stream_id(media["clips"][1]), 2)]
    hits = search(store, SearchQuery(vector=tok.embed_audio(target.audio), vector_column="audio_emb", k=1))
    assert (hits[0].stream_id, hits[0].segment_index) == (target.stream_id, 2)

    target = segs[(default_stream_id(media["clips"][0]), 1)]
    frame = target.video[len(target.video) // 2]
    hits = search(store, SearchQuery(vector=tok.embed_frames(frame[None], np.zeros(1, np.int64)), vector_column="video_emb", k=3))
    assert hits[0].stream_id == target.stream_id

    hits = search(store, SearchQuery(stream_id=kite, from_us=2_500_000, to_us=4_500_000, k=10))
    assert [(h.stream_id, h.segment_index) for h in hits] == [(kite, 1), (kite, 2)]
    hits = search(store, SearchQuery(text="weather", stream_id=kite, k=10))
    assert {h.stream_id for h in hits} == {kite}


def test_segments_that_fail_tokenization_fail_alone(ray_local, media, tmp_path):
    # Codebooks without video: every segment of a video clip fails to tokenize, while an
    # audio-only stream in the same run (and the same writer batches) is written normally.
    wav = tmp_path / "voice.wav"
    synthesize(SynthSpec(duration_s=6.0, with_video=False, speech=True, seed=70), wav)
    audio_only = Tokenizer.fit(list(iter_segments(str(wav))), TokenizerConfig(audio_quantizers=2, audio_codebook_size=16))
    audio_only.save(tmp_path / "cb_audio")
    config = PipelineConfig(db_dir=str(tmp_path / "db"), codebooks_dir=str(tmp_path / "cb_audio"), writer_batch_rows=4)
    summary = run_ingest([str(wav), media["clips"][0]], config)
    by_id = {s.stream_id: s for s in summary.streams}
    good, bad = by_id[default_stream_id(str(wav))], by_id[default_stream_id(media["clips"][0])]
    assert good.segments_written == 3 and good.error is None
    assert bad.segments_written == 0 and bad.segments_failed == 3 and "video" in bad.error
    assert SegmentStore.open(tmp_path / "db").count() == 3


def test_pipeline_bundles_reserve_what_the_pipeline_requests():
    from actors.pipeline import pipeline_bundles

    cfg = PipelineConfig(db_dir="/unused", codebooks_dir="/unused", tokenizer_max_actors=2, tokenizer_num_cpus=0.5,
                         tokenizer_num_gpus=0.25)
    head, toks = pipeline_bundles(cfg, driver_num_cpus=0.1)
    # driver, read task, writer, the ASR actor (sources take 0)
    assert head == {"CPU": pytest.approx(0.1 + 0.05 + 0.1 + 0.1)}
    assert toks == {"CPU": 1.0, "GPU": 0.5}  # the pool at its maximum, in one bundle
    from dataclasses import replace

    head, _ = pipeline_bundles(replace(cfg, asr=None), driver_num_cpus=0.1)
    assert head == {"CPU": pytest.approx(0.1 + 0.05 + 0.1)}  # ASR off: no ASR actor
    head, _ = pipeline_bundles(replace(cfg, asr_actors=2, asr_num_gpus=0.5), driver_num_cpus=0.1)
    assert head == {"CPU": pytest.approx(0.1 + 0.05 + 0.1 + 0.2), "GPU": 1.0}
    # Pinned to stable nodes: the stateful stages ask for the resource instead of CPUs (read task,
    # writer, source, aligner and the ASR actor: 5 of them), the tokenizers are unchanged.
    head, toks = pipeline_bundles(replace(cfg, stateful_resources=(("stable", 0.01),)), driver_num_cpus=0.1)
    assert head == {"CPU": pytest.approx(0.1), "stable": pytest.approx(0.05)}
    assert toks == {"CPU": 1.0, "GPU": 0.5}
