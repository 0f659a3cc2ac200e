"""``make demo`` / ``omnialign demo``: the main job end to end on embedded defaults.

1. Synthesize three clips with different, known A/V offsets (and drift), each with a transcript
   sidecar; 2. fit RVQ codebooks on them; 3. ingest all three *live* (real-time pace) in parallel
   through the Ray pipeline into a local LanceDB folder; 4. print the rows per stream with the
   estimated vs true offsets; 5. run a text search; 6. write a PNG of the sync warps; 7. ingest
   a real recording of speech that has no transcript, print the recognized words with their
   times and find a spoken phrase by text search (skipped with a note without a recording or
   without the speech model); 8. ingest real pictures and sounds, embed them into the text
   anchor space with the adapters the package ships (``omnialign/adapters``) and let text queries
   find a picture and a sound (skipped with a note without the media folder).
"""

from __future__ import annotations

import time
from pathlib import Path

from omnialign.commands.common import print_table
from omnialign.progress import Progress

CLIPS = (
    # offset_ms, drift_ppm, (sentence for the first half, sentence for the second half)
    (120.0, 200.0, ("the orchestra tunes before the concert", "a violin solo opens the second movement")),
    (-250.0, 0.0, ("heavy rain floods the city streets", "firefighters pump water out of a basement")),
    (300.0, -400.0, ("a red kite circles above the harbour", "fishing boats return with the evening catch")),
)
DURATION_S = 12.0


def _srt(first: str, second: str, duration_s: float) -> str:
    half = duration_s / 2

    def ts(t: float) -> str:
        ms = int(round(t * 1000))
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    return f"1\n{ts(0)} --> {ts(half)}\n{first}\n\n2\n{ts(half)} --> {ts(duration_s)}\n{second}\n"


#: Adapters trained by ``omnialign train stage1`` on the alignment dev set (see README, Alignment).
SHIPPED_ADAPTERS = Path(__file__).parent / "adapters"
#: Text queries of the any-to-any step; each should find a picture and a sound of its kind.
ANCHOR_QUERIES = ("a cat", "a motorcycle", "a trumpet")


def run_demo(out_dir: str, speech: str | None = None, media: str | None = None) -> int:
    """Runs the demo in ``out_dir``; returns an exit status."""
    from engine.media.decode import MediaConfig, iter_segments
    from engine.store.search import SearchQuery, search
    from engine.media.sources import default_stream_id
    from engine.media.synth import SynthSpec, synthesize
    from engine.tokenize.tokenizer import Tokenizer

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    db = out / "lancedb"
    if db.exists():
        import shutil

        shutil.rmtree(db)  # the demo starts from an empty table every time
    clips, truths = [], {}
    for i, (offset_ms, drift_ppm, (first, second)) in enumerate(CLIPS):
        path = out / f"clip{i}.mp4"
        spec = SynthSpec(duration_s=DURATION_S, offset_ms=offset_ms, drift_ppm=drift_ppm, speech=True, seed=100 + i)
        synthesize(spec, path).write_json(out / f"clip{i}.truth.json")
        path.with_suffix(".srt").write_text(_srt(first, second, DURATION_S))
        clips.append(str(path))
        truths[default_stream_id(str(path))] = spec
    print(f"1. synthesized {len(clips)} clips of {DURATION_S:.0f} s (H.264 + AAC, transcripts) in {out}")

    t0 = time.perf_counter()
    progress = Progress(label="   reading clips for the codebooks")
    tok = Tokenizer.fit(_counted((s for c in clips for s in iter_segments(c, MediaConfig(video_max_fps=5))), progress))
    progress.done()
    tok.save(db / "codebooks")
    print(f"2. fitted RVQ codebooks {tok.codebook_version} ({tok.config.audio_quantizers}x{tok.config.audio_codebook_size} "
          f"audio, {tok.config.video_quantizers}x{tok.config.video_codebook_size} video) in {time.perf_counter() - t0:.1f} s")

    from actors.pipeline import run_ingest
    from engine.ingest.pipeline import PipelineConfig
    from actors.runtime import init_ray

    init_ray()
    print(f"3. ingesting the {len(clips)} clips live (real-time pace) in parallel on local Ray ...")
    config = PipelineConfig(db_dir=str(db), codebooks_dir=str(db / "codebooks"), live=True)
    progress = Progress(label="   ingest")
    summary = run_ingest(clips, config, on_row=lambda _row, s: progress.update(segments=s.rows_total, media_s=s.media_s))
    progress.done()
    rows = []
    for s in summary.streams:
        spec = truths[s.stream_id]
        rows.append({"stream_id": s.stream_id, "rows": s.segments_written,
                     "true_offset_ms": f"{spec.offset_ms:+.1f}", "est_offset_ms": _f(s.offset_ms, "+.1f"),
                     "error_ms": _f(None if s.offset_ms is None else s.offset_ms - spec.offset_ms, "+.2f"),
                     "true_drift_ppm": f"{spec.drift_ppm:+.0f}", "est_drift_ppm": _f(s.drift_ppm, "+.0f"),
                     "confidence": _f(s.confidence, ".2f")})
    print_table(rows, ("stream_id", "rows", "true_offset_ms", "est_offset_ms", "error_ms", "true_drift_ppm",
                       "est_drift_ppm", "confidence"))
    print(f"   {summary.rows_total} rows in {summary.wall_s:.1f} s wall for {summary.media_s:.0f} s of media")

    from engine.store.table import SegmentStore

    query = "a bird flying over the port"
    hits = search(SegmentStore.open(db), SearchQuery(text=query, k=3))
    print(f"4. search {query!r}:")
    print_table([{"rank": i + 1, "stream_id": h.stream_id, "segment": h.segment_index,
                  "from_s": f"{h.t_start_us / 1e6:.1f}", "via": h.retrieval, "transcript": h.transcript or ""}
                 for i, h in enumerate(hits)], ("rank", "stream_id", "segment", "from_s", "via", "transcript"))

    png = out / "sync_warps.png"
    _plot_warps(db, truths, png)
    print(f"5. wrote {png} (estimated vs true A/V warp per stream)")
    failed = [s for s in summary.streams if s.error]
    if not _speech_step(speech, db, config):
        return 1
    if not _anchor_step(media, out / "media_db", config):
        return 1
    return 1 if failed else 0


def _speech_step(speech: str | None, db: Path, config) -> bool:
    """Step 6: a real recording without a sidecar becomes words and a searchable transcript."""
    from dataclasses import replace

    from actors.pipeline import run_ingest
    from engine.asr.model import check_speech_model
    from engine.errors import ModelNotFoundError
    from engine.store.search import SearchQuery, search
    from engine.store.table import SegmentStore

    if not speech or not Path(speech).is_file():
        print("6. speech: skipped (no recording given; `make demo` fetches one)")
        return True
    try:
        check_speech_model(config.asr)
    except ModelNotFoundError as exc:
        print(f"6. speech: skipped ({exc})")
        return True
    print(f"6. ingesting {Path(speech).name} (real speech, no transcript file) with speech recognition ...")
    summary = run_ingest([speech], replace(config, live=False))
    (s,) = summary.streams
    if s.error:
        print(f"   error: {s.error}")
        return False
    store = SegmentStore.open(db)
    rows = sorted(store.rows_between(s.stream_id, 0, 1 << 62), key=lambda r: r.segment_index)
    words = [w for r in rows for w in r.words]
    st = s.asr
    print(f"   {len(words)} words in {s.segments_written} segments by {summary.asr_model['name']} "
          f"({summary.asr_model['compute_type']}); the VAD spared the model {100 * st.skipped_share:.0f} % of the audio"
          if st else "")
    print("   " + " ".join(f"{w['text']}@{w['t_start_us'] / 1e6:.2f}" for w in words[:24]) + (" ..." if len(words) > 24 else ""))
    query = "John Dashwood's power"
    hits = search(store, SearchQuery(text=query, stream_id=s.stream_id, k=2))
    print(f"   search {query!r}:")
    print_table([{"rank": i + 1, "segment": h.segment_index, "from_s": f"{h.t_start_us / 1e6:.1f}",
                  "via": h.retrieval, "transcript": h.transcript or ""} for i, h in enumerate(hits)],
                ("rank", "segment", "from_s", "via", "transcript"))
    return True


def _anchor_step(media: str | None, db: Path, config) -> bool:
    """Step 7: real pictures and sounds, embedded by the shipped adapters, found from text."""
    from dataclasses import replace

    import numpy as np

    from actors.pipeline import run_ingest
    from engine.media.sources import default_stream_id
    from engine.store.anchors import anchor_count, anchor_search, anchored_modalities
    from engine.store.text_embed import get_text_embedder

    folders = [Path(media or "") / "pictures", Path(media or "") / "sounds"]
    if not media or not all(f.is_dir() for f in folders):
        print("7. any-to-any search: skipped (no media folder given; `make demo` fetches one)")
        return True
    if db.exists():
        import shutil

        shutil.rmtree(db)
    files = sorted(p for f in folders for p in f.iterdir())
    print(f"7. ingesting {len(files)} real pictures and sounds (never trained on); the writer embeds each row into "
          "the text anchor space with the shipped adapters as it commits it ...")
    # The adapters are the ingest's: each committed row is embedded as it lands (no embed job).
    adapters = tuple(str(SHIPPED_ADAPTERS / m) for m in ("image", "audio"))
    summary = run_ingest([str(f) for f in folders], replace(config, db_dir=str(db), live=False, anchor_adapters=adapters))
    for s in summary.streams:
        if s.error:
            print(f"   error: {s.stream_id}: {s.error}")
            return False
    for modality, adapter in sorted(anchored_modalities(db).items()):
        print(f"   {modality}: {anchor_count(db, modality)} rows in the anchor space, by adapter {adapter}")
    name_of = {default_stream_id(str(p)): p.name for p in files}
    embedder, rows = get_text_embedder(), []
    for query in ANCHOR_QUERIES:
        vec = np.asarray(embedder.embed([query])[0], np.float32)
        row = {"query": query}
        for modality, label in (("image", "picture"), ("audio", "sound")):
            hits = anchor_search(db, vec, (modality,), k=1)
            row[label] = name_of.get(hits[0].stream_id, hits[0].stream_id) if hits else "-"
            row[f"{label}_score"] = f"{hits[0].score:.3f}" if hits else "-"
        rows.append(row)
    print_table(rows, ("query", "picture", "picture_score", "sound", "sound_score"))
    return True


def _counted(segments, progress: Progress):
    """Yields ``segments``, showing how many (and how much media) went by."""
    n, media_s = 0, 0.0
    for seg in segments:
        n += 1
        media_s += (seg.t_end_us - seg.t_start_us) / 1e6
        progress.update(segments=n, media_s=media_s)
        yield seg


def _f(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _plot_warps(db: Path, truths: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from engine.store.search import SearchQuery, search
    from engine.store.table import SegmentStore

    store = SegmentStore.open(db)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (sid, spec) in enumerate(truths.items()):
        hits = search(store, SearchQuery(stream_id=sid, k=1000))
        last = store.get(sid, max(h.segment_index for h in hits)) if hits else None
        t = np.linspace(0, spec.duration_s, 50)
        truth = np.array([spec.audio_time_s(x) for x in t]) - t
        color = f"C{i}"
        ax.plot(t, truth * 1000, "--", color=color, alpha=0.6, label=f"{sid} true")
        if last is not None and len(last.warp):
            w = np.asarray(last.warp)
            ax.plot(w[:, 0], (w[:, 1] - w[:, 0]) * 1000, "-o", color=color, ms=3, label=f"{sid} estimated")
    ax.set_xlabel("video time (s)")
    ax.set_ylabel("audio − video (ms)")
    ax.set_title("A/V sync warps: estimated online (solid) vs ground truth (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
