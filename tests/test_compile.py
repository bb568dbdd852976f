"""torch.compile on CPU (CI): every variant traces fullgraph, keeps its saving, and matches eager."""

from __future__ import annotations

import collections
import functools

import pytest
import torch
import torch.nn.functional as F
from conftest import nonzero_randn
from tolerances import scaled_sin_grad_bound, unit_roundoff

from pmexp.dropout import VARIANTS, dropout
from pmexp.dropout.traced import hash_keep
from pmexp.masks import SavedTensorAccounting, packed_saved_masks

P = 0.3
B, H, S, D = 2, 3, 64, 16


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _grads(fn, x, seed=1):
    torch.manual_seed(seed)
    y = fn(x)
    (g,) = torch.autograd.grad(y.sin().sum(), x)
    return y, g


@pytest.mark.parametrize("variant", ["standard", "packed_exact", "packed"])
def test_compiled_matches_eager_bit_for_bit(variant):
    """aot_eager draws the same CPU noise as eager: outputs and gradients are identical."""
    fn = lambda x: dropout(x, P, True, variant)  # noqa: E731
    x = torch.randn(4, 300, requires_grad=True)
    y_eager, g_eager = _grads(fn, x)
    y_comp, g_comp = _grads(torch.compile(fn, fullgraph=True, backend="aot_eager"), x)
    assert torch.equal(y_eager, y_comp) and torch.equal(g_eager, g_comp)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_seeded_gradient_agrees_with_its_own_mask(backend):
    """Compiled `seeded` draws a hash mask (not eager's stream): check the gradient is the one
    of the mask the forward used, and the keep rate."""
    fn = torch.compile(lambda x: dropout(x, P, True, "seeded"), fullgraph=True, backend=backend)
    x = nonzero_randn(64, 257, requires_grad=True)
    y, g = _grads(fn, x)
    keep = y != 0
    assert torch.equal(g == 0, ~keep)
    expected = (x.detach() / (1 - P)).cos() / (1 - P)
    assert ((g - expected)[keep].abs() <= scaled_sin_grad_bound(x.detach(), P)[keep]).all()
    n = x.numel()
    assert abs(keep.sum().item() - n * (1 - P)) < 5 * (n * P * (1 - P)) ** 0.5
    _, g2 = _grads(fn, x, seed=2)
    assert not torch.equal(g, g2)  # the seed comes from torch's generator


def _attention(variant):
    def f(q, k, v):
        probs = (q @ k.transpose(-1, -2) / D**0.5).softmax(-1)
        return (dropout(probs, 0.1, True, variant) @ v).sum()

    return f


def _saved_by_dtype(fn, *args):
    with SavedTensorAccounting() as acct:
        out = fn(*args)
    out.backward()
    return acct.stats()["saved_bytes_by_dtype"]


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_attention_keeps_bits_or_a_seed_instead_of_the_mask(backend):
    """What the partitioner saves for softmax -> dropout -> matmul: `standard` a mask of one byte
    per probability (aot_eager; CPU dropout is float noise in eager), `packed` and `packed_exact` 1 bit
    per probability, `seeded` 8 bytes; the rest is the same up to per-row softmax statistics."""
    qkv = [torch.randn(B, H, S, D, requires_grad=True) for _ in range(3)]
    n = B * H * S * S
    saved = {}
    for variant in VARIANTS:
        fn = torch.compile(_attention(variant), fullgraph=True, backend=backend)
        fn(*qkv).backward()  # compiled outside the accounting
        saved[variant] = _saved_by_dtype(fn, *qkv)
    rest = {k: v for k, v in saved["standard"].items() if k != "bool"}
    assert saved["standard"]["bool"] >= n
    for variant, mask in (("packed", ("uint8", n // 8)), ("packed_exact", ("uint8", n // 8)),
                          ("seeded", ("int64", 8))):
        got = dict(saved[variant])
        assert mask[1] <= got.pop(mask[0]) <= mask[1] + 16, (variant, saved[variant])  # + a 1-byte shift seed
        assert got.get("bool", 0) < n // 8, (variant, saved[variant])  # no probability-sized bool mask
        row_stats = 2 * B * H * S * 4  # Inductor may keep a softmax row statistic or two: 1/S of a mask
        for dtype, nbytes in rest.items():
            assert nbytes <= got.get(dtype, 0) <= nbytes + row_stats, (variant, saved[variant], rest)
        assert set(got) - {"bool"} == set(rest), (variant, saved[variant], rest)


def test_hooks_mode_traces_and_packs_bool_masks():
    """packed_saved_masks around a compiled graph: the bool tensors it saves are stored as bits."""
    def f(x, m):
        return torch.where(m, x.sin(), x).sum()

    x, m = torch.randn(4096, requires_grad=True), torch.rand(4096) > 0.5
    fn = torch.compile(f, fullgraph=True, backend="aot_eager")
    fn(x, m).backward()
    (g_plain,) = torch.autograd.grad(fn(x, m), x)
    with packed_saved_masks(), SavedTensorAccounting(pack_masks=True) as acct:
        out = fn(x, m)
    (g_hooks,) = torch.autograd.grad(out, x)
    assert torch.equal(g_plain, g_hooks)
    assert acct.stats()["saved_bytes_by_dtype"].get("bool", 0) == 0


def test_hash_keep_rate_and_independence():
    seed = torch.tensor([12345])
    keep = hash_keep(seed, torch.Size([1 << 20]), 0.5)
    n = keep.numel()
    assert abs(keep.sum().item() - n / 2) < 5 * (n / 4) ** 0.5
    a, b = keep[:-1].float(), keep[1:].float()
    corr = ((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std())
    assert abs(corr.item()) < 5 / n**0.5  # neighbours uncorrelated
    assert not torch.equal(keep, hash_keep(seed + 1, keep.shape, 0.5))
    assert torch.equal(keep, hash_keep(seed.clone(), keep.shape, 0.5))
    assert hash_keep(seed, torch.Size([1000]), 0.0).all() and not hash_keep(seed, torch.Size([1000]), 1.0).any()


def test_hash_keys_close_together_give_unrelated_masks():
    """Two seeds whose low words are ``d`` apart: with the key only added to the index their masks were
    one mask shifted by ``d``; with the odd multiplier from the high bits the shifted overlap agrees as
    two independent masks do (p^2 + (1-p)^2), unless the multipliers are equal too (chance 2**-28)."""
    shape, d, p = torch.Size([64, 1000]), 12_345, 0.3
    seed = 987_654_321 + (77 << 34)
    a = hash_keep(torch.tensor([seed]), shape, p).flatten()
    b = hash_keep(torch.tensor([seed + d + (5 << 34)]), shape, p).flatten()
    n = a.numel() - d
    agree = (b[:n] == a[d:]).double().mean().item()
    independent = p * p + (1 - p) ** 2
    assert abs(agree - independent) < 5 * (independent * (1 - independent) / n) ** 0.5  # binomial, 5 sigma
    same_multiplier = hash_keep(torch.tensor([seed + d]), shape, p).flatten()
    assert torch.equal(same_multiplier[:n], a[d:])  # the residual case, pinned so the docstring stays true


def test_bad_compiled_dropout_choice_says_what_to_set(monkeypatch):
    monkeypatch.setenv("PMEXP_COMPILED_DROPOUT", "fast")
    fn = torch.compile(lambda x: dropout(x, P, True, "packed"), fullgraph=True, backend="aot_eager")
    with pytest.raises(Exception, match="PMEXP_COMPILED_DROPOUT"):
        fn(torch.randn(10, requires_grad=True))


def test_standard_is_torch_dropout_when_compiled():
    x = torch.randn(100, requires_grad=True)
    fn = torch.compile(lambda x: dropout(x, P, True, "standard"), fullgraph=True, backend="aot_eager")
    torch.manual_seed(3)
    a = fn(x)
    torch.manual_seed(3)
    assert torch.equal(a, F.dropout(x, P))


@functools.cache
def _stand_in_native_bits() -> torch.library.Library:
    """A CPU op standing in for ``pmexp_native::philox_bits`` (C++/CUDA, which no CPU can run): its schema, its
    tag, its output (the bits, then the bytes 0..7) and its registration for tracing (fake kernel, random op)."""
    from pmexp.dropout.native import BIT_DRAWS, register_random_draw
    from pmexp.dropout.traced import draw_bits

    def bits_then_shifts(count: torch.Tensor, p: float) -> torch.Tensor:
        STAND_IN_CALLS[p] += 1
        return torch.cat([draw_bits(count.shape[0], p, count.device), torch.arange(8, dtype=torch.uint8)])

    lib = torch.library.Library("pmexp_test", "FRAGMENT")
    lib.define("bits_then_shifts(Tensor count, float p) -> Tensor", tags=(torch.Tag.nondeterministic_seeded,))
    lib.impl("bits_then_shifts", bits_then_shifts, "CPU")
    torch.library.register_fake("pmexp_test::bits_then_shifts", lib=lib)(
        lambda count, p: count.new_empty(((count.shape[0] + 7) // 8 + 8,), dtype=torch.uint8))
    register_random_draw(torch.ops.pmexp_test.bits_then_shifts)
    BIT_DRAWS.append(torch.ops.pmexp_test.bits_then_shifts.default)  # merged as the C++ op's calls are
    return lib


STAND_IN_CALLS: collections.Counter = collections.Counter()  # the stand-in op's calls, per p


@pytest.fixture
def stand_in_native(monkeypatch):
    """Compiled packed takes its native path (:func:`pmexp.dropout.traced._native_keep`) with the stand-in op."""
    from pmexp.dropout import traced

    _stand_in_native_bits()
    monkeypatch.setattr(traced, "_native_draws", lambda x: True)
    monkeypatch.setattr(traced, "_native_bits", lambda x, p: torch.ops.pmexp_test.bits_then_shifts(
        torch.empty((x.numel(), 0), dtype=torch.uint8, device=x.device), p))


@functools.cache  # each compile takes seconds on a CPU; several tests read the same variant
def _compiled_bert_saved(variant: str, attention: str = "eager", fresh_bits: bool = False, device: str = "cpu",
                         native: bool = False, merged: bool = False) -> dict:
    """What a compiled tiny BERT keeps for backward. ``fresh_bits``: `packed` draws its bits in rows
    of 8 (:func:`pmexp.dropout.traced.draw_bits`, its path without Triton) instead of packing torch's CPU mask.
    ``native``: as on CUDA with the C++ extension, from the stand-in op (the caller patches it in); ``merged``:
    compiled with the variant's Inductor options (the pass merging those draws into one)."""
    transformers = pytest.importorskip("transformers")
    from pmexp.dropout import apply, traced

    if fresh_bits or native:
        original = traced.packed_traced
        traced.packed_traced = lambda x, p, exact=True: original(x, p, exact=False)
        try:
            return _compiled_bert_saved.__wrapped__(variant, attention, device=device, merged=merged)
        finally:
            traced.packed_traced = original

    torch._dynamo.reset()
    cfg = transformers.BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, attn_implementation=attention)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg).train().to(device)
    if variant != "standard":
        apply(model, variant)
    ids, labels = torch.randint(5, 99, (8, 128), device=device), torch.randint(0, 2, (8,), device=device)
    fn = torch.compile(model, options=traced.inductor_options(variant) if merged else None)
    fn(input_ids=ids, labels=labels).loss.backward()
    STAND_IN_CALLS.clear()
    with SavedTensorAccounting(model.parameters()) as acct:
        loss = fn(input_ids=ids, labels=labels).loss
    loss.backward()
    return {**acct.stats(), "draws": sum(STAND_IN_CALLS.values())}


def test_compiled_bert_seeded_keeps_seeds_not_masks():
    """A whole model under Inductor (many dropouts in one graph): `seeded` keeps seeds only and
    otherwise what compiled `standard` keeps, less its masks (regression: a shared int64 index)."""
    standard = _compiled_bert_saved("standard")
    small = 16 * 1024  # Inductor may keep a few small bool tensors (a padding-mask row, ...): not masks
    for seeded in (_compiled_bert_saved("seeded"), _compiled_bert_saved("seeded", merged=True)):  # seeds merged
        assert seeded["saved_mask_bytes"] < small and seeded["saved_bytes_by_dtype"].get("int64", 0) < 64 * 1024
        assert seeded["saved_total_bytes"] < standard["saved_total_bytes"] - standard["saved_mask_bytes"] * 0.9
        # the rest equal up to small tensors whose choice varies by machine (CI: +64 KiB of float32)
        assert abs(seeded["saved_activation_bytes"] - standard["saved_activation_bytes"]) < \
            standard["saved_mask_bytes"] / 8


def test_compiled_bert_packed_keeps_bits_not_randoms():
    """`packed` keeps 1/8 of compiled `standard`'s mask bytes and otherwise the same (regression: a
    scale constant and shift arange shared by every dropout made the partitioner keep float32
    scaled masks, then unpacked uint8 masks, instead of the bits)."""
    standard, packed = _compiled_bert_saved("standard"), _compiled_bert_saved("packed")
    small = 16 * 1024  # as above
    assert packed["saved_bytes_by_dtype"].get("bool", 0) < small
    assert packed["saved_mask_bytes"] <= standard["saved_mask_bytes"] // 8 + small
    assert abs(packed["saved_activation_bytes"] - standard["saved_activation_bytes"]) < standard["saved_mask_bytes"] / 8


def test_compiled_sdpa_bert_routes_its_math_fallback_through_the_variant():
    """Compiled SDPA cannot ask SDPA which kernel it will pick; on the CPU its dropout runs in the math
    path, so the sdpa-routed model keeps what the eager-routed one keeps: bits, not masks."""
    eager, sdpa = _compiled_bert_saved("packed"), _compiled_bert_saved("packed", "sdpa")
    assert sdpa["saved_bytes_by_dtype"].get("bool", 0) < 16 * 1024
    assert sdpa["saved_mask_bytes"] == eager["saved_mask_bytes"] > 0


def test_compiled_bert_packed_fresh_bits_keep_bits_not_randoms():
    """`packed` without Triton draws its bits under compile in rows of 8 (so the randoms never reach
    memory); in a whole model it must keep the same as packing torch's mask: bits, nothing else."""
    packed, fresh = _compiled_bert_saved("packed"), _compiled_bert_saved("packed", fresh_bits=True)
    assert fresh["saved_bytes_by_dtype"] == packed["saved_bytes_by_dtype"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("variant", ["packed", "seeded"])
def test_compiled_bert_on_cuda_keeps_bits_or_seeds_not_masks(variant):
    """On CUDA compiled `packed` draws its bits in an op Inductor cannot look into
    (``pmexp::philox_bits``; the CPU tests above cannot trace it) and `seeded` hashes: the partitioner
    must still keep bits (or seeds) and otherwise what compiled `standard` keeps."""
    standard, other = _compiled_bert_saved("standard", device="cuda"), _compiled_bert_saved(variant, device="cuda")
    small = 16 * 1024  # as above
    assert other["saved_bytes_by_dtype"].get("bool", 0) < small
    assert other["saved_mask_bytes"] <= standard["saved_mask_bytes"] // 8 + small
    assert abs(other["saved_activation_bytes"] - standard["saved_activation_bytes"]) < standard["saved_mask_bytes"] / 8


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_draw_bits_keep_rate_and_gradient(backend):
    from pmexp.dropout.traced import draw_bits, packed_traced

    torch.manual_seed(0)
    bits = torch.compile(lambda: draw_bits(80_003, 0.3, torch.device("cpu")), backend=backend)()
    assert bits.dtype == torch.uint8 and bits.shape == (10_001,)
    from pmexp.masks import unpack_bits

    sigma = (0.3 * 0.7 / 80_003) ** 0.5  # binomial keep rate: 5 sigma fails a correct draw with p < 6e-7
    assert abs(unpack_bits(bits, (80_003,)).double().mean().item() - 0.7) < 5 * sigma
    x = nonzero_randn(64, 129, requires_grad=True)
    y = torch.compile(lambda t: packed_traced(t, 0.3, exact=False), fullgraph=True, backend=backend)(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    keep = y != 0
    # x * fl(keep / 0.7) against x / 0.7: the scale's rounding and one rounding each, 3 u; g is keep / 0.7 itself
    assert torch.allclose(y[keep], x[keep] / 0.7, rtol=3 * unit_roundoff(torch.float32), atol=0)
    assert torch.allclose(g, keep / 0.7, rtol=2 * unit_roundoff(torch.float32), atol=0)  # fl(1 / 0.7) twice


def _realized_probs_buffers(drop, options: dict | None = None) -> list[list[str]]:
    """Per compiled graph (forward, backward) of softmax -> ``drop`` -> matmul, the dtypes of the buffers
    Inductor realizes at the probabilities' size or more (matmul outputs aside), with CUDA's realize
    thresholds forced (torch 2.13 gives the CPU larger ones): the lowering decides this the same way on
    any device, so the CPU sees what CUDA stores."""
    import math

    from torch._inductor import graph as inductor_graph

    found: list[list[str]] = []
    codegen = inductor_graph.GraphLowering.codegen

    def spy(self, *args, **kwargs):
        found.append(sorted(str(b.get_dtype()).removeprefix("torch.") for b in self.buffers
                            if type(b).__name__ == "ComputedBuffer"
                            and math.prod(int(s) for s in b.get_size()) >= H * S * S))
        return codegen(self, *args, **kwargs)

    def attention(q, k, v):
        probs = (torch.matmul(q, k.transpose(-1, -2)) * D**-0.5).softmax(-1)
        return torch.matmul(drop(probs), v)

    q, k, v = (torch.randn(B, H, S, D, requires_grad=True) for _ in range(3))
    cuda_thresholds = {"realize_opcount_threshold": 30, "realize_acc_reads_threshold": 8, "fx_graph_cache": False}
    with (pytest.MonkeyPatch.context() as mp, torch._inductor.config.patch(cuda_thresholds),
          torch._functorch.config.patch(enable_autograd_cache=False)):
        mp.setattr(inductor_graph.GraphLowering, "codegen", spy)
        torch.compile(attention, options=options or None)(q, k, v).sum().backward()
    return found


def test_compiled_packed_stores_what_standard_does_but_its_mask():
    """Packed's fresh-bits path (here rows-of-8 bits; on CUDA the bits come from an op, which the CPU
    cannot trace) with CUDA's thresholds: forward realizes standard's tensors less the bool mask (the
    bits are 1/8 of its size, under this count), backward exactly standard's."""
    from pmexp.dropout.traced import packed_traced

    standard = _realized_probs_buffers(lambda t: dropout(t, P, True, "standard"))
    torch._dynamo.reset()
    packed = _realized_probs_buffers(lambda t: packed_traced(t, P, exact=False))
    assert len(standard) == len(packed) == 2
    assert packed[1] == standard[1], (packed, standard)
    assert sorted([*packed[0], "bool"]) == standard[0], (packed, standard)


def test_compiled_seeded_backward_stores_nothing_standard_does_not():
    """The H200's seq-2048 cells lost most of seeded's saving to one float32 tensor of the attention's
    size that Inductor stored in backward (grad * keep * scale * probs, read twice, more ops than CUDA's
    realize threshold of 30). With seeded's Inductor options its backward realizes what standard's does,
    and without them the stored tensor is there: the check sees the mechanism, not a tuned number."""
    from pmexp.dropout.traced import SEEDED_INDUCTOR_OPTIONS, inductor_options

    assert SEEDED_INDUCTOR_OPTIONS.items() <= inductor_options("seeded").items()
    standard = _realized_probs_buffers(lambda t: dropout(t, P, True, "standard"))
    torch._dynamo.reset()
    seeded = _realized_probs_buffers(lambda t: dropout(t, P, True, "seeded"), inductor_options("seeded"))
    assert len(standard) == len(seeded) == 2  # forward, backward
    assert seeded[1] == standard[1], (seeded, standard)
    assert "bool" in standard[0] and "bool" not in seeded[0] and len(seeded[0]) < len(standard[0])
    torch._dynamo.reset()
    assert len(_realized_probs_buffers(lambda t: dropout(t, P, True, "seeded"))[1]) > len(standard[1])


def _tiny_bert_dropout_bytes(merged: bool = False) -> int:
    """The native op's output bytes (bits, then 8 shifts) summed over _compiled_bert_saved's dropouts: batch 8 x
    128 tokens, hidden 64, 4 heads, 2 layers; embeddings, per layer attention probabilities, attention output and
    feed-forward output, and the classifier's pooled input. ``merged``: one draw for all (8 shifts once)."""
    hidden, probs, pooled = 8 * 128 * 64, 8 * 4 * 128 * 128, 8 * 64
    counts = [hidden, *[probs, hidden, hidden] * 2, pooled]
    return sum((n + 7) // 8 for n in counts) + 8 * (1 if merged else len(counts))


def test_compiled_bert_native_packed_keeps_the_ops_output_alone(stand_in_native):
    """On CUDA with the C++ extension, compiled packed's draw is one op whose output carries the bits and the
    8 shifts: a compiled BERT keeps exactly those outputs for its mask (no unpacked mask, no shift buffer of its
    own) and otherwise what compiled standard keeps."""
    standard, native = _compiled_bert_saved("standard"), _compiled_bert_saved("packed", native=True)
    assert native["saved_bytes_by_dtype"].get("uint8", 0) == _tiny_bert_dropout_bytes()
    assert native["saved_bytes_by_dtype"].get("bool", 0) < 16 * 1024  # as in the tests above: no mask
    assert abs(native["saved_activation_bytes"] - standard["saved_activation_bytes"]) < standard["saved_mask_bytes"] / 8


def test_compiled_bert_merged_draws_keep_one_buffer(stand_in_native):
    """With packed's Inductor options, a compiled BERT's draws are one call (Inductor's own dropouts share one
    seed draw per graph; a call per dropout cost a host-bound MiniLM step 20 dispatches and launches): it keeps
    that call's output alone for its masks, the bits of every dropout and 8 shifts, no unpacked mask (the pass
    keeps the shifts' slices apart: one shared slice made the partitioner save bool masks), otherwise what
    compiled standard keeps."""
    standard, merged = _compiled_bert_saved("standard"), _compiled_bert_saved("packed", native=True, merged=True)
    assert _compiled_bert_saved("packed", native=True)["draws"] == 8 and merged["draws"] == 1
    assert merged["saved_bytes_by_dtype"].get("uint8", 0) == _tiny_bert_dropout_bytes(merged=True)
    assert merged["saved_bytes_by_dtype"].get("bool", 0) < 16 * 1024
    assert abs(merged["saved_activation_bytes"] - standard["saved_activation_bytes"]) < standard["saved_mask_bytes"] / 8


def _three_dropouts(p: tuple[float, float, float], sizes: tuple[int, int, int] = (4097, 1000, 64)):
    """A function of one tensor dropping out three slices of it (one of a length not a multiple of 8)."""
    from pmexp.dropout.traced import packed_traced

    return lambda t: torch.cat([packed_traced(part, q, exact=False) for part, q in zip(t.split(sizes), p, strict=True)])


@pytest.mark.parametrize("dynamic", [False, True])
def test_merged_draws_give_each_dropout_its_own_mask(stand_in_native, dynamic):
    """The merged draw (packed's Inductor options): one call per p a forward (none merged with symbolic counts,
    dynamic shapes), every dropout at its rate with backward using the forward's mask, the dropouts' masks
    unrelated (their slices of the one output do not overlap), and a fresh draw each call."""
    from pmexp.dropout.traced import inductor_options

    p = (0.5, 0.5, 0.25)
    fn = torch.compile(_three_dropouts(p), options=inductor_options("packed"), dynamic=dynamic)
    x = torch.ones(5161, requires_grad=True)
    fn(x)
    STAND_IN_CALLS.clear()
    y = fn(x)
    assert dict(STAND_IN_CALLS) == ({0.5: 2, 0.25: 1} if dynamic else {0.5: 1, 0.25: 1})
    _assert_own_masks(fn, x, y, p)


def _assert_own_masks(fn, x: torch.Tensor, y: torch.Tensor, p: tuple[float, ...], sizes=(4097, 1000, 64)) -> None:
    """``y = fn(x)``, x all ones, three dropouts of its slices (``sizes``; the first two at one p): backward uses the
    forward's mask, each dropout keeps 1 - p (5 sigma), the first two drew unrelated masks, a second call a new one."""
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(g, y)  # x is ones: the output is keep / (1 - p), and so is the gradient
    keep = y != 0
    for q, part in zip(p, keep.split(sizes), strict=True):
        assert abs(1 - part.double().mean().item() - q) < 5 * (q * (1 - q) / part.numel()) ** 0.5
    assert not torch.equal(keep[:1000], keep[sizes[0]:sizes[0] + 1000])  # two dropouts at one p: unrelated masks
    assert not torch.equal(keep, fn(x) != 0)


def test_seeded_seeds_merge_into_one_draw():
    """With seeded's Inductor options its seeds (a randint a dropout, each written by a kernel of its own) are one
    randint a graph, each dropout reading its own element: one draw in the joint graph, unrelated masks at their
    rates, backward using the forward's, and a fresh draw each call."""
    from pmexp.dropout.merged_draws import MERGE_BIT_DRAWS
    from pmexp.dropout.traced import inductor_options

    draws = []

    def counted(graph):  # the pass, then the randint draws left in the joint graph
        MERGE_BIT_DRAWS(graph)
        draws.append([n.args[2] for n in graph.nodes if n.target is torch.ops.aten.randint.low])

    sizes = (4097, 1000, 64)
    fn = torch.compile(lambda t: torch.cat([dropout(part, P, True, "seeded") for part in t.split(sizes)]),
                       options={**inductor_options("seeded"), "joint_custom_pre_pass": counted})
    x = torch.ones(sum(sizes), requires_grad=True)
    y = fn(x)
    assert draws == [[[3]]]
    _assert_own_masks(fn, x, y, (P, P, P), sizes)


@pytest.mark.parametrize("registered", [True, False])
def test_compiled_native_draws_of_one_tensor_stay_two_draws(stand_in_native, monkeypatch, registered):
    """Two dropouts of one tensor draw two masks in a compiled training graph (else SimCSE-style double passes
    would share a mask). AOTAutograd's CSE merges equal calls of any op outside its list of random ops; two things
    keep the draws apart, each enough alone: the op's place on that list, and its input, a fresh ``empty`` per
    call, which that CSE never merges (the control: the op taken off the list)."""
    from torch._functorch import compile_utils

    from pmexp.dropout.traced import packed_traced

    if not registered:
        monkeypatch.setattr(compile_utils, "rand_ops", [op for op in compile_utils.rand_ops
                                                        if op is not torch.ops.pmexp_test.bits_then_shifts])
    x = torch.ones(4096, requires_grad=True)
    a, b = torch.compile(lambda t: (packed_traced(t, 0.5, exact=False), packed_traced(t, 0.5, exact=False)))(x)
    assert not torch.equal(a != 0, b != 0)


def test_native_availability_is_decided_outside_the_trace(monkeypatch):
    """Whether the C++ draw is there is decided once, outside Dynamo's trace (loading may build the extension,
    which Dynamo cannot trace): fullgraph compiles a function that asks, with a load Dynamo would refuse."""
    import io

    from pmexp.dropout import native, traced

    def untraceable_load():
        io.StringIO().write("a build")  # Dynamo graph-breaks on this, which fullgraph makes an error
        return None

    monkeypatch.setattr(native, "load", untraceable_load)
    fn = torch.compile(lambda t: t + 1 if traced._native_bits_available() else t - 1, fullgraph=True, backend="eager")
    assert torch.equal(fn(torch.zeros(3)), -torch.ones(3))
