"""The C++/CUDA path (pmexp.dropout.native) against the Triton kernels, dropout-add, and CUDA graphs.

GPU only (skipped elsewhere). The native and Triton kernels draw the same stream from the same seed,
so every comparison here is bit for bit; CUDA-graph tests check a fresh mask per replay and a backward
that uses the forward's mask, for both backends.
"""

import math

import pytest
import torch
from conftest import nonzero_randn
from torch import nn

from pmexp.dropout import PackedDropout, apply, dropout, dropout_add, native
from pmexp.dropout import functional as fn

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
SIZES = [1, 7, 31, 33, 4095, 4097, 100_003, 1 << 20]


@pytest.fixture(scope="module")
def ext():
    module = native.load()
    if module is None:
        pytest.fail(f"the native extension did not build here: {native.why_not()}")
    return module


def triton_kernels():
    from pmexp.dropout import kernels

    return kernels


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_native_kernels_equal_triton(ext, dtype, n, p):
    x = torch.randn(n, device="cuda").to(dtype)
    g = torch.randn(n, device="cuda").to(dtype)
    y, bits = ext.raw_forward(x, 1234567, p, True)
    y_t, bits_t = triton_kernels().forward(x, 1234567, p, True)
    assert torch.equal(y, y_t) and torch.equal(bits, bits_t)
    assert torch.equal(ext.raw_backward(g, bits, p), triton_kernels().backward(g, bits, p))


def forward_backward(function, x, seed):
    x = x.detach().clone().requires_grad_(True)
    torch.manual_seed(seed)
    y = function(x)
    y.backward(torch.arange(y.numel(), device="cuda", dtype=y.dtype).view_as(y) % 7 + 1)  # no zeros
    return y.detach(), x.grad


@pytest.mark.parametrize("variant", ["packed", "seeded"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_autograd_equals_triton_path(ext, variant, dtype):
    """Same torch seed, same CPU generator draw: the native and Triton paths give the same output and gradient,
    on a non-contiguous input with a non-contiguous gradient."""
    x = nonzero_randn(64, 96, device="cuda", dtype=dtype).t()
    triton_fn = fn._FusedPacked.apply if variant == "packed" else fn._SeededCuda.apply
    y_t, g_t = forward_backward(lambda v: triton_fn(v, 0.3), x, seed=5)
    y_n, g_n = forward_backward(lambda v: dropout(v, 0.3, True, variant), x, seed=5)
    assert torch.equal(y_n, y_t) and torch.equal(g_n, g_t)
    assert torch.equal(g_n != 0, y_n != 0)  # backward uses the forward's mask


@pytest.mark.parametrize("variant", ["standard", "packed_exact", "packed", "seeded"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_add_equals_unfused(ext, variant, dtype):
    x = torch.randn(8, 128, 64, device="cuda").to(dtype).requires_grad_(True)
    r = torch.randn(8, 128, 64, device="cuda").to(dtype).requires_grad_(True)
    g = torch.randn(8, 128, 64, device="cuda").to(dtype)
    results = []
    for fused in (True, False):
        torch.manual_seed(11)
        out = dropout_add(x, r, 0.2, True, variant) if fused else dropout(x, 0.2, True, variant) + r
        dx, dr = torch.autograd.grad(out, (x, r), g)
        results.append((out, dx, dr))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def graph_nodes(tensor: torch.Tensor, name: str) -> int:
    """How many nodes of ``tensor``'s autograd graph have ``name`` in their name."""
    seen, stack, count = set(), [tensor.grad_fn], 0
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        count += name in node.name()
        stack += [next_node for next_node, _ in node.next_functions]
    return count


@pytest.mark.parametrize("variant", ["packed", "seeded"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_dropout_add_with_a_float32_residual_is_fused_and_equals_unfused(ext, variant, dtype):
    """Under autocast BERT adds a half-type dropout output to a float32 residual (from LayerNorm): fused, the sum
    is float32 as torch promotes it, and the output and both gradients equal the unfused expression's bit for bit."""
    x = torch.randn(8, 128, 64, device="cuda").to(dtype).requires_grad_(True)
    r = torch.randn(8, 128, 64, device="cuda").requires_grad_(True)
    g = torch.randn(8, 128, 64, device="cuda")
    results = []
    for fused in (True, False):
        torch.manual_seed(11)
        out = dropout_add(x, r, 0.2, True, variant) if fused else dropout(x, 0.2, True, variant) + r
        assert graph_nodes(out, "DropoutAdd") == int(fused)  # the fused node ran, not the fallback
        dx, dr = torch.autograd.grad(out, (x, r), g)
        results.append((out, dx, dr))
    for a, b in zip(*results, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert results[0][0].dtype == torch.float32 and results[0][1].dtype == dtype


def test_native_is_what_runs(ext):
    assert native.backend() == "native"


def step_masks(fn, x, steps):
    """Run ``fn`` (forward and backward) ``steps`` times on copies of ``x``; per step the output's zero pattern
    and the gradient's (cloned: a CUDA graph's replay overwrites its outputs)."""
    outs = []
    for _ in range(steps):
        xi = x.detach().clone().requires_grad_(True)
        y = fn(xi)
        y.backward(torch.ones_like(y))
        outs.append(((y != 0).clone(), (xi.grad != 0).clone()))
    return outs


def graphed_masks(module, x, replays=4):
    """Replay a graphed dropout; per replay the output's zero pattern and the gradient's."""
    return step_masks(torch.cuda.make_graphed_callables(module, (x,)), x, replays)


def assert_fresh_masks(outs, p: float, warmup: int = 0) -> None:
    """Of :func:`step_masks`' steps: backward used each step's forward mask, and after ``warmup`` steps every
    mask keeps 1 - p of its elements (6 sigma) and no two are alike."""
    assert all(torch.equal(out, grad) for out, grad in outs)  # backward used this step's forward mask
    masks = [out for out, _ in outs[warmup:]]
    n = masks[0].numel()
    assert all(abs(1 - m.double().mean().item() - p) < 6 * math.sqrt(p * (1 - p) / n) for m in masks)
    assert all(not torch.equal(a, b) for i, a in enumerate(masks) for b in masks[i + 1:]), "a step repeated a mask"


@pytest.mark.parametrize("variant", ["standard", "packed_exact", "packed", "seeded"])
@pytest.mark.parametrize("backend", ["native", "triton"])
def test_cuda_graph_replays_draw_fresh_masks(ext, monkeypatch, variant, backend):
    if backend == "triton":
        monkeypatch.setattr(fn, "_native_kernels", lambda x: None)
    p, n = 0.25, 1 << 16
    x = (torch.rand(n, device="cuda") + 0.5).requires_grad_(True)
    assert_fresh_masks(graphed_masks(PackedDropout(p, variant), x), p)


@pytest.mark.parametrize("variant", ["packed", "seeded"])
def test_manual_graph_capture_fresh_forward_masks(ext, variant):
    x = torch.rand(1 << 14, device="cuda") + 0.5
    static = x.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        dropout(static, 0.5, True, variant)  # warm-up outside the graph
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = dropout(static, 0.5, True, variant)
    masks = []
    for _ in range(3):
        graph.replay()
        masks.append((out != 0).clone())
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])


def tiny_bert():
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, attn_implementation="eager")
    return transformers.BertForSequenceClassification(config).cuda()


@pytest.mark.parametrize("variant", ["packed", "seeded"])
@pytest.mark.parametrize("autocast", [None, torch.bfloat16])
def test_bert_fused_residual_equals_unfused_on_cuda(ext, variant, autocast):
    """Fused blocks give the unfused model's loss and gradients, and do run fused (under bf16 autocast too, where
    the residual is float32)."""
    ids = torch.randint(5, 99, (4, 32), device="cuda")
    labels = torch.tensor([0, 1, 0, 1], device="cuda")
    results = []
    for fuse in (True, False):
        model = tiny_bert()
        report = apply(model, variant, fuse_residual=fuse)
        assert len(report.fused_residual) == (4 if fuse else 0)
        torch.manual_seed(3)
        with torch.autocast("cuda", dtype=autocast or torch.float32, enabled=autocast is not None):
            loss = model(input_ids=ids, labels=labels).loss
        assert graph_nodes(loss, "DropoutAdd") == (4 if fuse else 0)
        loss.backward()
        results.append((loss.detach(), {k: v.grad for k, v in model.named_parameters()}))
    assert torch.equal(results[0][0], results[1][0])
    for name, grad in results[0][1].items():
        assert torch.equal(grad, results[1][1][name]), name


def test_checkpointing_replays_the_native_mask(ext):
    from torch.utils.checkpoint import checkpoint

    x = torch.randn(4096, device="cuda", requires_grad=True)
    layer = nn.Sequential(nn.Linear(4096 // 64, 4096 // 64), PackedDropout(0.5, "seeded")).cuda()
    torch.manual_seed(1)
    y = checkpoint(layer, x.view(64, -1), use_reentrant=False)
    y.sum().backward()
    torch.manual_seed(1)
    x2 = x.detach().clone().requires_grad_(True)
    y2 = layer(x2.view(64, -1))
    y2.sum().backward()
    assert torch.equal(y, y2) and torch.equal(x.grad, x2.grad)


def test_philox_bits_op_draws_from_the_cuda_generator_then_the_shifts(ext):
    """``pmexp_native::philox_bits`` (compiled packed's draw): the bits at 1 - p, the padding bits 0, then the
    bytes 0..7; a fresh draw per call; the same draw again from a restored CUDA generator state (compiled
    activation checkpointing restores that state to recompute the op in backward)."""
    from pmexp.masks.bits import unpack_bits_torch

    p, count = 0.3, torch.empty(100_003, 0, dtype=torch.uint8, device="cuda")  # n as a shape
    n = count.shape[0]
    nbytes = (n + 7) // 8
    state = torch.cuda.get_rng_state()
    a, b = torch.ops.pmexp_native.philox_bits(count, p), torch.ops.pmexp_native.philox_bits(count, p)
    torch.cuda.set_rng_state(state)
    assert torch.equal(torch.ops.pmexp_native.philox_bits(count, p), a) and not torch.equal(a, b)
    assert a.shape == (nbytes + 8,) and a[nbytes:].tolist() == list(range(8))
    assert a[nbytes - 1].item() >> (n % 8) == 0  # the last byte's padding bits
    keep = unpack_bits_torch(a[:nbytes], n)
    assert abs(keep.double().mean().item() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    torch.library.opcheck(torch.ops.pmexp_native.philox_bits.default, (count, p),
                          test_utils=("test_schema", "test_faketensor"))  # random: no eager-vs-traced equality


@pytest.mark.parametrize("variant", ["packed", "seeded"])
def test_compiled_reduce_overhead_draws_fresh_masks(ext, compiled_draw, variant):
    """torch.compile(mode="reduce-overhead") replays the step as a CUDA graph: every replay a fresh mask at 1 - p,
    and backward the forward's mask (packed's draw from the C++ op or the Triton kernel; seeded's from randint)."""
    if compiled_draw == "native" and variant == "seeded":
        pytest.skip("seeded has one compiled draw (randint and a hash)")
    torch._dynamo.reset()
    p, x = 0.25, torch.rand(1 << 16, device="cuda") + 0.5
    fn = torch.compile(lambda t: dropout(t, p, True, variant), mode="reduce-overhead", fullgraph=True)
    assert_fresh_masks(step_masks(fn, x, 6), p, warmup=2)  # the first steps warm up and record


def test_compiled_checkpointing_recomputes_the_forwards_mask(ext, compiled_draw):
    """Compiled activation checkpointing recomputes a checkpointed region in backward, the random draw included
    (AOTAutograd restores the CUDA generator around ops tagged nondeterministic_seeded): a draw from any other
    generator would give backward another mask, a wrong gradient no error reports."""
    from torch.utils.checkpoint import checkpoint

    torch._dynamo.reset()
    region = lambda u: dropout(u, 0.3, True, "packed").sin()  # noqa: E731  (sin(0) = 0: the mask shows)
    fn = torch.compile(lambda t: checkpoint(region, t, use_reentrant=False), fullgraph=True)
    for _ in range(3):
        x = nonzero_randn(1 << 16, device="cuda", requires_grad=True)
        y = fn(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.equal(g != 0, y != 0)


def _three_dropouts_cuda(p: float, variant: str = "packed"):
    """Three dropouts of slices of one tensor (one of a length not a multiple of 8), each drawing its own mask."""
    return lambda t: torch.cat([dropout(part, p, True, variant) for part in t.split((4097, 1000, 64))])


def _philox_bits_calls(fn, x) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn(x)
    return sum(e.count for e in prof.key_averages() if e.key == "pmexp_native::philox_bits")


@pytest.mark.parametrize("graphs", [False, True], ids=["default", "reduce-overhead"])
@pytest.mark.parametrize("variant", ["packed", "seeded"])
def test_compiled_merged_draws_one_call_fresh_masks(ext, variant, graphs):
    """With the variant's Inductor options the three draws are one (packed: one op call a forward; seeded: one
    randint of the three seeds; pmexp.dropout.merged_draws), and as CUDA graphs too every step draws fresh
    masks at 1 - p, with backward the forward's mask."""
    from pmexp.dropout.traced import inductor_options

    torch._dynamo.reset()
    p, x = 0.25, torch.rand(5161, device="cuda") + 0.5
    options = {**inductor_options(variant), **({"triton.cudagraphs": True} if graphs else {})}
    fn = torch.compile(_three_dropouts_cuda(p, variant), options=options, fullgraph=True)
    outs = step_masks(fn, x, 6)
    if variant == "packed" and not graphs:  # a forward with autograd (the joint graph the pass merges in)
        assert _philox_bits_calls(fn, x.detach().clone().requires_grad_(True)) == 1
    assert_fresh_masks(outs, p, warmup=2)
    mask = outs[2][0]
    assert not torch.equal(mask[:1000], mask[4097:5097])  # two dropouts, unrelated masks


def test_compiled_merged_draws_leave_checkpointed_draws_alone(ext):
    """A draw inside an activation-checkpoint region is recomputed in backward from the generator state saved
    around it; the merging pass leaves it alone, and every gradient uses its forward's mask."""
    from torch.utils.checkpoint import checkpoint

    from pmexp.dropout.traced import inductor_options

    torch._dynamo.reset()
    region = lambda u: (dropout(u, 0.3, True, "packed") + dropout(u, 0.3, True, "packed")).sin()  # noqa: E731
    fn = torch.compile(lambda t, u: torch.cat([checkpoint(region, t, use_reentrant=False),
                                               dropout(u, 0.3, True, "packed"), dropout(u, 0.3, True, "packed")]),
                       options=inductor_options("packed"), fullgraph=True)
    n = 1 << 14
    for _ in range(3):
        t, u = (nonzero_randn(n, device="cuda", requires_grad=True) for _ in range(2))
        y = fn(t, u)
        gt, gu = torch.autograd.grad(y.sum(), (t, u))
        # t and u have no zeros: a zero output or gradient is a dropped element (sin(0) = 0 in the region)
        assert torch.equal(gt != 0, y[:n] != 0)
        assert torch.equal(gu != 0, (y[n:2 * n] != 0) | (y[2 * n:] != 0))
