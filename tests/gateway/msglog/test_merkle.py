"""The RFC 9162 tree against the Certificate Transparency vectors and at random."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.msglog import merkle

# The leaves of the RFC 6962 / Certificate Transparency reference tests.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_LEAF_HASHES = [merkle.leaf_hash(leaf) for leaf in CT_LEAVES]

# The roots of the first 1..8 leaves, from the CT reference tests.
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# (leaf index, tree size, audit path) from the CT reference tests.
CT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

# (first size, second size, consistency proof) from the CT reference tests.
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def reference_mth(leaves: list[bytes]) -> bytes:
    """MTH as RFC 9162 2.1.1 states it, recursively, from the raw leaf data."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    left, right = reference_mth(leaves[:k]), reference_mth(leaves[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def hexes(proof: list[bytes]) -> list[str]:
    return [node.hex() for node in proof]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert merkle.root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize("size", range(1, 9))
def test_root_matches_ct_vector(size: int) -> None:
    assert merkle.root(CT_LEAF_HASHES[:size]).hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize("size", range(1, 9))
def test_root_matches_reference_implementation(size: int) -> None:
    assert merkle.root(CT_LEAF_HASHES[:size]) == reference_mth(CT_LEAVES[:size])


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_inclusion_proof_matches_ct_vector(
    index: int, size: int, path: list[str]
) -> None:
    assert hexes(merkle.inclusion_proof(index, CT_LEAF_HASHES[:size])) == path


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_ct_inclusion_vector_verifies(index: int, size: int, path: list[str]) -> None:
    root = bytes.fromhex(CT_ROOTS[size - 1])
    proof = [bytes.fromhex(node) for node in path]
    assert merkle.verify_inclusion(index, size, CT_LEAF_HASHES[index], proof, root)


@pytest.mark.parametrize(("first", "second", "path"), CT_CONSISTENCY)
def test_consistency_proof_matches_ct_vector(
    first: int, second: int, path: list[str]
) -> None:
    assert hexes(merkle.consistency_proof(first, CT_LEAF_HASHES[:second])) == path


@pytest.mark.parametrize(("first", "second", "path"), CT_CONSISTENCY)
def test_ct_consistency_vector_verifies(
    first: int, second: int, path: list[str]
) -> None:
    proof = [bytes.fromhex(node) for node in path]
    first_root = bytes.fromhex(CT_ROOTS[first - 1])
    second_root = bytes.fromhex(CT_ROOTS[second - 1])
    assert merkle.verify_consistency(first, second, first_root, second_root, proof)


@pytest.mark.parametrize(
    ("index", "size"), [(-1, 3), (3, 3), (0, 0)], ids=["negative", "past-end", "empty"]
)
def test_inclusion_proof_of_missing_leaf_raises(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="is not in a tree"):
        merkle.inclusion_proof(index, CT_LEAF_HASHES[:size])


def test_consistency_proof_to_smaller_tree_raises() -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_ranges(5, 4)


def test_verify_inclusion_rejects_index_past_size() -> None:
    root = bytes.fromhex(CT_ROOTS[7])
    assert not merkle.verify_inclusion(8, 8, CT_LEAF_HASHES[0], [], root)


def test_verify_consistency_rejects_empty_proof_between_different_sizes() -> None:
    first, second = bytes.fromhex(CT_ROOTS[1]), bytes.fromhex(CT_ROOTS[4])
    assert not merkle.verify_consistency(2, 5, first, second, [])


def test_compact_range_copy_grows_apart() -> None:
    tree = merkle.CompactRange()
    tree.append(CT_LEAF_HASHES[0])
    copy = tree.copy()
    copy.append(CT_LEAF_HASHES[1])
    assert (tree.size, copy.size) == (1, 2)
    assert copy.root().hex() == CT_ROOTS[1]


# -- properties over random trees -----------------------------------------------------

leaf_lists = st.lists(st.binary(max_size=8), min_size=1, max_size=70).map(
    lambda leaves: [merkle.leaf_hash(leaf) for leaf in leaves]
)


def _flip(proof: list[bytes], at: int) -> list[bytes]:
    node = proof[at % len(proof)]
    changed = bytes([node[0] ^ 1]) + node[1:]
    return [changed if i == at % len(proof) else n for i, n in enumerate(proof)]


@given(leaf_lists, st.data())
def test_every_inclusion_proof_verifies(
    leaves: list[bytes], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle.inclusion_proof(index, leaves)
    root = merkle.root(leaves)
    assert merkle.verify_inclusion(index, len(leaves), leaves[index], proof, root)


@given(leaf_lists, st.data())
def test_tampered_inclusion_proof_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle.inclusion_proof(index, leaves)
    root = merkle.root(leaves)
    if proof:
        bad = _flip(proof, data.draw(st.integers(0, len(proof) - 1)))
        assert not merkle.verify_inclusion(index, len(leaves), leaves[index], bad, root)
    other = data.draw(st.integers(0, len(leaves) - 1))
    if leaves[other] != leaves[index]:
        assert not merkle.verify_inclusion(
            index, len(leaves), leaves[other], proof, root
        )


@given(leaf_lists, st.data())
def test_every_consistency_proof_verifies(
    leaves: list[bytes], data: st.DataObject
) -> None:
    first = data.draw(st.integers(0, len(leaves)))
    proof = merkle.consistency_proof(first, leaves)
    old, new = merkle.root(leaves[:first]), merkle.root(leaves)
    assert merkle.verify_consistency(first, len(leaves), old, new, proof)


@given(leaf_lists, st.data())
def test_tampered_consistency_proof_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    first = data.draw(st.integers(1, len(leaves)))
    proof = merkle.consistency_proof(first, leaves)
    old, new = merkle.root(leaves[:first]), merkle.root(leaves)
    if proof:
        bad = _flip(proof, data.draw(st.integers(0, len(proof) - 1)))
        assert not merkle.verify_consistency(first, len(leaves), old, new, bad)
    wrong_old = _flip([old], 0)[0]
    assert not merkle.verify_consistency(first, len(leaves), wrong_old, new, proof)


@given(leaf_lists)
def test_root_matches_recursive_definition(leaves: list[bytes]) -> None:
    # Hash the leaf hashes as data: any function of the list checks the shape.
    assert merkle.root([merkle.leaf_hash(x) for x in leaves]) == reference_mth(leaves)


@given(leaf_lists, st.data())
def test_streamed_inclusion_proof_equals_in_memory(
    leaves: list[bytes], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    builder = merkle.InclusionProofBuilder(index, len(leaves))
    for leaf in leaves:
        builder.add(leaf)
    assert builder.proof() == merkle.inclusion_proof(index, leaves)


@given(leaf_lists, st.data())
def test_streamed_consistency_proof_equals_in_memory(
    leaves: list[bytes], data: st.DataObject
) -> None:
    first = data.draw(st.integers(0, len(leaves)))
    frontier = merkle.CompactRange()
    for leaf in leaves[:first]:
        frontier.append(leaf)
    builder = merkle.ConsistencyProofBuilder(frontier, len(leaves))
    for leaf in leaves[first:]:
        builder.add(leaf)
    assert builder.proof() == merkle.consistency_proof(first, leaves)
