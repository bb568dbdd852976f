"""One draw per compiled graph: an Inductor joint-graph pass merging compiled packed's C++ draws into one call.

    torch.compile(model, options=pmexp.dropout.traced.inductor_options("packed"))  # the trainer and pmexp.bench do

Compiled packed on CUDA draws each dropout's keep bits with a call of ``pmexp_native::philox_bits``
(:mod:`pmexp.dropout.traced`): 20 calls in a compiled MiniLM forward, each a dispatch, an ``empty`` and a kernel
launch that a host-bound step pays for (24 us a call under cProfile on the H200's host; the op alone was half the
extra forward host time, runs/2026-11-30-compiled-host). Standard's compiled dropouts draw inside Inductor's
kernels from one seed draw per graph. This pass does the same for the bits: the draws of one joint graph with
one ``p`` become one call whose output holds each draw's bits back to back, then the 8 shifts, and each draw's
slices (its bits, its shifts) become slices of that output. The partitioner then saves the one buffer for
backward: the same bytes as before less 8 a draw, alive until the backward's last dropout where each draw's
bits were freed after its own (bits are 1/32 of a float32 activation: far below the peak's other tensors).

Compiled seeded's seeds likewise (:func:`merge_seed_draws`): one ``randint`` for all of them, each dropout reading
its element, where Inductor wrote each seed with a kernel of its own.

Left alone, drawing as before: a draw inside an activation-checkpoint region (its recompute replays that draw
from the generator state saved around it), one whose element count is symbolic (dynamic shapes), and one whose
output is used by anything but a slice of its bits or of its shifts.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files
from torch.fx import Graph, Node

from pmexp.dropout.native import BIT_DRAWS

__all__ = ["MergeBitDraws", "MERGE_BIT_DRAWS"]

_aten = torch.ops.aten


class MergeBitDraws(CustomGraphPass):
    """Merges the calls of each op in :data:`pmexp.dropout.native.BIT_DRAWS` with one ``p`` in a joint graph, and
    compiled seeded's seed draws (:func:`merge_seed_draws`)."""

    def __call__(self, graph: Graph) -> None:
        groups: dict[tuple, list[tuple[Node, int]]] = defaultdict(list)
        for node in graph.nodes:
            if node.op == "call_function" and node.target in BIT_DRAWS and (n := _static_count(node)) is not None:
                groups[(node.target, node.args[1], node.meta["val"].device)].append((node, n))
        for (op, p, _), draws in groups.items():
            if len(draws) > 1:
                _merge(graph, op, p, draws)
        merge_seed_draws(graph)

    def uuid(self) -> bytes:
        # The cache key: this file and the ops it merges (a test's stand-in op merges too).
        return get_hash_for_files((__file__,)) + repr(sorted(map(str, BIT_DRAWS))).encode()

    def __repr__(self) -> str:  # as the trainer's record prints its Inductor options
        return "pmexp.dropout.merged_draws.MERGE_BIT_DRAWS"


MERGE_BIT_DRAWS = MergeBitDraws()


def _static_count(draw: Node) -> int | None:
    """The element count of a draw this pass may merge, else None (see the module docstring)."""
    count = draw.args[0]
    if draw.meta.get("recompute") is not None or not isinstance(count, Node) or len(count.users) != 1:
        return None
    if count.target is not _aten.empty.memory_format or len(count.args[0]) != 2 or count.args[0][1] != 0:
        return None
    n = count.args[0][0]
    if not isinstance(n, int):  # symbolic: a dynamic shape
        return None
    if any(_slice_bounds(user, _bit_bytes(n)) is None for user in draw.users):
        return None
    return n


def _bit_bytes(n: int) -> int:
    return (n + 7) // 8


def _slice_bounds(user: Node, bit_bytes: int) -> tuple[int, int] | None:
    """``[start, end)`` of ``user``, a dim-0 step-1 slice of a draw's output lying within its bits or its shifts;
    else None."""
    if user.target is not _aten.slice.Tensor or user.kwargs:
        return None
    _, dim, start, end, step = (*user.args, *(None, 0, None, None, 1)[len(user.args):])  # the schema's defaults
    if dim != 0 or step != 1 or not all(v is None or isinstance(v, int) for v in (start, end)):
        return None
    start, end, _ = slice(start, end).indices(bit_bytes + 8)  # aten.slice clamps as Python does
    if start > end or (start < bit_bytes < end):
        return None
    return start, end


def _merge(graph: Graph, op, p: float, draws: list[tuple[Node, int]]) -> None:
    """One call of ``op`` for ``draws`` (in graph order), its output sliced where each draw's was."""
    sizes = [_bit_bytes(n) for _, n in draws]
    total = sum(sizes)
    first = draws[0][0]
    count = _inserted(graph, first, first.args[0], _aten.empty.memory_format, ([8 * total, 0],),
                      first.args[0].kwargs)
    merged = _inserted(graph, first, first, op, (count, p))
    offset = 0
    for i, ((draw, _), bit_bytes) in enumerate(zip(draws, sizes, strict=True)):
        for user in list(draw.users):
            start, end = _in_merged(*_slice_bounds(user, bit_bytes), bit_bytes, offset, total, i)
            user.replace_all_uses_with(_inserted(graph, user, user, _aten.slice.Tensor, (merged, 0, start, end)))
            graph.erase_node(user)
        count_node = draw.args[0]
        graph.erase_node(draw)
        graph.erase_node(count_node)
        offset += bit_bytes


def _in_merged(start: int, end: int, bit_bytes: int, offset: int, total: int, i: int) -> tuple[int, int]:
    """Where ``[start, end)`` of draw ``i``'s output (``bit_bytes`` of bits, then 8 shifts) lies in the merged
    output (``total`` bytes of bits, draw ``i``'s from ``offset``, then 8 shifts)."""
    if end <= bit_bytes:  # its bits
        return start + offset, end + offset
    # The shifts, which every draw shares. An end past the output's end (clamped, as in Python), distinct per draw,
    # keeps the partitioner's CSE from making one node of the draws' slices: one node used by every dropout is
    # "used far apart", which bans recomputing the unpacking in backward, and the partitioner saved the unpacked
    # bool masks instead of the bits (tests/test_compile.py).
    return total + start - bit_bytes, total + end - bit_bytes + (i if end == bit_bytes + 8 else 0)


def merge_seed_draws(graph: Graph) -> None:
    """Compiled seeded's seeds, one ``randint(low, high, (1,))`` a dropout (:func:`pmexp.dropout.traced.seeded_traced`),
    drawn as one ``randint`` of all of them, each dropout reading its element. Inductor writes each seed with a
    kernel of its own (it is saved for backward): 20 launches a compiled MiniLM step that standard does not make.
    Draws inside activation-checkpoint regions are left alone, as bit draws are."""
    groups: dict[tuple, list[Node]] = defaultdict(list)
    for node in graph.nodes:
        if (node.target is _aten.randint.low and node.meta.get("recompute") is None and len(node.args) == 3
                and list(node.args[2]) == [1] and node.meta["val"].dtype == torch.int64):
            groups[(node.args[0], node.args[1], node.meta["val"].device)].append(node)
    for (low, high, _), draws in groups.items():
        if len(draws) < 2:
            continue
        merged = _inserted(graph, draws[0], draws[0], _aten.randint.low, (low, high, [len(draws)]), draws[0].kwargs)
        for i, draw in enumerate(draws):
            draw.replace_all_uses_with(_inserted(graph, draw, draw, _aten.slice.Tensor, (merged, 0, i, i + 1)))
            graph.erase_node(draw)


def _inserted(graph: Graph, before: Node, like: Node, target, args: tuple, kwargs: dict | None = None) -> Node:
    """A call of ``target`` inserted before ``before``, with ``like``'s meta and its value computed on fake tensors
    (what Inductor's later passes read)."""
    with graph.inserting_before(before):
        node = graph.call_function(target, args, dict(kwargs or {}))
    fake_args = [a.meta["val"] if isinstance(a, Node) else a for a in args]
    with like.meta["val"].fake_mode:
        node.meta.update(like.meta, val=target(*fake_args, **node.kwargs))
    return node
