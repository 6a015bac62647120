"""The campaign stage's checkpoints: the newest complete one is read back, whatever a crash left."""

from __future__ import annotations

import random

from detector.stream.checkpoints import CHUNK_BYTES, Checkpoint, CheckpointReader, checkpoint_messages


def big_state(n: int, seed: int = 0) -> dict:
    """Hashed attribute values, as the index holds them: compression leaves them several chunks long."""
    draw = random.Random(seed)
    return {"index": {draw.randbytes(8).hex(): [draw.randbytes(8).hex()] for _ in range(n)}, "clock": float("-inf")}


def read(messages) -> Checkpoint | None:
    reader = CheckpointReader()
    for key, value in messages:
        reader.add(key, value)
    return reader.latest()


def test_a_checkpoint_of_several_chunks_reads_back_whole():
    checkpoint = Checkpoint(3, 1234, big_state(40_000))
    messages = checkpoint_messages(checkpoint)
    assert len(messages) > 2 and all(len(value) <= CHUNK_BYTES + 64 for _, value in messages)
    assert read(messages) == checkpoint


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one_readable():
    """Chunks alternate between two slots and the head goes last: a checkpoint cut short (its head never
    written) spoils nothing, and the next owner numbers its own after the one it restored."""
    first, second = Checkpoint(1, 10, big_state(30_000, 1)), Checkpoint(2, 20, big_state(30_000, 2))
    written = checkpoint_messages(first) + checkpoint_messages(second)[:-2]
    assert read(written) == first
    after_restart = Checkpoint(2, 25, big_state(30_000, 3))
    assert read(written + checkpoint_messages(after_restart)) == after_restart


def test_no_checkpoint_reads_as_none():
    assert read([]) is None
