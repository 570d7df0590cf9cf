"""The Merkle tree of the message log, hashed and proved as RFC 9162 section 2.1 says.

A leaf hash is ``SHA-256(0x00 || data)`` and an interior node ``SHA-256(0x01 ||
left || right)``; a tree of ``n`` leaves splits at ``k``, the largest power of two
smaller than ``n`` (section 2.1.1). Inclusion and consistency proofs are the audit
paths of sections 2.1.3 and 2.1.4, in the RFC's order, so any RFC 6962/9162
verifier can check them.

Every proof node is the hash of a contiguous range of leaves. The module names
those ranges first (:func:`inclusion_ranges`, :func:`consistency_ranges`) and
hashes them either from a list in memory or, for a log too large to hold, from a
stream of leaves with :class:`InclusionProofBuilder` and
:class:`ConsistencyProofBuilder`, whose memory grows with ``log n`` only.

Invalid arguments to proof *generation* raise :class:`ValueError`; proof
*verification* never raises and answers ``False`` instead.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 hash of one leaf: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (MTH) of the leaves; the hash of ``b""`` when empty."""
    tree = CompactRange()
    for leaf in leaf_hashes:
        tree.append(leaf)
    return tree.root()


#: Perfect subtrees whose height is a multiple of this are worth storing (see
#: :mod:`gateway.msglog.proofs`): about one stored node per 15 leaves.
NODE_STRIDE = 4


class CompactRange:
    """The right frontier of a growing tree: one hash per set bit of its size.

    Appending a leaf merges the perfect subtrees it completes, so memory stays at
    ``log2(size)`` hashes however many leaves pass through; the root is folded from
    the frontier on demand. With a ``sink``, every completed perfect subtree whose
    height is a positive multiple of :data:`NODE_STRIDE` is added to it as
    ``(height, index, hash)``: it covers leaves ``[index << height, (index + 1) <<
    height)``.
    """

    __slots__ = ("_nodes", "_sink", "_size")

    def __init__(self, sink: list[tuple[int, int, bytes]] | None = None) -> None:
        self._size = 0
        self._nodes: list[bytes] = []
        self._sink = sink

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash (already hashed with :func:`leaf_hash`)."""
        node = leaf
        carry = self._size
        level = 0
        while carry & 1:
            node = node_hash(self._nodes.pop(), node)
            carry >>= 1
            level += 1
            if self._sink is not None and level % NODE_STRIDE == 0:
                self._sink.append((level, carry, node))
        self._nodes.append(node)
        self._size += 1

    def root(self) -> bytes:
        """The Merkle tree hash of every leaf appended so far."""
        if not self._nodes:
            return EMPTY_ROOT
        acc = self._nodes[-1]
        for node in reversed(self._nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    def nodes(self) -> list[tuple[int, int, bytes]]:
        """The frontier as ``(start, end, hash)`` ranges, leftmost (largest) first."""
        out: list[tuple[int, int, bytes]] = []
        start = 0
        bits = [
            b for b in range(self._size.bit_length() - 1, -1, -1) if self._size >> b & 1
        ]
        for bit, node in zip(bits, self._nodes, strict=True):
            out.append((start, start + (1 << bit), node))
            start += 1 << bit
        return out

    def copy(self) -> CompactRange:
        """An independent copy that can grow apart from this one."""
        other = CompactRange()
        other._size = self._size
        other._nodes = list(self._nodes)
        return other


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[start, end)`` whose hashes form PATH(index, D[size]).

    Raises ValueError if ``index`` is not a leaf of a tree of ``size`` leaves.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")

    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    return ranges[::-1]


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PROOF(first, D[second]) (RFC 9162 2.1.4.1).

    The proof between equal sizes, and from the empty tree, is empty. Every range
    ends at or before ``first`` or starts at or after it; those before are nodes of
    the frontier at ``first``. Raises ValueError unless ``0 <= first <= second``.
    """
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to {second}")
    if first in (0, second):
        return []

    ranges: list[tuple[int, int]] = []
    lo, hi, rel, whole = 0, second, first, True
    while rel != hi - lo:
        k = _split(hi - lo)
        if rel <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, rel, whole = lo + k, rel - k, False
    if not whole:
        ranges.append((lo, hi))
    return ranges[::-1]


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of all ``leaf_hashes``.

    Raises ValueError if ``index`` is out of range.
    """
    ranges = inclusion_ranges(index, len(leaf_hashes))
    return [root(leaf_hashes[a:b]) for a, b in ranges]


def consistency_proof(first: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The consistency proof from the first ``first`` leaves to all ``leaf_hashes``.

    Raises ValueError unless ``0 <= first <= len(leaf_hashes)``.
    """
    ranges = consistency_ranges(first, len(leaf_hashes))
    return [root(leaf_hashes[a:b]) for a, b in ranges]


def root_from_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes | None:
    """The root an audit path leads to (RFC 9162 2.1.3.2), or None if malformed."""
    if not 0 <= index < size:
        return None

    fn, sn, acc = index, size - 1, leaf
    for node in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            acc = node_hash(node, acc)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            acc = node_hash(acc, node)
        fn, sn = fn >> 1, sn >> 1
    return acc if sn == 0 else None


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> bool:
    """Whether ``proof`` shows leaf hash ``leaf`` at ``index`` under ``root_hash``."""
    computed = root_from_inclusion(index, size, leaf, proof)
    return computed is not None and hmac.compare_digest(computed, root_hash)


def verify_consistency(
    first: int,
    second: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """Whether ``proof`` shows the tree of ``first`` leaves is a prefix of ``second``.

    RFC 9162 2.1.4.2; equal sizes need equal roots and an empty proof, and the empty
    tree is a prefix of every tree.
    """
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and hmac.compare_digest(first_root, second_root)
    if first == 0:
        return not proof
    if not proof:
        return False

    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(node, fr)
            sr = node_hash(node, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, node)
        fn, sn = fn >> 1, sn >> 1
    return (
        sn == 0
        and hmac.compare_digest(fr, first_root)
        and hmac.compare_digest(sr, second_root)
    )


class _RangeHasher:
    """Hashes disjoint leaf ranges from leaves fed in order, one pass, log memory."""

    def __init__(self, ranges: Sequence[tuple[int, int]], start: int) -> None:
        self._pending = sorted(r for r in ranges if r[0] >= start)
        self._done: dict[tuple[int, int], bytes] = {}
        self._current: tuple[int, int] | None = None
        self._tree = CompactRange()
        self._position = start

    def add(self, leaf: bytes) -> None:
        if (
            self._current is None
            and self._pending
            and self._pending[0][0] == self._position
        ):
            self._current = self._pending.pop(0)
            self._tree = CompactRange()
        self._position += 1
        if self._current is None:
            return

        self._tree.append(leaf)
        if self._position == self._current[1]:
            self._done[self._current] = self._tree.root()
            self._current = None

    def hashes(self) -> dict[tuple[int, int], bytes]:
        return self._done


class InclusionProofBuilder:
    """Builds PATH(index, D[size]) from the leaves fed in order from leaf 0.

    Raises ValueError on construction if ``index`` is out of range, and from
    :meth:`proof` if fewer than ``size`` leaves were fed.
    """

    def __init__(self, index: int, size: int) -> None:
        self.index = index
        self.size = size
        self._ranges = inclusion_ranges(index, size)
        self._hasher = _RangeHasher(self._ranges, 0)
        self._fed = 0

    def add(self, leaf: bytes) -> None:
        """Feed the next leaf hash; leaves past ``size`` are ignored."""
        if self._fed < self.size:
            self._hasher.add(leaf)
        self._fed += 1

    def proof(self) -> list[bytes]:
        """The audit path, once all ``size`` leaves were fed."""
        if self._fed < self.size:
            raise ValueError(f"only {self._fed} of {self.size} leaves were fed")
        done = self._hasher.hashes()
        return [done[r] for r in self._ranges]


class ConsistencyProofBuilder:
    """Builds PROOF(first, D[second]) from the frontier at ``first`` and the leaves
    after it, fed in order; memory stays at ``log second`` hashes.

    Raises ValueError if the frontier is not of size ``first`` or the sizes are not
    ordered, and from :meth:`proof` if fewer than ``second - first`` leaves were fed.
    """

    def __init__(self, frontier: CompactRange, second: int) -> None:
        first = frontier.size
        self.first = first
        self.second = second
        self._ranges = consistency_ranges(first, second)
        self._known = {(a, b): h for a, b, h in frontier.nodes()}
        self._hasher = _RangeHasher(self._ranges, first)
        self._fed = first

    def add(self, leaf: bytes) -> None:
        """Feed the next leaf after ``first``; leaves past ``second`` are ignored."""
        if self._fed < self.second:
            self._hasher.add(leaf)
        self._fed += 1

    def proof(self) -> list[bytes]:
        """The consistency proof, once the leaves up to ``second`` were fed."""
        if self._fed < self.second:
            raise ValueError(f"only {self._fed} of {self.second} leaves were fed")
        done = {**self._known, **self._hasher.hashes()}
        return [done[r] for r in self._ranges]
