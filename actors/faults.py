"""Fault injection for the recovery tests: make one stage's actor process die once.

``PipelineConfig.fault_injection = (stage, segment_index, marker_path)``: the first time the
actor of ``stage`` ("tokenizer", "aligner" or "writer") handles ``segment_index`` it creates
``marker_path`` and exits the process without cleanup (as a crash or an OOM kill would). Ray
restarts the actor and retries the work; the marker keeps it from failing again.
"""

from __future__ import annotations

import os


def maybe_fail(fault: tuple | None, stage: str, segment_index: int) -> None:
    """Exits the process once if ``fault`` targets this stage and segment."""
    if fault is None or fault[0] != stage or int(segment_index) != int(fault[1]):
        return
    marker = fault[2]
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
