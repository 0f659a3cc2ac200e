"""The ASR stage of ingest: a stream's segments in, a :class:`SpeechRecord` per segment out.

Runs where the stream's recognizer lives (an :class:`actors.asr.AsrActor`, or the reference
loop). Each completed segment's words become a record with their text and its MiniLM embedding
(one embedding call for all the segments that completed together).
"""

from __future__ import annotations

import numpy as np

from engine.asr.stream import SegmentWords, StreamRecognizer
from engine.ingest.records import SpeechRecord
from engine.media.decode import Segment


def speech_records(done: list[SegmentWords], audio_embs: dict[int, np.ndarray] | None = None
                   ) -> list[tuple[int, SpeechRecord]]:
    """``(segment_index, SpeechRecord)`` of completed segments, transcripts embedded; each takes
    its audio embedding out of ``audio_embs`` (by segment index) when there is one."""
    audio_embs = {} if audio_embs is None else audio_embs
    texts = [seg.transcript for seg in done if seg.transcript]
    embs = iter([])
    if texts:
        from engine.store.text_embed import get_text_embedder

        embs = iter(get_text_embedder().embed(texts))
    return [(seg.index, SpeechRecord([w.as_dict() for w in seg.words], seg.transcript,
                                     np.asarray(next(embs), np.float32) if seg.transcript else None,
                                     audio_embs.pop(seg.index, None)))
            for seg in done]


def recognize_audio(recognizer: StreamRecognizer, index: int, t_start_us: int, t_end_us: int,
                    audio: np.ndarray | None, is_final: bool, audio_encoder=None,
                    audio_embs: dict[int, np.ndarray] | None = None) -> list[tuple[int, SpeechRecord]]:
    """Pushes one segment's audio of a stream (in order); returns the segments that completed.

    With ``audio_encoder`` (:class:`~engine.encode.audio.WhisperAudioEncoder`), the segment's
    audio is embedded now and kept in ``audio_embs`` (the caller's, per stream) until its words
    are final.
    """
    audio_embs = {} if audio_embs is None else audio_embs
    if audio_encoder is not None and audio is not None:
        audio_embs[index] = audio_encoder.embed(audio)
    return speech_records(recognizer.push(index, t_start_us, t_end_us, audio, is_final), audio_embs)


def recognize_segment(recognizer: StreamRecognizer, seg: Segment, audio_encoder=None,
                      audio_embs: dict[int, np.ndarray] | None = None) -> list[tuple[int, SpeechRecord]]:
    """:func:`recognize_audio` of a decoded segment."""
    return recognize_audio(recognizer, seg.index, seg.t_start_us, seg.t_end_us, seg.audio, seg.is_final,
                           audio_encoder, audio_embs)
