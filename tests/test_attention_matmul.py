"""Eager attention's dropout -> matmul without matmul's copy of the dropped probabilities (CPU; CUDA where present)."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from pmexp.dropout import VARIANTS, apply, dropout, masked_matmul
from pmexp.dropout.attention_matmul import AttentionShims, unfused
from pmexp.masks import SavedTensorAccounting

LAYERS, HEADS, SEQ, BATCH = 2, 4, 64, 4
PM_VARIANTS = [v for v in VARIANTS if v != "standard"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
MIN_PROBABILITIES = masked_matmul.MIN_PROBABILITIES  # the default, before the fixture below


@pytest.fixture(autouse=True)
def fuse_every_size(monkeypatch):
    """These models are tiny; CUDA fuses only from MIN_PROBABILITIES a call (a cost, not a semantic choice)."""
    monkeypatch.setattr(masked_matmul, "MIN_PROBABILITIES", 0)


def _tiny_bert(device: str = "cpu"):
    """A tiny eager-attention BERT classifier in train mode, the same weights every call."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                  intermediate_size=128, attn_implementation="eager")
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(cfg).train().to(device)


def _bert_step(variant: str, fused: bool, autocast: bool, device: str = "cpu", checkpointing: bool = False):
    """Loss, parameter gradients and saved-tensor stats of one step of a tiny eager BERT."""
    model = _tiny_bert(device)
    if variant != "standard":
        apply(model, variant)
    if checkpointing:  # as memory=checkpointing does: each layer's saved tensors unpack only once
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ids = torch.randint(5, 99, (BATCH, SEQ), device=device)
    labels = torch.randint(0, 2, (BATCH,), device=device)
    torch.manual_seed(1)
    if device == "cuda":
        torch.cuda.manual_seed(1)
    with contextlib.ExitStack() as stack:
        if not fused:  # backward too: checkpointing recomputes the forward there, and must match it
            stack.enter_context(unfused())
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            with SavedTensorAccounting(model.parameters()) as acct:
                loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
    return loss.detach(), [p.grad for p in model.parameters()], acct.stats()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("variant", PM_VARIANTS)
def test_fused_gradients_are_the_unfused_ones_and_one_tensor_per_layer_is_gone(variant, autocast, device):
    """Same masks (same seed), same arithmetic: identical loss and gradients; the saved bytes drop by
    exactly matmul's operand copy, layers x batch x heads x seq^2 elements of the matmul's dtype."""
    loss_u, grads_u, saved_u = _bert_step(variant, False, autocast, device)
    loss_f, grads_f, saved_f = _bert_step(variant, True, autocast, device)
    assert torch.equal(loss_u, loss_f)
    assert all(torch.equal(a, b) for a, b in zip(grads_u, grads_f, strict=True))
    operand = 2 if autocast else 4  # bytes: the bf16 copy autocast's matmul keeps, else float32
    copy = LAYERS * BATCH * HEADS * SEQ * SEQ * operand
    # CUDA fuses only where its kernels make it free: packed and seeded, folding autocast's cast
    if device == "cuda" and (variant == "packed_exact" or not autocast):
        copy = 0
    assert saved_u["saved_total_bytes"] - saved_f["saved_total_bytes"] == copy


def test_packed_exact_fused_is_still_torch_dropout_bit_for_bit():
    loss_s, grads_s, _ = _bert_step("standard", False, False)
    loss_f, grads_f, _ = _bert_step("packed_exact", True, False)
    assert torch.equal(loss_s, loss_f) and all(torch.equal(a, b) for a, b in zip(grads_s, grads_f, strict=True))


def _probs_and_value():
    torch.manual_seed(2)
    scores = torch.randn(2, 3, 8, 8, requires_grad=True)
    value = torch.randn(2, 3, 8, 5, requires_grad=True)
    return scores, value


@pytest.mark.parametrize("variant", PM_VARIANTS)
def test_dropped_probabilities_used_again_still_get_their_gradient(variant):
    """The weights handed out (output_attentions) keep their own gradient path: used in the loss too,
    they add their share (or backward raises, where the dropout's node was freed first: never silent),
    equal to the unfused gradient up to the order of one addition."""
    grads = []
    for fused in (False, True):
        scores, value = _probs_and_value()
        probs = scores.softmax(-1)
        torch.manual_seed(3)
        if fused:
            shims = AttentionShims(variant)
            dropped = shims.dropout(probs, 0.3, True)
            out = shims.matmul(dropped, value)
            assert type(out.grad_fn).__name__ == "_DroppedMatmulBackward"
        else:
            dropped = dropout(probs, 0.3, True, variant)
            out = torch.matmul(dropped, value)
        (out.sin().sum() + (dropped * dropped).sum()).backward()
        grads.append((scores.grad, value.grad))
    assert torch.equal(grads[0][1], grads[1][1])  # value's: the same dropped operand, the same matmul
    # probs' two gradients meet before the mask (unfused: (a + b) * m * s) or after it (fused:
    # a * m * s + b * m * s): a rounding or two per element, then softmax's backward (rows of
    # p * (g - sum(g * p)): at most 2x in size). 8 float32 eps of the largest gradient bounds it.
    bound = 8 * torch.finfo(torch.float32).eps * grads[0][0].abs().max().item()
    assert (grads[0][0] - grads[1][0]).abs().max().item() <= bound


def test_only_a_dropout_straight_into_matmul_is_fused():
    scores, value = _probs_and_value()
    probs = scores.softmax(-1)
    shims = AttentionShims("packed")
    zeros = shims.matmul(shims.dropout(probs, 1.0, True), value)  # p = 1: torch's zeros, nothing to replay
    assert type(zeros.grad_fn).__name__ != "_DroppedMatmulBackward" and not zeros.any()
    zeros.sum().backward()
    assert type(shims.matmul(probs, value).grad_fn).__name__ != "_DroppedMatmulBackward"  # no dropout before
    dropped = shims.dropout(probs, 0.3, True)
    assert type(shims.matmul(dropped * 2, value).grad_fn).__name__ != "_DroppedMatmulBackward"  # not its output
    assert shims.dropout(probs, 0.3, False) is probs and shims._pending is None  # eval: nothing to fuse
    with torch.no_grad():
        shims.dropout(probs, 0.3, True)
    assert shims._pending is None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("variant", PM_VARIANTS)
def test_fused_under_activation_checkpointing(variant, autocast, device):
    """Recomputed layers unpack each saved tensor once (the general path runs the dropout's node once);
    on CUDA the kernel path's recomputed forward (autocast restored by checkpoint) draws the same seed."""
    loss_u, grads_u, _ = _bert_step(variant, False, autocast, device, checkpointing=True)
    loss_f, grads_f, _ = _bert_step(variant, True, autocast, device, checkpointing=True)
    assert torch.equal(loss_u, loss_f) and all(torch.equal(a, b) for a, b in zip(grads_u, grads_f, strict=True))


def test_a_python_dropout_node_is_anchored_outside_backward_graph():
    """On torch 2.11 a Python Function's node dies with its last output, freeing its saved mask: the
    fused matmul holds a tiny tensor whose graph reaches it, and not as an input (the engine would
    then run the node a second time)."""
    from pmexp.dropout.attention_matmul import _node_anchor

    scores, value = _probs_and_value()
    probs = scores.softmax(-1)
    dropped = dropout(probs, 0.3, True, "packed_exact")  # a Python Function on the CPU
    anchor = _node_anchor(dropped)
    reached, frontier = set(), [anchor.grad_fn]
    while frontier:
        node = frontier.pop()
        if node is not None and id(node) not in reached:
            reached.add(id(node))
            frontier.extend(next_node for next_node, _ in node.next_functions)
    assert id(dropped.grad_fn) in reached and anchor.numel() == 1
    fused = AttentionShims("packed_exact")
    out = fused.matmul(fused.dropout(probs, 0.3, True), value)
    inputs = {id(next_node) for next_node, _ in out.grad_fn.next_functions if next_node is not None}
    assert len(inputs) == 2  # probs' (softmax) and value's nodes: no edge to the dropout's


def test_the_kernel_path_fuses_only_where_autocast_casts_and_the_call_is_large(monkeypatch):
    """Its backward folds autocast's cast into the rebuild; without a cast the rebuild is an extra pass
    (slower than unfused), and below MIN_PROBABILITIES a call the fused path's host cost is not hidden:
    CUDA attention takes the shims only where both hold (the CPU's general path fuses regardless)."""
    from pmexp.dropout.attention_matmul import may_fuse
    from pmexp.dropout.masked_matmul import folds_a_cast

    monkeypatch.setattr(masked_matmul, "MIN_PROBABILITIES", MIN_PROBABILITIES)
    probs = torch.rand(2, 3)
    assert not folds_a_cast(probs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert folds_a_cast(probs) and not folds_a_cast(probs.bfloat16())
    # BERT-large S512 B16 attention (16 x 16 x 512 x 512 = 67M a call) fuses; MiniLM S128 B32 (6.3M) does not
    meta = dict(device="meta", dtype=torch.bfloat16)
    large = torch.empty(16, 16, 512, 64, **meta), torch.empty(16, 16, 512, 64, **meta)
    small = torch.empty(32, 12, 128, 32, **meta), torch.empty(32, 12, 128, 32, **meta)
    assert may_fuse(*small) and may_fuse(*large)  # not CUDA tensors: the general path, any size
    assert 16 * 16 * 512 * 512 >= MIN_PROBABILITIES > 32 * 12 * 128 * 128
    if torch.cuda.is_available():
        large, small = ([torch.empty(t.shape, device="cuda", dtype=t.dtype) for t in pair] for pair in (large, small))
        assert not may_fuse(*large)  # no autocast: nothing to fold
        with torch.autocast("cuda", dtype=torch.bfloat16):
            assert may_fuse(*large) and not may_fuse(*small)
            assert folds_a_cast(torch.rand(2, 3, device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the kernel path is CUDA's")
@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("variant", ["packed", "seeded"])
def test_cuda_packed_and_seeded_take_the_kernel_path_under_autocast(variant, autocast):
    """Under autocast the matmul keeps the mask itself (bits or seed) and rebuilds its operand by one
    kernel; in fp32 (nothing to fold) dropout and matmul stay torch's plain pair."""
    scores, value = (t.detach().cuda().requires_grad_() for t in _probs_and_value())
    shims = AttentionShims(variant)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        out = shims.matmul(shims.dropout(scores.softmax(-1), 0.3, True), value)
    fused = type(out.grad_fn).__name__ == "_MaskedMatmulBackward"
    assert fused == autocast
    out.float().sum().backward()
    assert scores.grad is not None and value.grad is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs")
@pytest.mark.parametrize("variant", ["packed", "seeded"])
def test_cuda_graph_replays_of_the_kernel_path_draw_fresh_masks(variant):
    """Graphed, the fused path draws its seed on the device: a fresh mask each replay, and backward
    (value = identity, so the output is the dropped probabilities) uses that replay's mask."""
    seq = 256
    probs = (torch.rand(2, 4, seq, seq, device="cuda") + 0.5).requires_grad_(True)
    value = torch.eye(seq, device="cuda").expand(2, 4, seq, seq).contiguous().requires_grad_(True)

    def attention(probs, value):
        shims = AttentionShims(variant)
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):  # the fused path's condition
            out = shims.matmul(shims.dropout(probs, 0.25, True), value)
        assert type(out.grad_fn).__name__ == "_MaskedMatmulBackward"
        return out

    graphed = torch.cuda.make_graphed_callables(attention, (probs, value))
    masks = []
    for _ in range(3):
        p_in = probs.detach().clone().requires_grad_(True)
        out = graphed(p_in, value)
        out.backward(torch.ones_like(out))
        assert torch.equal(out != 0, p_in.grad != 0)  # backward used this replay's forward mask
        masks.append((out != 0).clone())
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])


def test_apply_without_the_fusion_keeps_the_matmul_copy():
    """apply(..., fuse_attention_matmul=False) measures the variant alone: the saved bytes of unfused()."""
    def saved(fuse: bool) -> tuple[int, object]:
        model = _tiny_bert()
        report = apply(model, "packed", fuse_attention_matmul=fuse)
        ids = torch.randint(5, 99, (BATCH, SEQ))
        with SavedTensorAccounting(model.parameters()) as acct:
            loss = model(input_ids=ids, labels=torch.zeros(BATCH, dtype=torch.long)).loss
        del loss
        return acct.stats()["saved_total_bytes"], report

    (fused, report_f), (plain, report_u) = saved(True), saved(False)
    assert report_f.fused_attention_matmul and not report_u.fused_attention_matmul
    assert report_u.attention_implementation.endswith("_unfused") and "fused" in str(report_f)
    assert plain - fused == LAYERS * BATCH * HEADS * SEQ * SEQ * 4  # the float32 copy per layer


def _einsum_attention(module, query, key, value, attention_mask, dropout: float = 0.0, **kwargs):
    weights = F.dropout(torch.einsum("bhqd,bhkd->bhqk", query, key).softmax(-1), p=dropout, training=True)
    return torch.einsum("bhqk,bhkd->bhqd", weights, value), weights


def test_an_attention_without_torch_matmul_keeps_nothing_after_the_call():
    """Its dropout is the variant's, unfused: nothing holds its probabilities for a matmul that never comes."""
    from pmexp.dropout.surgery import _rebound_attention

    rebound = _rebound_attention(_einsum_attention, "packed", True)
    q = torch.randn(1, 2, 8, 4, requires_grad=True)
    out, weights = rebound(None, q, q, q, None, dropout=0.5)
    assert weights.grad_fn is not None and out.shape == q.shape
    holder = getattr(rebound.__globals__["F"].dropout, "__self__", None)  # AttentionShims, where used
    assert holder is None or holder._pending is None


def _matmul_then_einsum_attention(module, query, key, value, attention_mask, dropout: float = 0.0, **kwargs):
    weights = F.dropout(torch.matmul(query, key.transpose(-1, -2)).softmax(-1), p=dropout, training=True)
    return torch.einsum("bhqk,bhkd->bhqd", weights, value), weights


def test_a_dropout_no_matmul_takes_is_let_go_at_the_end_of_the_call():
    from pmexp.dropout.surgery import _rebound_attention

    rebound = _rebound_attention(_matmul_then_einsum_attention, "packed", True)
    q = torch.randn(1, 2, 8, 4, requires_grad=True)
    rebound(None, q, q, q, None, dropout=0.5)
    held = [c.cell_contents for c in rebound.__closure__ if isinstance(c.cell_contents, AttentionShims)]
    assert len(held) == 1 and held[0]._pending is None
