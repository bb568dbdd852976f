"""Tempo on CUDA (run on the GPU machine; skipped elsewhere): the GELU kernels against stock and the
torch reference, LayerNorm without host syncs, attention for every dropout variant, opcheck, compile."""

import contextlib
import copy
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from tolerances import assert_within_rounding_scale, gelu_grad_bound, ulp_distance
from torch import nn

import pmexp.dropout
from pmexp.dropout import dropout
from pmexp.masks import pack_bits
from pmexp.tempo import X_MIN, TempoGELU, TempoLayerNorm, apply, gelu, softmax_dropout_matmul
from pmexp.tempo.gelu import _gelu_derivative, gelu_input_from_output

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
VARIANTS = ["standard", "packed_exact", "packed", "seeded"]
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]


def grid(dtype: torch.dtype) -> torch.Tensor:
    """Both branches: dense near X_MIN, |x| up to 40, zeros, and 1M normal values (times 3)."""
    x = torch.cat(
        [
            torch.tensor([0.0, -0.0, 1e-30, -1e-30, X_MIN, 5.5, -13.0, 1e4], dtype=torch.float64),
            X_MIN + torch.linspace(-0.02, 0.02, 40001, dtype=torch.float64),
            torch.linspace(-40, 40, 80001, dtype=torch.float64),
            torch.randn(1 << 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3,
        ]
    )
    return x.to(dtype).cuda()


def grads(fn, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    y = fn(x)
    return y.detach(), torch.autograd.grad(y, x, grad)[0]


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_tempo_gelu_matches_stock_and_reference(dtype, packed):
    x = grid(dtype)
    grad = torch.ones_like(x)
    y_ref, dx_stock = grads(F.gelu, x, grad)
    y, dx = grads(TempoGELU(packed), x, grad)
    assert torch.equal(y, y_ref) and dx.dtype == dtype and torch.isfinite(dx).all()
    _, dx_torch_path = grads(lambda t: gelu(t, packed, kernel=False), x, grad)
    dist = (x.double() - X_MIN).abs()
    # the kernel recovers the same x as the float64 bisection, from the same y
    ref = _gelu_derivative(gelu_input_from_output(y, x >= X_MIN))
    if dtype in (torch.float32, torch.float64):  # derived bounds: tests/tolerances.py, tests/test_tempo_kernels.py
        assert ((dx - dx_stock).abs().double() <= gelu_grad_bound(x, dtype, dy_ulps=5)).all()
        assert ((dx.double() - ref).abs() <= gelu_grad_bound(x, dtype, dy_ulps=2.5, eval_ulps=10)).all()
        assert ((dx - dx_torch_path).abs().double() <= gelu_grad_bound(x, dtype, dy_ulps=2.5)).all()
    else:  # the rounding of the 16-bit result, and of y near the minimum (against stock)
        torch.testing.assert_close(dx.double(), ref, rtol=2**-7 if dtype == torch.bfloat16 else 2**-10, atol=1e-5)
        far = dist > 0.5
        torch.testing.assert_close(dx[far], dx_stock[far], rtol=2**-6, atol=2**-7)
        torch.testing.assert_close(dx, dx_torch_path, rtol=2**-7, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("numel", [0, 1, 7, 9, 1023, 1025, (1 << 20) + 3])
def test_branch_bits_and_sizes(dtype, numel):
    from pmexp.tempo import kernels

    x = (torch.randn(numel, device="cuda") * 2).to(dtype)
    bits = kernels.branch_bits(x)
    assert torch.equal(bits, pack_bits(x >= X_MIN))
    x.requires_grad_()
    y, dx = grads(TempoGELU(), x, torch.ones_like(x))
    _, dx_ref = grads(lambda t: gelu(t, kernel=False), x, torch.ones_like(x))
    assert dx.shape == x.shape
    torch.testing.assert_close(dx, dx_ref, rtol=2**-7, atol=4e-4)


def test_all_bfloat16_values():
    x = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16).cuda()
    x = x[x.isfinite()]
    y, dx = grads(TempoGELU(), x, torch.ones_like(x))
    ref = _gelu_derivative(gelu_input_from_output(y, x >= X_MIN))
    torch.testing.assert_close(dx.double(), ref, rtol=2**-8, atol=1e-5)


def every_finite_y(dtype: torch.dtype) -> torch.Tensor:
    """The finite values of a 16-bit dtype, every one (pmexp.tempo.kernels.grad_table has all 65536)."""
    from pmexp.tempo import kernels

    y = kernels.every_16bit_value(dtype, "cuda")
    return y[y.isfinite()]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_table_path_matches_newton_kernel(dtype):
    """The table path (eager default for 16-bit y) against the Newton kernel, at BERT-large's FFN size
    (16 x 512 x 4096, random) plus every finite y on both branches. Tolerance, derived: the table holds
    the Newton kernel's own float32 g' (its dx for a float32 grad of ones, on this GPU) and both kernels
    form grad * g' in float32 and cast once, so they differ only where the compiler evaluates g'
    differently in the two specializations of _bwd_kernel (float32 against 16-bit grad: contraction
    into FMAs may differ), by a few float32 ulps, far below a 16-bit ulp; one monotonic rounding to 16
    bits then lands on the same or the adjacent value: <= 1 16-bit ulp (tests/tolerances.py
    ulp_distance). Prints how many differ at all (pytest -rP shows it)."""
    from pmexp.tempo import kernels

    torch.manual_seed(0)
    x = (torch.randn(16 * 512 * 4096, device="cuda") * 3).to(dtype)
    every = every_finite_y(dtype)
    y = torch.cat([F.gelu(x), every, every])
    right = torch.cat([x >= X_MIN, torch.zeros_like(every, dtype=torch.bool), torch.ones_like(every, dtype=torch.bool)])
    grad = torch.randn(y.shape, device="cuda").to(dtype)
    table = kernels.grad_table(dtype, y.device)
    assert table.device == y.device and kernels.grad_table(dtype, "cuda") is table
    for branch in (pack_bits(right), right):
        dx_table = kernels.backward(grad, y, branch, table=True)
        dx_newton = kernels.backward(grad, y, branch, table=False)
        nan = dx_newton.isnan()
        assert torch.equal(dx_table.isnan(), nan)
        ulps = ulp_distance(dx_table[~nan], dx_newton[~nan])
        print(f"{dtype} {branch.dtype}: {int((ulps > 0).sum())} of {ulps.numel()} differ, max {int(ulps.max())} ulp")
        assert ulps.max() <= 1
    default = kernels.backward(grad, y, right)  # the table, with the bool branch of the last round
    assert torch.equal(default.isnan(), dx_table.isnan()) and torch.equal(default[~nan], dx_table[~nan])


def test_table_build_has_no_host_sync_and_is_not_captured(monkeypatch):
    """Building the table launches the Newton kernel and never syncs; a CUDA graph capture that finds
    no table takes the Newton kernel (a build inside the capture would be recorded, not run), one that
    finds it gathers."""
    from pmexp.tempo import kernels

    y = F.gelu(torch.randn(1 << 16, device="cuda") * 3).to(torch.bfloat16)
    grad, bits = torch.randn_like(y), pack_bits(y >= 0)
    newton = kernels.backward(grad, y, bits, table=False)
    kernels.backward(grad, y, bits, table=True)  # both kernels compiled and loaded
    monkeypatch.setattr(kernels, "_TABLES", {})
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        kernels.backward(grad, y, bits)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(kernels._TABLES) == 1
    kernels._TABLES.clear()
    for built in (False, True):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            dx = kernels.backward(grad, y, bits)
        graph.replay()
        torch.cuda.synchronize()
        assert len(kernels._TABLES) == int(built)
        assert ulp_distance(dx, newton).max() <= (1 if built else 0)  # the bound of the test above
        kernels.grad_table(torch.bfloat16, y.device)


def test_backward_allocates_only_dx():
    x = torch.randn(1 << 24, device="cuda", requires_grad=True)
    y = TempoGELU()(x)
    grad = torch.randn_like(y)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    (dx,) = torch.autograd.grad(y, x, grad)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - base <= dx.numel() * dx.element_size() + (1 << 20)


def test_no_host_sync_in_gelu_and_layer_norm():
    gelu_mod = TempoGELU()
    ln = TempoLayerNorm(64).cuda()
    x = torch.randn(8, 32, 64, device="cuda", requires_grad=True)
    out = ln(gelu_mod(x))  # warm-up: kernels compiled and loaded
    torch.autograd.grad(out, [x, ln.weight, ln.bias], torch.ones_like(out))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = ln(gelu_mod(x))
        torch.autograd.grad(out, [x, ln.weight, ln.bias], torch.ones_like(out))
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_layer_norm_matches_stock_on_cuda(dtype):
    """Output bit for bit; gradients within the rounding scale of stock's own (tests/tolerances.py):
    Tempo's backward recovers x_hat = (y - b) / w from the rounded output, one more evaluation of the
    forward, then runs torch's fused LayerNorm backward on it."""
    torch.manual_seed(0)
    stock = nn.LayerNorm(256).cuda().to(dtype)
    with torch.no_grad():
        stock.weight.add_(torch.randn_like(stock.weight) * 0.1)
        stock.bias.add_(torch.randn_like(stock.bias) * 0.1)
    tempo = TempoLayerNorm.from_layer_norm(copy.deepcopy(stock))
    exact = copy.deepcopy(stock).double()
    x = torch.randn(4, 128, 256, device="cuda", dtype=dtype)
    grad = torch.randn_like(x)
    outs = {}
    for name, m in (("stock", stock), ("tempo", tempo), ("float64", exact)):
        xi = x.clone().to(next(m.parameters()).dtype).requires_grad_()
        y = m(xi)
        dx, dw, db = torch.autograd.grad(y, [xi, m.weight, m.bias], grad.to(y.dtype))
        outs[name] = (y.detach(), {"x": dx, "weight": dw, "bias": db})
    assert torch.equal(outs["stock"][0], outs["tempo"][0])
    assert_within_rounding_scale(outs["tempo"][1], outs["stock"][1], outs["float64"][1], dtype)


def test_layer_norm_zero_weight_fails_on_cuda():
    code = (
        "import torch\nfrom pmexp.tempo import TempoLayerNorm\n"
        "ln = TempoLayerNorm(8).cuda()\n"
        "with torch.no_grad(): ln.weight[3] = 0\n"
        "ln(torch.randn(2, 8, device='cuda', requires_grad=True))\n"
        "torch.cuda.synchronize()\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "assert" in run.stderr.lower(), run.stderr[-2000:]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("dtype", "autocast"),
                         [(torch.float32, False), (torch.bfloat16, False), (torch.float32, True)])
def test_attention_every_variant_matches_composite(variant, dtype, autocast):
    """autocast: float32 softmax and mask, bfloat16 matmuls, as BERT's attention runs under bf16
    autocast; Tempo's backward casts inside the bits kernel where the composite casts around it."""
    scores = torch.randn(2, 4, 64, 64, device="cuda", dtype=dtype, requires_grad=True)
    value = torch.randn(2, 4, 64, 32, device="cuda", dtype=dtype, requires_grad=True)
    torch.manual_seed(1)
    with torch.autocast("cuda", torch.bfloat16, enabled=autocast):
        out = softmax_dropout_matmul(scores, value, 0.2, True, variant)[0]
    torch.manual_seed(1)
    with torch.autocast("cuda", torch.bfloat16, enabled=autocast):
        ref = torch.matmul(dropout(torch.softmax(scores, -1), 0.2, True, variant), value)
    grad = torch.randn_like(out)
    assert torch.equal(out, ref)
    for a, b in zip(
        torch.autograd.grad(out, (scores, value), grad), torch.autograd.grad(ref, (scores, value), grad), strict=True
    ):
        torch.testing.assert_close(a, b)  # the same products, possibly through other cuBLAS kernels


def tiny_bert(transformers):
    cfg = transformers.BertConfig(
        vocab_size=99,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(cfg).cuda().train()


@pytest.mark.parametrize("variant", VARIANTS)
def test_bert_tempo_matches_stock_on_cuda(variant):
    transformers = pytest.importorskip("transformers")
    stock = tiny_bert(transformers)
    model = copy.deepcopy(stock)
    pmexp.dropout.apply(stock, variant)
    report = apply(model, variant)
    assert report.counts == {"gelu": 2, "layernorm": 4, "attention": 2}
    pmexp.dropout.apply(model, variant, targets=("hidden",))
    ids = torch.randint(5, 99, (4, 32), device="cuda")
    labels = torch.tensor([0, 1, 1, 0], device="cuda")
    losses, grads_ = [], []
    for m in (stock, model):
        torch.manual_seed(1)
        loss = m(input_ids=ids, labels=labels).loss
        loss.backward()
        losses.append(loss.detach())
        grads_.append({n: p.grad for n, p in m.named_parameters() if p.grad is not None})
    assert torch.equal(*losses)  # forward is bit for bit stock's, masks included
    assert grads_[0].keys() == grads_[1].keys()
    for name in grads_[0]:
        torch.testing.assert_close(grads_[1][name], grads_[0][name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("variant", ["packed", "seeded"])
def test_attention_hands_fusable_calls_to_pm_drop(variant, monkeypatch):
    """Under bf16 autocast Tempo's attention hands packed/seeded calls to PM-Drop's fused attention: no
    call of its own function, the same loss bit for bit, no more bytes saved for backward, gradients
    bit for bit (attention_matmul.unfused() keeps Tempo's path: the A/B switch)."""
    transformers = pytest.importorskip("transformers")
    from pmexp.dropout import attention_matmul, masked_matmul
    from pmexp.masks import SavedTensorAccounting
    from pmexp.tempo import attention as tempo_attention

    monkeypatch.setattr(masked_matmul, "MIN_PROBABILITIES", 0)  # the tiny model's calls fuse
    own_calls = []
    monkeypatch.setattr(tempo_attention, "softmax_dropout_matmul",
                        lambda *a, **k: own_calls.append(1) or softmax_dropout_matmul(*a, **k))
    model = tiny_bert(transformers)
    apply(model, variant)
    pmexp.dropout.apply(model, variant, targets=("hidden",))
    ids = torch.randint(5, 99, (4, 32), device="cuda")
    labels = torch.tensor([0, 1, 1, 0], device="cuda")
    runs = {}
    for name, context in (("own", attention_matmul.unfused), ("pm_drop", contextlib.nullcontext)):
        model.zero_grad(set_to_none=True)
        own_calls.clear()
        torch.manual_seed(1)
        with context(), SavedTensorAccounting(model.parameters()) as acct, torch.autocast("cuda", torch.bfloat16):
            loss = model(input_ids=ids, labels=labels).loss
        with context():
            loss.backward()
        grads_ = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        runs[name] = (loss.detach(), acct.stats()["saved_total_bytes"], len(own_calls), grads_)
    (own_loss, own_bytes, own_n, own_grads), (loss, saved, n, grads_) = runs["own"], runs["pm_drop"]
    assert (own_n, n) == (2, 0)  # two layers
    assert torch.equal(loss, own_loss)
    assert saved <= own_bytes
    for name in own_grads:  # the same products through the same kernels (masked_matmul's, Tempo's _bits_backward)
        assert torch.equal(grads_[name], own_grads[name]), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck_custom_ops(dtype):
    from pmexp.tempo import kernels  # noqa: F401  (registers the ops)

    x = torch.randn(3000, device="cuda", dtype=dtype)
    y = F.gelu(x)
    grad = torch.randn_like(x)
    torch.library.opcheck(torch.ops.pmexp.tempo_gelu_branch_bits.default, (x,))
    bits = torch.ops.pmexp.tempo_gelu_branch_bits(x)
    torch.library.opcheck(torch.ops.pmexp.tempo_gelu_backward.default, (grad, y, bits))
    torch.library.opcheck(torch.ops.pmexp.tempo_gelu_backward.default, (grad, y, x >= X_MIN))


@pytest.mark.parametrize("packed", [True, False])
def test_compile_fullgraph_tempo_gelu(packed):
    torch._dynamo.reset()
    act = TempoGELU(packed)
    fn = lambda t: act(t) * 2.0  # noqa: E731
    compiled = torch.compile(fn, fullgraph=True)
    x = (torch.randn(4096 + 3, device="cuda") * 3).requires_grad_()
    grad = torch.randn_like(x)
    y, dx = grads(compiled, x, grad)
    y_ref, dx_ref = grads(fn, x, grad)
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-5, atol=1e-5)
