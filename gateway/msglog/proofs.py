"""Inclusion proofs from stored interior nodes: O(log n) rows however long the log.

The writer stores, beside each record's leaf hash, the hash of every perfect
subtree whose height is a positive multiple of
:data:`~gateway.msglog.merkle.NODE_STRIDE` (a node ``(height, index)`` covers
leaves ``[index << height, (index + 1) << height)``). Every node of an RFC 9162
audit path is the hash of a leaf range that
splits into perfect subtrees; each of those is either stored or folded from at
most ``2 ** (NODE_STRIDE - 1)`` stored nodes one stride lower. So a proof reads a
few hundred rows in one query, instead of streaming every leaf.

Stored nodes are a cache derived from the leaves: a node that is missing (a log
written before nodes were stored, or not yet flushed) is folded from the level
below, down to the leaves. A node that was altered yields a proof that does not
verify, never a false one; callers check the proof against the checkpoint (see
:func:`checked_inclusion_proofs`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from gateway.msglog import merkle
from gateway.msglog.merkle import NODE_STRIDE
from gateway.msglog.store import StoreError

NodeKey = tuple[int, int]


class NodeReader(Protocol):
    """What proofs need of a store: hashes of nodes by ``(height, index)``."""

    async def read_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        """The stored hashes of ``keys``; height 0 is a record's leaf hash.

        Keys not stored are absent from the answer.
        """
        ...


def perfect_nodes(start: int, end: int) -> list[NodeKey]:
    """The perfect subtrees whose hashes fold into MTH of leaves ``[start, end)``.

    Follows the RFC 9162 split, so the fold of these (see :func:`range_hash`) is
    the range's tree hash. Raises ValueError for an empty range.
    """
    if start >= end:
        raise ValueError(f"empty leaf range [{start}, {end})")
    width = end - start
    if width & (width - 1) == 0 and start % width == 0:
        height = width.bit_length() - 1
        return [(height, start >> height)]
    k = 1 << ((width - 1).bit_length() - 1)
    return perfect_nodes(start, start + k) + perfect_nodes(start + k, end)


def range_hash(start: int, end: int, known: dict[NodeKey, bytes]) -> bytes:
    """MTH of leaves ``[start, end)`` from the perfect subtrees in ``known``.

    Raises KeyError if a subtree (or what it folds from) is not in ``known``.
    """
    width = end - start
    if width & (width - 1) == 0 and start % width == 0:
        height = width.bit_length() - 1
        return node_from(height, start >> height, known)
    k = 1 << ((width - 1).bit_length() - 1)
    return merkle.node_hash(
        range_hash(start, start + k, known), range_hash(start + k, end, known)
    )


def node_from(height: int, index: int, known: dict[NodeKey, bytes]) -> bytes:
    """The hash of node ``(height, index)``, folded from lower nodes if not known.

    Raises KeyError if a leaf it needs is not in ``known``.
    """
    found = known.get((height, index))
    if found is not None:
        return found
    if height == 0:
        raise KeyError((height, index))
    value = merkle.node_hash(
        node_from(height - 1, 2 * index, known),
        node_from(height - 1, 2 * index + 1, known),
    )
    known[(height, index)] = value
    return value


def _stored_under(height: int, index: int) -> list[NodeKey]:
    """The stored-level nodes a node of ``height`` folds from (itself if stored)."""
    low = height - height % NODE_STRIDE
    span = height - low
    return [(low, i) for i in range(index << span, (index + 1) << span)]


def _children(key: NodeKey) -> list[NodeKey]:
    """A stored node's stored nodes one stride lower (leaves below the first)."""
    height, index = key
    low = height - NODE_STRIDE
    span = NODE_STRIDE
    return [(low, i) for i in range(index << span, (index + 1) << span)]


async def _fetch(reader: NodeReader, wanted: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
    """Read ``wanted``; replace what is missing with its lower nodes, to the leaves.

    Raises StoreError if a leaf is missing (or the store fails).
    """
    known: dict[NodeKey, bytes] = {}
    pending = sorted(set(wanted))
    while pending:
        found = await reader.read_nodes(pending)
        known.update(found)
        missing = [key for key in pending if key not in found]
        if any(height == 0 for height, _ in missing):
            raise StoreError("proof_leaf_missing")
        pending = sorted({child for key in missing for child in _children(key)})
    return known


async def inclusion_proofs(
    reader: NodeReader, indexes: Sequence[int], size: int
) -> list[list[bytes]]:
    """The RFC 9162 audit paths of ``indexes`` in the tree of ``size`` leaves.

    Raises ValueError if an index is not a leaf of that tree, StoreError if the
    store fails or lacks a leaf.
    """
    ranges = [merkle.inclusion_ranges(index, size) for index in indexes]
    wanted = [
        stored
        for path in ranges
        for start, end in path
        for height, index in perfect_nodes(start, end)
        for stored in _stored_under(height, index)
    ]
    known = await _fetch(reader, wanted)
    try:
        return [[range_hash(a, b, known) for a, b in path] for path in ranges]
    except KeyError as exc:
        raise StoreError("proof_node_missing") from exc


async def checked_inclusion_proofs(
    reader: NodeReader,
    indexes: Sequence[int],
    size: int,
    leaves: Sequence[bytes],
    root_hash: bytes,
) -> list[list[bytes]] | None:
    """:func:`inclusion_proofs`, each verified against ``root_hash``; None if any
    fails (a stored node was altered or stale) or the store cannot build them.

    ``leaves`` are the leaf hashes of ``indexes``. Raises ValueError if an index
    is out of range.
    """
    with contextlib.suppress(StoreError):
        paths = await inclusion_proofs(reader, indexes, size)
        if all(
            merkle.verify_inclusion(index, size, leaf, path, root_hash)
            for index, leaf, path in zip(indexes, leaves, paths, strict=True)
        ):
            return paths
    return None
