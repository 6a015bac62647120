"""Checkpoints of the campaign stage in a compacted topic: it survives a crash, and moves with its
partition to whichever worker the group gives it.

The campaign stage (:class:`~detector.detection.stages.OrderedCampaigns`) is one partition's
state: the attribute index, the campaign book with its open alerts, the summaries waiting for
slow partitions. A checkpoint is that state and the summaries-topic offset it covers, written as
numbered chunks then a ``head`` naming them; on assignment the new owner reads the topic, restores
the newest complete checkpoint and resumes reading at its offset, so the state always matches
the position (Kafka Streams commits changelogs and offsets together for the same reason).
Summaries read again after a crash are those after the checkpoint: none counts twice.

Chunks alternate between two slots, so a crash while writing one never spoils the checkpoint the
``head`` names. Values are MessagePack, compressed: the index of a large campaign is megabytes.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import msgspec

CHUNK_BYTES = 512 * 1024
"""Under the brokers' default 1 MB message limit."""
HEAD = b"head"
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class Checkpoint(NamedTuple):
    generation: int
    offset: int
    """The summaries-topic offset to resume at."""
    state: dict
    """:meth:`OrderedCampaigns.snapshot <detector.detection.stages.OrderedCampaigns.snapshot>`."""


def checkpoint_messages(checkpoint: Checkpoint) -> list[tuple[bytes, bytes]]:
    """(key, value) messages to send in order: the chunks, then the head."""
    data = zlib.compress(_encode({"offset": checkpoint.offset, "state": checkpoint.state}), 1)
    slot = checkpoint.generation % 2
    chunks = [data[start : start + CHUNK_BYTES] for start in range(0, len(data), CHUNK_BYTES)] or [b""]
    messages = [
        (f"{slot}/{index}".encode(), _encode([checkpoint.generation, chunk])) for index, chunk in enumerate(chunks)
    ]
    messages.append((HEAD, _encode([checkpoint.generation, slot, len(chunks)])))
    return messages


class CheckpointReader:
    """Reads the checkpoint topic from its beginning; :meth:`latest` is the newest complete checkpoint."""

    def __init__(self) -> None:
        self._values: dict[bytes, bytes] = {}

    def add(self, key: bytes | None, value: bytes | None) -> None:
        if key is not None and value is not None:
            self._values[key] = value  # the newest per key, as compaction keeps

    def latest(self) -> Checkpoint | None:
        head = self._values.get(HEAD)
        if head is None:
            return None
        generation, slot, count = _decode(head)
        chunks = []
        for index in range(count):
            value = self._values.get(f"{slot}/{index}".encode())
            if value is None:
                return None
            chunk_generation, chunk = _decode(value)
            if chunk_generation != generation:
                return None
            chunks.append(chunk)
        content = _decode(zlib.decompress(b"".join(chunks)))
        return Checkpoint(generation, content["offset"], content["state"])
