"""Inclusion proofs from stored interior nodes, against the RFC 9162 reference."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.msglog import KeySigner, MessageLog, merkle, proofs
from gateway.msglog.evidence import inclusion_paths, streamed_inclusion_paths
from gateway.msglog.store import StoreError
from tests.gateway.msglog.conftest import Backend, make_record

pytestmark = pytest.mark.anyio


def leaves(n: int) -> list[bytes]:
    return [
        merkle.leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)
    ]


class MemoryReader:
    """Nodes in a dict, as a store would hold them; counts the keys asked for."""

    def __init__(self, hashes: list[bytes], *, with_nodes: bool = True) -> None:
        sink: list[tuple[int, int, bytes]] = []
        tree = merkle.CompactRange(sink)
        for leaf in hashes:
            tree.append(leaf)
        self.nodes = {(0, i): leaf for i, leaf in enumerate(hashes)}
        if with_nodes:
            self.nodes.update({(h, i): value for h, i, value in sink})
        self.asked = 0

    async def read_nodes(
        self, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        self.asked += len(keys)
        return {key: self.nodes[key] for key in keys if key in self.nodes}


def test_sink_gets_each_stored_height_with_its_range_hash() -> None:
    hashes = leaves(300)
    sink: list[tuple[int, int, bytes]] = []
    tree = merkle.CompactRange(sink)
    for leaf in hashes:
        tree.append(leaf)

    assert sorted((h, i) for h, i, _ in sink) == [(4, i) for i in range(18)] + [(8, 0)]
    for height, index, value in sink:
        start = index << height
        assert value == merkle.root(hashes[start : start + (1 << height)])


@settings(max_examples=150, deadline=None)
@given(data=st.data(), size=st.integers(1, 700), with_nodes=st.booleans())
def test_proofs_match_the_reference(
    data: st.DataObject, size: int, with_nodes: bool
) -> None:
    hashes = leaves(size)
    index = data.draw(st.integers(0, size - 1))
    reader = MemoryReader(hashes, with_nodes=with_nodes)

    (path,) = asyncio.run(proofs.inclusion_proofs(reader, [index], size))

    assert path == merkle.inclusion_proof(index, hashes)


async def test_a_proof_of_a_prefix_tree_ignores_later_nodes() -> None:
    hashes = leaves(1000)
    reader = MemoryReader(hashes)

    (path,) = await proofs.inclusion_proofs(reader, [77], 333)

    assert path == merkle.inclusion_proof(77, hashes[:333])


async def test_a_proof_reads_logarithmically_many_nodes() -> None:
    hashes = leaves(1 << 14)
    reader = MemoryReader(hashes)

    await proofs.inclusion_proofs(reader, [12345], len(hashes) - 3)

    assert reader.asked <= 8 * 16


async def test_a_missing_leaf_is_a_store_error() -> None:
    reader = MemoryReader(leaves(40), with_nodes=False)
    del reader.nodes[(0, 3)]

    with pytest.raises(StoreError) as raised:
        await proofs.inclusion_proofs(reader, [30], 40)

    assert raised.value.operation == "proof_leaf_missing"


async def test_an_altered_node_gives_no_checked_proof() -> None:
    hashes = leaves(64)
    reader = MemoryReader(hashes)
    reader.nodes[(4, 0)] = b"\x00" * 32
    root = merkle.root(hashes)

    checked = await proofs.checked_inclusion_proofs(
        reader, [40], 64, [hashes[40]], root
    )

    assert checked is None


def test_an_empty_range_has_no_nodes() -> None:
    with pytest.raises(ValueError, match="empty"):
        proofs.perfect_nodes(5, 5)


async def test_the_log_stores_nodes_and_exports_proofs_from_them(
    backend: Backend, signer: KeySigner
) -> None:
    log = MessageLog(backend.store(), signer=signer, checkpoint_interval_s=3600)
    await log.start()
    for i in range(150):
        await log.append(make_record(i))
    await log.checkpoint()
    await log.close()

    store = backend.store()
    await store.open()
    try:
        stored = await store.read_nodes([(4, i) for i in range(10)] + [(8, 0)])
        rows = await store.get_range(100, 101)
        checkpoint = await store.latest_checkpoint()
        assert checkpoint is not None
        fast = await inclusion_paths(store, rows, checkpoint)
        slow = await streamed_inclusion_paths(store, [100], 150)
    finally:
        await store.close()

    assert sorted(stored) == [(4, i) for i in range(9)]
    assert fast == slow


async def test_altered_stored_nodes_fall_back_to_the_leaves(
    backend: Backend, signer: KeySigner
) -> None:
    log = MessageLog(backend.store(), signer=signer, checkpoint_interval_s=3600)
    await log.start()
    for i in range(40):
        await log.append(make_record(i))
    await log.close()
    await backend.tamper(("UPDATE nodes SET hash = ?", (b"\x01" * 32,)))

    store = backend.store()
    await store.open()
    try:
        rows = await store.get_range(3, 4)
        checkpoint = await store.latest_checkpoint()
        assert checkpoint is not None
        paths = await inclusion_paths(store, rows, checkpoint)
    finally:
        await store.close()

    root = bytes.fromhex(checkpoint.root_hash)
    assert merkle.verify_inclusion(3, 40, rows[0].leaf_hash, paths[0], root)
