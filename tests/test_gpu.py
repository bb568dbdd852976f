"""CUDA checks (run on the GPU machine; skipped elsewhere): exactness, kernels, opcheck, compile."""

import copy
import math

import pytest
import torch
from conftest import nonzero_randn
from tolerances import scaled_sin_grad_bound
from torch import nn

from pmexp.dropout import PackedDropout, apply, dropout
from pmexp.masks import pack_bits, packed_saved_masks, saved_tensor_bytes, unpack_bits
from pmexp.masks.bits import pack_bits_torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


def fwd_bwd(module, x, seed=0):
    x = x.detach().clone().requires_grad_(True)
    torch.manual_seed(seed)
    y = module(x)
    y.backward(torch.ones_like(y) * 0.5 + x.detach())
    return y.detach(), x.grad


@pytest.mark.parametrize("numel", [0, 1, 7, 9, 1000, 1 << 20, (1 << 20) + 3])
def test_triton_pack_matches_torch_on_cuda(numel):
    mask = torch.rand(numel, device="cuda") < 0.3
    packed = pack_bits(mask)
    assert torch.equal(packed, pack_bits_torch(mask))
    assert torch.equal(unpack_bits(packed, mask.shape), mask)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("shape", [(), (0,), (3, 1000, 7), (65, 33)])
def test_packed_exact_bit_identical_on_cuda(dtype, p, shape):
    x = torch.randn(shape, device="cuda").to(dtype)
    y_ref, g_ref = fwd_bwd(nn.Dropout(p), x)
    y, g = fwd_bwd(PackedDropout(p, "packed_exact"), x)
    assert y.dtype == dtype and torch.equal(y, y_ref) and torch.equal(g, g_ref)


@pytest.mark.parametrize("variant", ["packed", "seeded"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_fused_variants_statistics_and_consistency(variant, dtype, p):
    n = 1 << 22
    x = (torch.randn(n, device="cuda").abs() + 0.5).to(dtype).requires_grad_(True)
    y = dropout(x, p, True, variant)
    assert y.dtype == dtype
    keep = y != 0
    rate = 1 - keep.double().mean().item()
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n)
    expected = (x.detach().to(torch.float32 if dtype != torch.float64 else dtype) * (1.0 / (1.0 - p))).to(dtype)
    if dtype == torch.float64:  # the kernel's scale argument is rounded to fp32
        # fp32(1 / (1 - p)) is off by <= u32; the products, one fp64 rounding each
        torch.testing.assert_close(y[keep], expected[keep], rtol=2**-24 + 2 * 2**-53, atol=0)
    else:
        assert torch.equal(y[keep], expected[keep])  # the same arithmetic as torch's native_dropout
    (g,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert torch.equal(g != 0, keep)


@pytest.mark.parametrize("variant", ["packed_exact", "packed", "seeded", "standard"])
def test_bytes_saved_on_cuda(variant):
    n = 1 << 20
    x = torch.randn(n, device="cuda", requires_grad=True)
    stats = saved_tensor_bytes(lambda: dropout(x, 0.1, True, variant))
    expected = {"standard": n, "packed_exact": n // 8, "packed": n // 8, "seeded": 0}[variant]
    assert stats["saved_mask_bytes"] == expected
    assert stats["saved_rng_bytes"] == 0  # eager seeds are Python ints


def test_hook_mode_packs_cuda_dropout_mask():
    n = 1 << 20
    x = torch.randn(n, device="cuda", requires_grad=True)
    stats = saved_tensor_bytes(lambda: nn.functional.dropout(x, 0.1), pack_masks=True)
    assert stats["saved_mask_bytes"] == n // 8
    torch.manual_seed(0)
    with packed_saved_masks():
        y = nn.functional.dropout(x, 0.1)
    (g,) = torch.autograd.grad(y, x, torch.ones_like(y))
    torch.manual_seed(0)
    (g_ref,) = torch.autograd.grad(nn.functional.dropout(x, 0.1), x, torch.ones_like(y))
    assert torch.equal(g, g_ref)


@pytest.mark.parametrize("variant", ["packed", "seeded"])
@pytest.mark.parametrize("reentrant", [True, False])
def test_checkpointing_replays_the_fused_mask(variant, reentrant):
    from torch.utils.checkpoint import checkpoint

    lin = nn.Linear(64, 64).cuda()
    drop = PackedDropout(0.3, variant)
    x = torch.randn(32, 64, device="cuda", requires_grad=True)
    grads = []
    for use in (False, True):
        x.grad = None
        torch.manual_seed(4)
        fn = lambda t: drop(torch.tanh(lin(t)))  # noqa: E731
        out = checkpoint(fn, x, use_reentrant=reentrant) if use else fn(x)
        out.pow(2).sum().backward()
        grads.append(x.grad.clone())
    assert torch.equal(*grads)


def test_opcheck_custom_ops():
    from pmexp.dropout import kernels  # noqa: F401  (registers the ops)

    x = torch.randn(3000, device="cuda")
    seed = torch.tensor([7], device="cuda")
    torch.library.opcheck(torch.ops.pmexp.fused_dropout.default, (x, seed, 0.2, True))
    torch.library.opcheck(torch.ops.pmexp.fused_dropout.default, (x, seed, 0.2, False))
    bits = torch.ops.pmexp.fused_dropout(x, seed, 0.2, True)[1]
    torch.library.opcheck(torch.ops.pmexp.bits_dropout_backward.default, (x, bits, 0.2))
    torch.library.opcheck(torch.ops.pmexp.philox_bits.default, (seed, 3000, 0.2))
    assert torch.equal(torch.ops.pmexp.philox_bits(seed, 3000, 0.2), bits)  # the fused forward's stream


def test_compiled_packed_draws_fresh_bits_each_call(compiled_draw):
    """Compiled `packed` on CUDA draws its bits with ``pmexp_native::philox_bits`` (or ``pmexp::philox_bits``
    from a seed drawn in the graph): each call a new mask, kept at 1 - p."""
    torch._dynamo.reset()
    fn = torch.compile(lambda t: dropout(t, 0.3, True, "packed"), fullgraph=True)
    x = torch.ones(1 << 20, device="cuda")
    first, second = fn(x) != 0, fn(x) != 0
    sigma = (0.3 * 0.7 / x.numel()) ** 0.5  # binomial keep rate: 5 sigma fails a correct draw with p < 6e-7
    assert abs(first.double().mean().item() - 0.7) < 5 * sigma
    assert not torch.equal(first, second)


def test_compiled_packed_fresh_bits_with_dynamic_shapes(compiled_draw):
    """Unpadded batches change shape from step to step, and Dynamo then compiles with symbolic sizes:
    ``pmexp::philox_bits`` gets a symbolic element count (its grid too). Mask and gradient agree."""
    torch._dynamo.reset()
    fn = torch.compile(lambda t: dropout(t, 0.3, True, "packed"), fullgraph=True, dynamic=True)
    for rows in (37, 64, 129):
        x = nonzero_randn(rows, 1000, device="cuda", requires_grad=True)
        y = fn(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        keep = y != 0
        assert torch.equal(g != 0, keep)
        sigma = (0.3 * 0.7 / x.numel()) ** 0.5
        assert abs(keep.double().mean().item() - 0.7) < 5 * sigma


@pytest.mark.parametrize("variant", ["packed_exact", "packed", "seeded"])
def test_inductor_compile_fullgraph(variant):
    torch._dynamo.reset()
    fn = lambda x: dropout(x, 0.3, True, variant).sin()  # noqa: E731
    compiled = torch.compile(fn, fullgraph=True)
    x = nonzero_randn(4096, device="cuda", requires_grad=True)
    y = compiled(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    keep = y != 0
    expected = (x.detach() / 0.7).cos() / 0.7  # d/dx sin(x / (1 - p)) where kept
    assert ((g - expected)[keep].abs() <= scaled_sin_grad_bound(x.detach(), 0.3)[keep]).all()
    assert torch.equal(g == 0, ~keep)


def test_bert_packed_exact_identical_on_cuda():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, attn_implementation="eager")
    torch.manual_seed(0)
    stock = transformers.BertForSequenceClassification(cfg).cuda().train()
    model = copy.deepcopy(stock)
    assert apply(model, "packed_exact").attention_covered
    ids = torch.randint(5, 99, (4, 32), device="cuda")
    labels = torch.tensor([0, 1, 1, 0], device="cuda")
    losses = []
    for m in (stock, model):
        torch.manual_seed(1)
        loss = m(input_ids=ids, labels=labels).loss
        loss.backward()
        losses.append(loss.detach())
    assert torch.equal(*losses)
    for a, b in zip(stock.parameters(), model.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("head", [26, 64])
@pytest.mark.parametrize("compiled", [False, True])
def test_sdpa_routing_keeps_no_attention_mask_on_cuda(head, compiled):
    """SDPA on CUDA, bf16, padding in the batch: the routed `seeded` model keeps no attention mask, where
    SDPA fuses (head size 64: no mask) and where it would not (26: eager attention with seeded dropout
    instead of SDPA's math path, whose bool mask compiled stock keeps per layer)."""
    transformers = pytest.importorskip("transformers")
    from pmexp.masks import SavedTensorAccounting

    cfg = transformers.BertConfig(vocab_size=99, hidden_size=4 * head, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, hidden_dropout_prob=0.0, attn_implementation="sdpa")
    ids = torch.randint(5, 99, (4, 128), device="cuda")
    mask = torch.ones_like(ids)
    mask[0, 100:] = 0
    saved = {}
    for variant in ("standard", "seeded"):
        torch._dynamo.reset()
        torch.manual_seed(0)
        model = transformers.BertForSequenceClassification(cfg).cuda().train()
        apply(model, variant)
        fn = torch.compile(model) if compiled else model
        for _ in range(2):  # the first call compiles
            with SavedTensorAccounting(model.parameters()) as acct, torch.autocast("cuda", torch.bfloat16):
                loss = fn(input_ids=ids, attention_mask=mask, labels=ids[:, 0] % 2).loss
            loss.backward()
        saved[variant] = acct.stats()["saved_bytes_by_dtype"].get("bool", 0)
    probs = 4 * 4 * 128 * 128  # batch x heads x seq x seq: one layer's bool mask
    assert saved["seeded"] < probs, saved
    if head == 26 and compiled:  # compiled stock SDPA runs the math path here (runs/2026-11-28-compile)
        assert saved["standard"] >= 2 * probs, saved


@pytest.mark.parametrize("variant", ["packed", "seeded"])
def test_compiled_kernels_launch_statically(variant):
    """Every Triton kernel of a compiled BERT step with the variant's Inductor options gets Inductor's static
    launcher (its C++ launch; else Triton's Python launcher, 8 more Python calls a launch). It finds a kernel's
    binary by the kernel's whole name, which Triton stores cut to 150 characters: seeded's hash fused into layer
    norms made names of up to 170 (pmexp.dropout.traced.SHORT_KERNEL_NAMES)."""
    transformers = pytest.importorskip("transformers")
    from torch._inductor.runtime import triton_heuristics
    from torch._inductor.utils import fresh_cache

    from pmexp.dropout.traced import inductor_options

    if not (getattr(torch._inductor.config, "use_static_triton_launcher", False)
            and hasattr(triton_heuristics, "StaticTritonCompileResult")):
        pytest.skip("this torch's Inductor has no static launcher")
    static_launch = triton_heuristics.StaticTritonCompileResult.can_statically_launch
    launched: dict[str, bool] = {}

    def recorded(kernel, *args):
        result = static_launch(kernel, *args)
        launched[kernel.src.fn.__name__] = result is not None
        return result

    cfg = transformers.BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, attn_implementation="eager")
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg).cuda().train()
    apply(model, variant)
    ids = torch.randint(5, 99, (4, 32), device="cuda")
    torch._dynamo.reset()
    # compile_threads=1: kernels compile in this process, where the wrapper sees them; a fresh cache: compiled now
    with fresh_cache(), torch._inductor.config.patch(compile_threads=1), pytest.MonkeyPatch.context() as patch:
        patch.setattr(triton_heuristics.StaticTritonCompileResult, "can_statically_launch", staticmethod(recorded))
        fn = torch.compile(model, options=inductor_options(variant))
        fn(input_ids=ids, labels=ids[:, 0] % 2).loss.backward()
    assert len(launched) >= 10, launched  # forward and backward kernels seen
    assert all(launched.values()), sorted(name for name, static in launched.items() if not static)
