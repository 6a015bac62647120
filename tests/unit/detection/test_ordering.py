"""Summaries from several input partitions, taken in one event-time order up to the slowest partition."""

from __future__ import annotations

from detector.detection.campaigns import AttributeObservation
from detector.detection.ordering import EventTimeMerger, Progress, SummaryKey

T0 = 1_772_409_600.0


def summary(t: float, partition: int, position: int = 0):
    return SummaryKey(t, partition, position), [AttributeObservation("payment:p", f"a{partition}", t, 1, 1, 1, T0)]


def test_nothing_is_released_before_every_partition_has_reported_then_up_to_the_slowest():
    merger = EventTimeMerger(partitions=2)
    merger.offer(*summary(T0 + 30, 0))
    merger.offer(*summary(T0 + 10, 0))
    merger.report([Progress(0, T0 + 30, False)])
    assert merger.release() == []  # partition 1 may still send something older
    merger.offer(*summary(T0 + 20, 1))
    merger.report([Progress(1, T0 + 20, False)])
    released = [key for key, _ in merger.release()]
    assert released == [SummaryKey(T0 + 10, 0, 0), SummaryKey(T0 + 20, 1, 0)] and merger.clock == T0 + 20
    merger.report([Progress(1, T0 + 40, False)])
    assert [key for key, _ in merger.release()] == [SummaryKey(T0 + 30, 0, 0)] and merger.clock == T0 + 30


def test_a_drained_partition_holds_nobody_back_and_when_all_are_drained_everything_goes():
    merger = EventTimeMerger(partitions=2)
    merger.offer(*summary(T0 + 50, 0))
    merger.report([Progress(0, T0 + 50, False), Progress(1, T0, True)])
    assert [key.timestamp for key, _ in merger.release()] == [T0 + 50]
    merger.offer(*summary(T0 + 90, 0))
    merger.report([Progress(0, T0 + 60, True)])  # its watermark message overtook nothing: all read
    assert [key.timestamp for key, _ in merger.release()] == [T0 + 90]


def test_summaries_sent_again_after_a_restart_count_once_and_watermarks_never_move_back():
    merger = EventTimeMerger(partitions=1)
    for t in (10, 20):
        merger.offer(*summary(T0 + t, 0, position=t))
    merger.report([Progress(0, T0 + 10, False)])
    merger.release()
    # the detect step restarted from an older checkpoint: it re-sends both and reports an older watermark
    assert not merger.offer(*summary(T0 + 10, 0, position=10))  # released already
    assert not merger.offer(*summary(T0 + 20, 0, position=20))  # waiting already
    merger.report([Progress(0, T0 + 5, False)])
    assert merger.progress[0] == (T0 + 10, False) and merger.release() == []
    assert merger.offer(*summary(T0 + 15, 0, position=15))  # a summary it never sent before


def test_a_restored_merger_continues_as_the_saved_one():
    merger = EventTimeMerger(partitions=2)
    merger.offer(*summary(T0 + 10, 0))
    merger.offer(*summary(T0 + 30, 1))
    merger.report([Progress(0, T0 + 20, False), Progress(1, T0 + 30, False)])
    merger.release()
    restored = EventTimeMerger(partitions=0)
    restored.restore(merger.snapshot())
    for one in (merger, restored):
        one.report([Progress(0, T0 + 40, False)])
    assert restored.release() == merger.release() != []
    assert restored.snapshot() == merger.snapshot()
