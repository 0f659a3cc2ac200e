"""Ingest with understanding on vs off: speech recognition and the image encoder as pipeline stages.

Content, all real: read English speech (the ten ``pocketsphinx-testdata`` utterances laid end to
end with pauses, repeated to the clip length in a different order per stream) over a slideshow
of scikit-image's photographs (each shown 4 s, slowly panned), 320×240 at 10 fps H.264 + AAC.

Measured, in one run, on this machine:

* ``throughput``: the Ray pipeline (``run_ingest``) at 1, 4 and 8 streams read as fast as
  possible, with ASR + image encoder off and on: × real time (media s / wall s, start-up
  included), the start-up (seconds to the first committed row) and the steady rate (first to
  last commit); and one long program (``long_s``, lecture length) with everything on;
* ``live``: 4 and 8 streams paced at real time with everything on: end-to-end lag of each row
  (committed − decoded; a live segment is decoded when its media has played) p50 / p95 / max;
* ``asr_cost``: CPU seconds per audio second of the stage's recognizer (VAD + batched Whisper,
  in this process) vs standalone faster-whisper (``WhisperModel.transcribe`` of the same audio
  with its own VAD, word timestamps, same model and beam) — the peer; and both word error rates
  against the reference transcripts, over ``--programs`` long programs of the utterances (and
  faster-whisper's on each utterance's own file);
* ``vad_skip``: share of the audio the VAD kept from the model on non-speech content (Hedgewars'
  music, Debian ``hedgewars-data``) and on the speech program.

Run as part of ``python benchmarks/ingest.py`` (its ``understanding`` rows, in the same run).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.data.media_io import decode_audio, encode_clip
from benchmarks.data.pictures import skimage_pictures
from benchmarks.data.speech import RATE_HZ, compose_program, speech_set

W, H, FPS = 320, 240, 10.0
PICTURES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "horse", "camera", "coins")


def _slideshow(n_frames: int, seed: int):
    from PIL import Image

    pics = skimage_pictures(log=lambda *_: None)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(PICTURES))
    imgs = [np.asarray(Image.open(pics[PICTURES[k]]).convert("RGB").resize((W + 40, H + 30))) for k in order]
    per = int(4 * FPS)
    for i in range(n_frames):
        img = imgs[(i // per) % len(imgs)]
        dx, dy = (i % per) * 40 // per, (i % per) * 30 // per  # a slow pan: frames differ
        yield np.ascontiguousarray(img[dy:dy + H, dx:dx + W])


def make_clips(root: Path, n: int, clip_s: float, prefix: str = "speech") -> tuple[list[str], list[str], list[float]]:
    """Clips, their reference texts (all utterances, in order) and their lengths."""
    utts = speech_set(log=lambda *_: None)
    clips, refs = [], []
    for i in range(n):
        rng = np.random.default_rng(300 + i)
        audio, texts = np.zeros(0, np.float32), []
        while len(audio) < clip_s * RATE_HZ:
            order = rng.permutation(len(utts))
            part, placed = compose_program([utts[k] for k in order], list(rng.uniform(0.8, 3.0, len(utts))), lead_s=0.5)
            audio = np.concatenate([audio, part])
            texts += [p.text for p in placed]
        # Only the utterances that fit whole stay in the reference.
        audio = audio[: int(clip_s * RATE_HZ)]
        path = root / f"{prefix}{i}.mp4"
        encode_clip(path, _slideshow(int(clip_s * FPS), i), FPS, audio, RATE_HZ)
        clips.append(str(path))
        refs.append(" ".join(texts))
    return clips, refs, [clip_s] * n


def fit_codebooks(root: Path, clips: list[str]) -> str:
    from itertools import islice

    from engine.media.decode import MediaConfig, iter_segments
    from engine.tokenize.tokenizer import Tokenizer

    out = root / "codebooks"
    segs = [s for c in clips[:2] for s in islice(iter_segments(c, MediaConfig(video_max_fps=5)), 15)]
    Tokenizer.fit(segs).save(out)
    return str(out)


def ingest(clips: list[str], codebooks: str, db: Path, on: bool, live: bool = False) -> dict:
    from actors.pipeline import run_ingest
    from engine.asr.config import AsrConfig
    from engine.ingest.pipeline import PipelineConfig

    shutil.rmtree(db, ignore_errors=True)
    rows: list = []
    config = PipelineConfig(db_dir=str(db), codebooks_dir=codebooks, live=live, writer_batch_rows=8,
                            queue_max_segments=32, asr=AsrConfig() if on else None,
                            image_encoder="efficientnet-lite0" if on else None)
    t_start = time.time()  # the rows' wall clocks are time.time()
    summary = run_ingest(clips, config, on_row=lambda row, s: rows.append(row))
    rows.sort(key=lambda r: r.wall_committed_s)
    first = rows[0].wall_committed_s if rows else 0.0
    span = rows[-1].wall_committed_s - first if rows else 0.0
    steady_media = sum((r.t_end_us - r.t_start_us) / 1e6 for r in rows if r.wall_committed_s > first)
    lag = sorted(r.wall_committed_s - r.wall_decoded_s for r in rows)
    asr = [s.asr for s in summary.streams if s.asr is not None]
    return {"streams": len(clips), "on": on, "live": live, "rows": summary.rows_total,
            "media_s": round(summary.media_s, 1), "wall_s": round(summary.wall_s, 2),
            "first_row_s": round(first - t_start, 2) if rows else None,
            "realtime_factor": round(summary.realtime_factor, 2),
            "steady_realtime_factor": round(steady_media / span, 2) if span > 0 else None,
            "lag_s_p50": round(statistics.median(lag), 2) if lag else None,
            "lag_s_p95": round(lag[int(0.95 * (len(lag) - 1))], 2) if lag else None,
            "lag_s_max": round(lag[-1], 2) if lag else None,
            "asr_calls": sum(a.calls for a in asr), "asr_skipped_share": (
                round(1 - sum(a.speech_s for a in asr) / max(sum(a.audio_s for a in asr), 1e-9), 3) if asr else None),
            "errors": [s.error for s in summary.streams if s.error]}


def _words_by_window(words: list[tuple[str, float]], placed) -> list[str]:
    """Each placed utterance's hypothesis: the words (text, start s) that start in its window ± 150 ms."""
    return [" ".join(t for t, start in words if p.t_start_us / 1e6 - 0.15 <= start < p.t_end_us / 1e6 + 0.15)
            for p in placed]


def asr_cost(utts, seeds: list[int]) -> dict:
    """The stage's recognizer vs standalone faster-whisper on the same audio (this process).

    One long program per seed (the utterances in a seeded order, 0.8–3 s pauses); corpus WER
    over all programs (one program is ~92 words: one word is 1.1 points). Peers, same model
    and beam: ``transcribe`` of the whole program with its own VAD (the same audio: CPU and
    WER), and of each utterance's own file (WER only: the files without the pipeline).
    """
    from benchmarks.data.media_io import decode_audio
    from engine.asr.config import AsrConfig
    from engine.asr.model import load_speech_model
    from engine.asr.stream import StreamRecognizer
    from engine.asr.words import word_error_rate

    cfg = AsrConfig()
    model = load_speech_model(cfg)
    seg = 2 * RATE_HZ
    refs, ours, peer, per_program = [], [], [], []
    ours_cpu = peer_cpu = audio_s = speech_s = 0.0
    calls = 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(utts))
        program, placed = compose_program([utts[k] for k in order], list(rng.uniform(0.8, 3.0, len(utts))), lead_s=0.5)
        ref = [utts[k].text for k in order]
        audio = np.pad(program, (0, -len(program) % seg))
        c0 = time.process_time()
        rec = StreamRecognizer(model, cfg, live=False)  # a file, as the peer reads it
        done, n = [], len(audio) // seg
        for i in range(n):
            done += rec.push(i, i * 2_000_000, (i + 1) * 2_000_000, audio[i * seg:(i + 1) * seg], i == n - 1)
        ours_cpu += time.process_time() - c0
        hyp = _words_by_window([(w.text, w.t_start_us / 1e6) for s in done for w in s.words], placed)
        c0 = time.process_time()
        segs, _ = model._model.transcribe(program, language="en", beam_size=cfg.beam_size, word_timestamps=True,
                                          vad_filter=True)
        peer_words = [(w.word.strip(), w.start) for s in segs for w in s.words]
        peer_cpu += time.process_time() - c0
        peer_hyp = _words_by_window(peer_words, placed)
        per_program.append({"seed": seed, "ours_wer": round(word_error_rate(ref, hyp), 4),
                            "peer_wer": round(word_error_rate(ref, peer_hyp), 4)})
        refs += ref
        ours += hyp
        peer += peer_hyp
        audio_s += len(program) / RATE_HZ
        speech_s += rec.stats.speech_s
        calls += rec.stats.calls
    files = []
    for u in utts:
        segs, _ = model._model.transcribe(decode_audio(u.path, RATE_HZ), language="en", beam_size=cfg.beam_size,
                                          word_timestamps=True)
        files.append(" ".join(w.word.strip() for s in segs for w in s.words))
    return {"programs": len(seeds), "audio_s": round(audio_s, 1), "reference_words": sum(len(r.split()) for r in refs),
            "ours_cpu_s_per_audio_s": round(ours_cpu / audio_s, 4), "peer_cpu_s_per_audio_s": round(peer_cpu / audio_s, 4),
            "cpu_ratio": round(ours_cpu / peer_cpu, 3),
            "ours_wer": round(word_error_rate(refs, ours), 4), "peer_wer": round(word_error_rate(refs, peer), 4),
            "files_wer": round(word_error_rate([u.text for u in utts], files), 4),
            "calls": calls, "speech_share": round(speech_s / audio_s, 3), "per_program": per_program,
            "peer": "faster_whisper.WhisperModel.transcribe(program, vad_filter=True, word_timestamps=True)",
            "files_peer": "the same, without VAD, on each utterance's own file"}


def vad_skip_on_music(max_s: float = 120.0) -> dict:
    from benchmarks.data.fetch import fetch_debian
    from engine.asr.config import AsrConfig
    from engine.asr.model import load_speech_model
    from engine.asr.stream import StreamRecognizer
    from benchmarks.data.devsets import default_cache

    root = fetch_debian(default_cache(), ["hedgewars-data"], log=lambda *_: None) / "usr/share/games/hedgewars/Data/Music"
    tracks = sorted(root.glob("*.ogg"))[:4]
    audio = np.concatenate([decode_audio(t, RATE_HZ, max_s / len(tracks))[: int(max_s / len(tracks) * RATE_HZ)] for t in tracks])
    seg = 2 * RATE_HZ
    audio = np.pad(audio, (0, -len(audio) % seg))
    rec = StreamRecognizer(load_speech_model(AsrConfig()), AsrConfig())
    n = len(audio) // seg
    words = []
    for i in range(n):
        words += [w for s in rec.push(i, i * 2_000_000, (i + 1) * 2_000_000, audio[i * seg:(i + 1) * seg], i == n - 1)
                  for w in s.words]
    return {"content": [t.name for t in tracks], "audio_s": round(len(audio) / RATE_HZ, 1),
            "skipped_share": round(rec.stats.skipped_share, 3), "calls": rec.stats.calls, "words": len(words)}


def measure(clip_s: float = 120.0, streams: tuple[int, ...] = (1, 4, 8), live_streams: tuple[int, ...] = (4, 8),
            programs: int = 10, long_s: float = 600.0) -> dict:
    """Every measurement of this module, in one run (Ray is started here if it is not yet)."""
    from actors.runtime import init_ray

    t_run = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="omnialign-understanding-"))
    clips, _, _ = make_clips(root, max([*streams, *live_streams, 1]), clip_s)
    codebooks = fit_codebooks(root, clips)
    cost = asr_cost(speech_set(log=lambda *_: None), list(range(100, 100 + programs)))
    music = vad_skip_on_music()
    init_ray(None)
    throughput = [ingest(clips[:k], codebooks, root / "db", on) for k in streams for on in (False, True)]
    if long_s > 0:
        # One long program: what a file of lecture or meeting length gets, start-up included once.
        long_clip, _, _ = make_clips(root, 1, long_s, prefix="long")
        throughput.append(ingest(long_clip, codebooks, root / "db", True))
    live = [ingest(clips[:k], codebooks, root / "db", True, live=True) for k in live_streams]
    shutil.rmtree(root, ignore_errors=True)
    return {"benchmark": "understanding", "clip_s": clip_s, "long_s": long_s, "video": f"{W}x{H}@{FPS:g} H.264 slideshow",
            "asr_cost": cost, "vad_skip": {"music": music, "speech_program_skipped_share": round(1 - cost["speech_share"], 3)},
            "throughput": throughput, "live": live, "run_s": round(time.perf_counter() - t_run, 1)}


def print_tables(res: dict) -> None:
    cost, music = res["asr_cost"], res["vad_skip"]["music"]
    print(f"ASR stage vs standalone faster-whisper on {cost['programs']} programs, {cost['audio_s']} s: CPU {cost['ours_cpu_s_per_audio_s']:.3f} "
          f"vs {cost['peer_cpu_s_per_audio_s']:.3f} s per audio s (ratio {cost['cpu_ratio']:.2f}); WER "
          f"{100 * cost['ours_wer']:.1f} % vs {100 * cost['peer_wer']:.1f} % (each file alone: {100 * cost['files_wer']:.1f} %)")
    print(f"VAD on {music['audio_s']} s of music: {100 * music['skipped_share']:.0f} % kept from the model "
          f"({music['calls']} calls, {music['words']} words)")
    print("| streams | media s each | ASR + encoder | × real time | first row s | steady × | lag p50 s | lag p95 s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in res["throughput"] + res["live"]:
        print(f"| {r['streams']}{' live' if r['live'] else ''} | {r['media_s'] / r['streams']:.0f} | {'on' if r['on'] else 'off'} | "
              f"{r['realtime_factor']:.1f} | {r['first_row_s']} | {r['steady_realtime_factor'] or 0:.1f} | {r['lag_s_p50']} | {r['lag_s_p95']} |")
