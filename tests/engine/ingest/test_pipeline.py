"""engine.ingest.pipeline: configuration checks (the stages are tested through run_local and Ray)."""

from __future__ import annotations

import pytest

from engine.errors import InvalidInputError
from engine.ingest.pipeline import PipelineConfig


@pytest.mark.parametrize("field, value", [("streams_per_source_actor", 0), ("queue_max_segments", 0),
                                          ("writer_batch_rows", 0), ("aligner_actors", 0),
                                          ("tokenizer_min_actors", 0), ("tokenizer_max_actors", 0),
                                          ("segment_s", 0.0), ("aligner_wait_s", -1.0), ("tokenizer_num_cpus", -0.5),
                                          ("sync_window_s", 2.0)])
def test_bad_counts_are_refused_by_name(field, value):
    with pytest.raises(InvalidInputError, match=field):
        PipelineConfig(db_dir="db", codebooks_dir="cb", **{field: value})


def test_tokenizer_pool_bounds_must_be_ordered():
    with pytest.raises(InvalidInputError, match="tokenizer_min_actors"):
        PipelineConfig(db_dir="db", codebooks_dir="cb", tokenizer_min_actors=3, tokenizer_max_actors=2)
    assert PipelineConfig(db_dir="db", codebooks_dir="cb", tokenizer_min_actors=2, tokenizer_max_actors=2)


@pytest.mark.parametrize("bad", [(("CPU", 1.0),), (("stable", 0),), (("", 1.0),), ("stable",), (("stable", "x"),)])
def test_stateful_resources_must_be_named_positive_custom_resources(bad):
    with pytest.raises(InvalidInputError, match="stateful_resources"):
        PipelineConfig(db_dir="/d", codebooks_dir="/c", stateful_resources=bad)
    assert PipelineConfig(db_dir="/d", codebooks_dir="/c", stateful_resources=(("stable", 0.01),)).stateful_resources
