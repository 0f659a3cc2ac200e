import math

import pytest

from engine.errors import InvalidInputError
from engine.store.index_policy import (
    INDEX_TYPE,
    IndexPolicy,
    VectorIndexPlan,
    exact_filter_max_rows,
    needs_fold,
    needs_quality_check,
    plan_vector_index,
    probe_ladder,
)


@pytest.mark.parametrize("rows", [1, 300, 50_000, 1_000_000, 30_000_000])
def test_partitions_balance_centroid_and_code_scans(rows):
    plan = plan_vector_index(rows, 256)
    assert plan.index_type == INDEX_TYPE
    assert plan.num_partitions == max(1, round(math.sqrt(rows)))
    # Never more probes than partitions; at least the floor or 1 % of them.
    assert plan.nprobes == min(plan.num_partitions, max(8, math.ceil(0.01 * plan.num_partitions)))
    assert plan.rows_at_build == rows


def test_probe_share_grows_with_partitions():
    assert plan_vector_index(1_000_000, 384).nprobes == 10  # 1 % of 1,000
    assert plan_vector_index(100_000_000, 384).nprobes == 100
    assert plan_vector_index(50_000, 384).nprobes == 8  # the floor


def test_plan_round_trips_through_metadata_dict():
    plan = plan_vector_index(123_456, 64, IndexPolicy(refine_factor=3))
    assert VectorIndexPlan.from_dict(plan.to_dict()) == plan and plan.refine_factor == 3


@pytest.mark.parametrize("rows,dim,field", [(0, 8, "rows"), (10, 0, "dim")])
def test_empty_plans_are_refused(rows, dim, field):
    with pytest.raises(InvalidInputError) as ei:
        plan_vector_index(rows, dim)
    assert ei.value.input == field


@pytest.mark.parametrize("kw", [dict(min_probe_fraction=0), dict(min_nprobes=0), dict(refine_factor=0),
                                dict(fold_unindexed_rows=0), dict(quality_check_growth=0),
                                dict(rebuild_min_recall=1.5), dict(quality_sample=0)])
def test_policy_validates(kw):
    with pytest.raises(InvalidInputError) as ei:
        IndexPolicy(**kw)
    assert ei.value.input == next(iter(kw))


def test_fold_and_quality_thresholds():
    p = IndexPolicy(fold_unindexed_rows=100, quality_check_growth=0.5)
    assert not needs_fold(99, p) and needs_fold(100, p)
    assert not needs_quality_check(149, 100, p) and needs_quality_check(150, 100, p)


def test_probe_ladder_doubles_up_to_the_cap():
    plan = plan_vector_index(1_000_000, 256)  # 1,000 partitions, 10 probes
    assert probe_ladder(plan) == [10, 20, 40, 80, 100]
    tiny = plan_vector_index(100, 8)  # 10 partitions: the floor of 8 probes is already the cap
    assert probe_ladder(tiny) == [8]


def test_rare_filters_are_answered_exactly():
    plan = plan_vector_index(1_000_000, 256)  # 1,000 partitions, 10 probes
    assert exact_filter_max_rows(plan, 10) == 10_000  # ~100 matching rows in the probes
    tuned = VectorIndexPlan(INDEX_TYPE, 1000, 20, 2, 1_000_000)
    assert exact_filter_max_rows(tuned, 10) == 5_000  # more probes meet more of them
