"""Fault injection for the recovery tests: make one stage's actor process die once.

``PipelineConfig.fault_injection`` holds ``(stage, segment_index, marker_path)`` triples: the first
time the actor of ``stage`` ("tokenizer", "aligner" or "writer") handles ``segment_index`` it
creates ``marker_path`` and exits the process without cleanup (as a crash or an OOM kill would).
Ray restarts the actor and retries the work; the marker keeps it from failing again.
"""

from __future__ import annotations

import os


def maybe_fail(faults: tuple | None, stage: str, segment_index: int) -> None:
    """Exits the process once if one of ``faults`` targets this stage and segment."""
    for fault_stage, fault_index, marker in faults or ():
        if fault_stage == stage and int(segment_index) == int(fault_index) and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
