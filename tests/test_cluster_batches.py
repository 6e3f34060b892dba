"""How ``run_shards`` cuts shards into dask tasks for a cluster (``_batches``).

The batches must hold every shard exactly once, in order, none larger than
``MAX_SHARDS_PER_TASK``; and they must shrink towards the end of a run, so that the worker that
finishes last waits for one small task, not a whole batch (issue 14's scale-out). The bytes a
cluster computes are checked against the embedded scheduler in ``tests/test_cluster.py``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from phasemap.store.run import MAX_SHARDS_PER_TASK, MIN_TASKS_PER_THREAD, _batches


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 3000), threads=st.integers(1, 64))
def test_batches_partition_the_shards_in_order(n, threads):
    shards = [(i, i % 3) for i in range(n)]
    batches = _batches(shards, threads)
    assert [s for b in batches for s in b] == shards
    assert all(1 <= len(b) <= MAX_SHARDS_PER_TASK for b in batches)
    sizes = [len(b) for b in batches]
    assert sizes == sorted(sizes, reverse=True)  # never a larger task after a smaller one


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3000), threads=st.integers(1, 64))
def test_the_tail_is_single_shards_and_no_task_outweighs_a_threads_share(n, threads):
    batches = _batches([(i,) for i in range(n)], threads)
    per_thread = threads * MIN_TASKS_PER_THREAD
    tail = n if n <= per_thread else per_thread - 1  # a batch of 2 may take the last slot
    assert all(len(b) == 1 for b in batches[-tail:])
    remaining = n
    for b in batches:  # each task at most a quarter of a thread's share of what is left
        assert len(b) <= max(1, -(-remaining // (threads * MIN_TASKS_PER_THREAD)))
        remaining -= len(b)


def test_a_survey_travels_mostly_in_full_batches():
    """152 shards on 2 threads: far fewer tasks than shards, ending in single shards."""
    batches = _batches([(i,) for i in range(152)], 2)
    assert len(batches) <= 40
    assert sum(len(b) for b in batches if len(b) == MAX_SHARDS_PER_TASK) >= 64
    assert [len(b) for b in batches[-7:]] == [1] * 7
