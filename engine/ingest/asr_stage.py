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


def speech_records(done: list[SegmentWords]) -> list[tuple[int, SpeechRecord]]:
    """``(segment_index, SpeechRecord)`` of completed segments, transcripts embedded."""
    texts = [seg.transcript for seg in done if seg.transcript]
    embs = iter([])
    if texts:
        from engine.store.text_embed import get_text_embedder

        embs = iter(get_text_embedder().embed(texts))
    return [(seg.index, SpeechRecord([w.as_dict() for w in seg.words], seg.transcript,
                                     np.asarray(next(embs), np.float32) if seg.transcript else None))
            for seg in done]


def recognize_segment(recognizer: StreamRecognizer, seg: Segment) -> list[tuple[int, SpeechRecord]]:
    """Pushes one segment of a stream (in order); returns the segments that completed."""
    return speech_records(recognizer.push(seg.index, seg.t_start_us, seg.t_end_us, seg.audio, seg.is_final))
