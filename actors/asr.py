"""Per-stream speech recognition in stateful actors (the ASR actor pool), and its lookup.

Like the aligners: every stream's :class:`~engine.asr.stream.StreamRecognizer` lives in one
:class:`AsrActor`, chosen by a stable hash of the stream id, because recognition carries state
across segments (audio of an utterance not yet closed, the text context). The stream's source
pushes each segment's audio in order; the writer asks for each segment's words
(:func:`speech_for`) and waits until every word that starts in the segment is final.

The actor asks Ray for a GPU when the pipeline config gives it one (then faster-whisper runs
float16 on CUDA); on CPU it runs int8. Recognition runs on one worker thread per actor, so the
actor keeps answering lookups while it transcribes. If an actor dies, Ray restarts it empty: the
rows whose words were lost are written without them after ``asr_wait_s`` (their audio and tokens
are kept), and later segments are recognized again.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import ray

from engine.asr.config import AsrConfig
from engine.asr.model import load_speech_model
from engine.asr.stream import AsrStats, StreamRecognizer
from engine.ingest.asr_stage import recognize_audio
from engine.ingest.records import SpeechRecord

#: Finished segments kept per stream until the writer asks (bounds memory if nobody asks).
_KEEP_SEGMENTS = 512


@ray.remote(max_restarts=-1, max_task_retries=-1)
class AsrActor:
    """Holds the speech recognizers of the streams routed to it (an asyncio actor).

    Args:
        config: ASR settings (one model per actor, shared by its streams).
    """

    def __init__(self, config: AsrConfig) -> None:
        self.config = config
        self.model = load_speech_model(config)
        # Transcripts are embedded here (MiniLM): load it now, while the pipeline's other actors
        # start, not on the first words (a live stream's first rows waited ~10 s for it).
        from engine.store.text_embed import get_text_embedder

        get_text_embedder().embed(["warm-up"])
        self.audio_encoder = None
        if config.audio_embedding:
            from engine.encode.audio import WhisperAudioEncoder

            self.audio_encoder = WhisperAudioEncoder.of_speech_model(self.model, config.model_dir)
        self.audio_embs: dict[str, dict[int, np.ndarray]] = {}
        self.recognizers: dict[str, StreamRecognizer] = {}
        self.done: dict[str, OrderedDict[int, SpeechRecord]] = {}
        self.events: dict[tuple[str, int], asyncio.Event] = {}
        self.finished: set[str] = set()
        self.last_pushed: dict[str, int] = {}
        self.ended_stats: dict[str, AsrStats] = {}
        self.reconstructed = ray.get_runtime_context().was_current_actor_reconstructed
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")

    def _recognize(self, stream_id: str, index: int, t_start_us: int, t_end_us: int, audio, is_final: bool,
                   live: bool) -> list:
        rec = self.recognizers.get(stream_id)
        if rec is None:
            rec = self.recognizers[stream_id] = StreamRecognizer(self.model, self.config, live)
        return recognize_audio(rec, index, t_start_us, t_end_us, audio, is_final, self.audio_encoder,
                               self.audio_embs.setdefault(stream_id, {}))

    async def push(self, stream_id: str, index: int, t_start_us: int, t_end_us: int, audio: np.ndarray | None,
                   is_final: bool, live: bool = True) -> list[int]:
        """Adds a stream's next segment (its source calls this in order, one call in flight);
        ``live``: the stream plays in real time (see :class:`StreamRecognizer`). Returns the
        indexes of the segments whose words became final (in order)."""
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(self._worker, self._recognize, stream_id, index, t_start_us, t_end_us,
                                         audio, is_final, live)
        self.last_pushed[stream_id] = max(index, self.last_pushed.get(stream_id, -1))
        store = self.done.setdefault(stream_id, OrderedDict())
        for i, speech in out:
            store[i] = speech
            event = self.events.pop((stream_id, i), None)
            if event is not None:
                event.set()
        while len(store) > _KEEP_SEGMENTS:
            store.popitem(last=False)
        return [i for i, _ in out]

    async def finish(self, stream_id: str) -> None:
        """The stream ended (or failed): nobody waits for its later segments."""
        self.finished.add(stream_id)
        rec = self.recognizers.pop(stream_id, None)
        self.audio_embs.pop(stream_id, None)
        if rec is not None:
            self.ended_stats[stream_id] = rec.stats
        for key in [k for k in self.events if k[0] == stream_id]:
            self.events.pop(key).set()

    async def speech_for(self, stream_id: str, segment_index: int, timeout_s: float) -> SpeechRecord | None:
        """The segment's words once final (waits up to ``timeout_s``); None when they were lost
        (an actor restart) or did not come in time."""
        store = self.done.get(stream_id, {})
        if segment_index not in store and stream_id not in self.finished and not (
                self.reconstructed and stream_id not in self.last_pushed):
            event = self.events.setdefault((stream_id, segment_index), asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass
            store = self.done.get(stream_id, {})
        return store.pop(segment_index, None)

    async def stats(self, stream_id: str) -> AsrStats | None:
        """What the stream's recognizer did (None for a stream this actor never saw)."""
        rec = self.recognizers.get(stream_id)
        return rec.stats if rec is not None else self.ended_stats.get(stream_id)

    async def model_info(self) -> dict:
        """Name, weights hash, device and compute type of the actor's model."""
        m = self.model
        return {"name": m.name, "weights_hash": m.weights_hash, "device": getattr(m, "device", "cpu"),
                "compute_type": getattr(m, "compute_type", "")}


def asr_for(actors: list, stream_id: str):
    """Consistent routing: a stream always goes to the same ASR actor."""
    return actors[zlib.crc32(stream_id.encode()) % len(actors)]


def speech_for(keys: list[tuple[str, int]], actors: list | None, timeout_s: float) -> list[SpeechRecord | None]:
    """Each ``(stream_id, segment_index)``'s words, in one round trip (None everywhere when ASR
    is off)."""
    if not actors:
        return [None] * len(keys)
    return ray.get([asr_for(actors, sid).speech_for.remote(sid, idx, timeout_s) for sid, idx in keys])
