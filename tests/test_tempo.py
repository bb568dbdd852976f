"""Tempo layers: gradchecks, a BERT model equal to stock after surgery, fewer bytes saved."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from tolerances import assert_within_rounding_scale, gelu_grad_bound
from torch import nn

from pmexp.dropout import dropout
from pmexp.masks import saved_tensor_bytes
from pmexp.tempo import (
    X_MIN,
    Y_MIN,
    TempoGELU,
    TempoLayerNorm,
    TempoSurgeryWarning,
    apply,
    gelu,
    layer_norm,
    softmax_dropout_matmul,
)
from pmexp.tempo.gelu import gelu_input_from_output

transformers = pytest.importorskip("transformers")

VARIANTS = ["standard", "packed_exact", "packed", "seeded"]


def test_gelu_minimum_constants():
    phi = math.exp(-X_MIN * X_MIN / 2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + math.erf(X_MIN / math.sqrt(2)))
    assert abs(cdf + X_MIN * phi) < 1e-15 and Y_MIN == pytest.approx(X_MIN * cdf, abs=1e-16)


def test_gelu_inverse_on_both_branches():
    # below about -5 torch's float64 gelu (0.5 * x * (1 + erf)) itself loses relative precision
    x = torch.cat([torch.linspace(-5, 12, 2001, dtype=torch.float64), torch.tensor([0.0, -1e-9, 1e-9, -0.5, -1.0])])
    x_rec = gelu_input_from_output(F.gelu(x), x >= X_MIN)
    far = (x - X_MIN).abs() > 1e-3  # near the minimum x is ill-conditioned in y (see pmexp.tempo.gelu)
    torch.testing.assert_close(x_rec[far], x[far], rtol=1e-9, atol=1e-300)
    # float32 derivative: torch's rounding of y (2.5 u (|y| + |x|)) conditioned by g''/g' (capped by the
    # square root near the minimum); the bisection itself runs in float64 (tests/tolerances.py)
    x32 = torch.cat([torch.linspace(-12, 12, 4001), X_MIN + torch.linspace(-1e-4, 1e-4, 101)]).requires_grad_()
    (d_tempo,) = torch.autograd.grad(gelu(x32).sum(), x32)
    (d_torch,) = torch.autograd.grad(F.gelu(x32).sum(), x32)
    assert ((d_tempo - d_torch).abs().double() <= gelu_grad_bound(x32.detach(), torch.float32, dy_ulps=2.5)).all()


@pytest.mark.parametrize("packed", [True, False])
def test_gelu_gradcheck(packed):
    x = (torch.randn(2, 17, dtype=torch.float64) * 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: gelu(t, packed), (x,))


def test_layer_norm_gradcheck_and_zero_weight():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(8, dtype=torch.float64) + 3).requires_grad_()
    b = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: layer_norm(x, (8,), w, b, 1e-5), (x, w, b))
    assert torch.autograd.gradcheck(lambda x: layer_norm(x, (3, 8), None, None, 1e-5), (x,))
    with pytest.raises(ValueError, match="equal to 0"):
        layer_norm(x, (8,), w.detach().clone().index_fill_(0, torch.tensor([2]), 0.0).requires_grad_(), b)


@pytest.mark.parametrize("zero", [0.0, -0.0])
def test_layer_norm_device_check_rejects_zero_weight_only(monkeypatch, zero):
    """The check CUDA and torch.compile take (torch._assert_async, which raises at once on CPU):
    a weight entry of +-0 fails it; NaN, inf and tiny entries do not (as ``weight != 0``)."""
    from pmexp.tempo import layernorm

    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    layernorm._check_weight(torch.tensor([1.0, float("nan"), -float("inf"), 1e-45, -2.0]))
    with pytest.raises(RuntimeError, match="equal to 0"):
        layernorm._check_weight(torch.tensor([1.0, zero, 3.0]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_softmax_dropout_matmul_gradcheck_and_identity(variant):
    scores = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    value = torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True)

    def fn(s, v):
        torch.manual_seed(0)  # the same mask on every gradcheck evaluation
        return softmax_dropout_matmul(s, v, 0.3, True, variant)[0]

    assert torch.autograd.gradcheck(fn, (scores, value))
    s, v = scores.detach().float().requires_grad_(), value.detach().float().requires_grad_()
    torch.manual_seed(1)
    out = softmax_dropout_matmul(s, v, 0.3, True, variant)[0]
    torch.manual_seed(1)
    ref = torch.matmul(dropout(torch.softmax(s, -1), 0.3, True, variant), v)
    grad = torch.randn_like(out)
    assert torch.equal(out, ref)
    for a, b in zip(torch.autograd.grad(out, (s, v), grad), torch.autograd.grad(ref, (s, v), grad), strict=True):
        assert torch.equal(a, b)


def test_gelu_then_linear_saves_output_and_bits():
    x = torch.randn(8, 64, 128, requires_grad=True)
    lin = nn.Linear(128, 32)
    params = list(lin.parameters())
    stock = saved_tensor_bytes(lambda: lin(F.gelu(x)), params)
    tempo = saved_tensor_bytes(lambda: lin(TempoGELU()(x)), params)
    n = x.numel()
    assert stock["saved_activation_bytes"] == 2 * 4 * n  # input and output
    assert tempo["saved_activation_bytes"] == 4 * n and tempo["saved_mask_bytes"] == n // 8


def test_attention_keeps_no_dropout_output():
    scores = torch.randn(2, 4, 16, 16, requires_grad=True)
    value = torch.randn(2, 4, 16, 8, requires_grad=True)
    stock = saved_tensor_bytes(lambda: torch.matmul(dropout(torch.softmax(scores, -1), 0.1), value))
    tempo = saved_tensor_bytes(lambda: softmax_dropout_matmul(scores, value, 0.1)[0])
    assert stock["saved_activation_bytes"] - tempo["saved_activation_bytes"] == 4 * scores.numel()
    assert stock["saved_mask_bytes"] == tempo["saved_mask_bytes"] == scores.numel() // 8


def test_attention_hands_nothing_to_pm_drop_off_cuda():
    """The hand-over to PM-Drop's fused attention is CUDA-only (autocast, the bits kernel): on CPU,
    under autocast too, every variant keeps Tempo's own function (its savings are tested above)."""
    from pmexp.dropout.attention_matmul import takes_kernel_path

    query, key = torch.randn(2, 4, 16, 8), torch.randn(2, 4, 16, 8)
    with torch.autocast("cpu", torch.bfloat16):
        assert not any(takes_kernel_path(v, query, key, 0.1) for v in ("packed", "seeded", "standard"))


def test_native_flags_are_a_no_op_off_cuda():
    x = torch.randn(4, 16, dtype=torch.bfloat16, requires_grad=True)
    a, b = gelu(x), gelu(x, native=False)
    assert torch.equal(a, b) and type(a.grad_fn) is type(b.grad_fn)
    w, bias = torch.ones(16, requires_grad=True), torch.zeros(16, requires_grad=True)
    a, b = layer_norm(x.float(), (16,), w, bias), layer_norm(x.float(), (16,), w, bias, native=False)
    assert torch.equal(a, b) and type(a.grad_fn) is type(b.grad_fn)


def tiny_bert(**kw):
    cfg = transformers.BertConfig(
        vocab_size=99, hidden_size=32, max_position_embeddings=64, num_labels=2, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, attn_implementation="eager", **kw,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(cfg)


def batch(seq=16):
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(3, seq, dtype=torch.long)
    mask[0, 10:] = 0
    return dict(input_ids=torch.randint(5, 99, (3, seq), generator=g), attention_mask=mask,
                labels=torch.tensor([0, 1, 1]))


def loss_and_grads(model, seed=5):
    model.train()
    model.zero_grad()
    torch.manual_seed(seed)
    loss = model(**batch()).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_report_and_warning():
    model = tiny_bert()
    report = apply(model, "packed")
    assert report.counts == {"gelu": 2, "layernorm": 4, "attention": 2}
    assert report.attention_implementation == "pmexp_tempo_packed"
    assert sum(isinstance(m, TempoLayerNorm) for m in model.modules()) == 4
    assert model.state_dict().keys() == tiny_bert().state_dict().keys()
    with pytest.warns(TempoSurgeryWarning):
        apply(nn.Sequential(nn.Linear(2, 2)), "packed")


@pytest.mark.parametrize("variant", VARIANTS)
def test_attention_only_is_bitwise_stock(variant):
    stock = tiny_bert()
    model = copy.deepcopy(stock)
    apply(model, variant, kinds=("attention",))
    loss_ref, grads_ref = loss_and_grads(stock)
    loss, grads = loss_and_grads(model)
    assert torch.equal(loss, loss_ref)
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        assert torch.equal(grads[name], grads_ref[name]), name


@pytest.mark.parametrize(("variant", "packed", "p"), [("packed_exact", True, 0.1), ("seeded", False, 0.1),
                                                       ("packed", True, 0.0)])
def test_full_tempo_bert_matches_stock(variant, packed, p):
    stock = tiny_bert(hidden_dropout_prob=p, attention_probs_dropout_prob=p)
    model = copy.deepcopy(stock)
    apply(model, variant, packed)
    loss_ref, grads_ref = loss_and_grads(stock)
    loss, grads = loss_and_grads(model)
    assert torch.equal(loss, loss_ref)  # forward is bit for bit torch's
    assert grads.keys() == grads_ref.keys()
    # backward recovers inputs from outputs: within float32's own error scale (CPU masks are drawn the
    # same in float64, so the float64 stock model is the same computation, exactly rounded)
    _, grads_64 = loss_and_grads(copy.deepcopy(stock).double())
    assert_within_rounding_scale(grads, grads_ref, grads_64, torch.float32)


def test_bert_saves_fewer_bytes():
    stock = tiny_bert()
    model = copy.deepcopy(stock)
    apply(model, "packed")
    inputs = batch()
    measured = {}
    for name, m in (("stock", stock), ("tempo", model)):
        m.train()
        torch.manual_seed(5)
        measured[name] = saved_tensor_bytes(lambda m=m: m(**inputs).loss, m.parameters())
    stock_b, tempo_b = measured["stock"], measured["tempo"]
    print({k: (stock_b[k], tempo_b[k]) for k in stock_b if k.startswith("saved_") and k.endswith("bytes")})
    assert tempo_b["saved_activation_bytes"] < stock_b["saved_activation_bytes"]
    assert tempo_b["saved_total_bytes"] < stock_b["saved_total_bytes"]


@pytest.mark.parametrize("variant", ["packed_exact", "seeded"])
def test_tempo_bert_under_bf16_autocast_matches_stock(variant):
    """Under autocast the softmax runs in fp32 and the matmul in bf16: backward must use the
    matmul's dtype (the H200 run failed here with 'expected scalar type Float but found BFloat16')."""
    stock = tiny_bert()
    model = copy.deepcopy(stock)
    apply(model, variant)
    results = []
    for m, autocast in ((stock, True), (model, True), (copy.deepcopy(stock).double(), False)):
        m.train()
        torch.manual_seed(3)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = m(**batch()).loss
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in m.named_parameters() if p.grad is not None}))
    (loss_ref, grads_ref), (loss, grads), (_, grads_64) = results
    assert torch.equal(loss, loss_ref)
    # bf16 matmuls: within bf16 autocast's own error scale against the float64 stock model
    assert_within_rounding_scale(grads, grads_ref, grads_64, torch.bfloat16)


def test_kernel_lookup_traces_under_fullgraph_compile():
    # On CUDA, gelu and layernorm look their Triton module up inside torch.compile(fullgraph=True);
    # the lookup must be a dict read Dynamo can trace, not a call into importlib (a graph break).
    from pmexp.tempo.lazy import triton_module

    triton_module("kernels")  # imported outside the region, as gelu.py does on CUDA machines

    def scaled(x):
        return x * (2.0 if triton_module("kernels") is not None else 3.0)

    torch._dynamo.reset()
    got = torch.compile(scaled, fullgraph=True, backend="eager")(torch.ones(3))
    assert torch.equal(got, scaled(torch.ones(3)))
