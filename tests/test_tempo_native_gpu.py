"""Tempo GELU's C++/CUDA path (pmexp.tempo.native) against its Python node with the Triton table kernel.

GPU only (skipped elsewhere). Both read one g' table and form grad * g' in float32 with one rounding,
and both compare x >= X_MIN (rounded to x's dtype) in float32, so every comparison is bit for bit."""

import pytest
import torch
import torch.nn.functional as F

from pmexp.tempo import TempoGELU, gelu
from pmexp.tempo import native as tempo_native

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
DTYPES = [torch.bfloat16, torch.float16]
SIZES = [1, 7, 8, 33, 4097, 1 << 20]


@pytest.fixture(scope="module")
def ext():
    module = tempo_native.load()
    if module is None:
        pytest.fail(f"Tempo's native extension did not build here: {tempo_native.why_not()}")
    return module


def native_node(t: torch.Tensor) -> bool:
    """Whether ``t`` came from a C++ autograd node (``torch::autograd::CppNode<...>``), not a Python one."""
    return "CppNode" in t.grad_fn.name()


def activation(n: int, dtype: torch.dtype, contiguous: bool, seed: int = 0) -> torch.Tensor:
    """randn * 3 (both branches, and y in (Y_MIN, 0) where the branch bit decides), as a leaf; not
    contiguous: every other element of a wider tensor."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    wide = (torch.randn(n, 1 if contiguous else 2, device="cuda", generator=g) * 3).to(dtype)
    return wide[:, 0].detach().requires_grad_() if not contiguous else wide.view(n).requires_grad_()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("contiguous", [True, False])
def test_native_equals_python_node(ext, dtype, n, contiguous):
    x = activation(n, dtype, contiguous)
    grad = torch.randn(n, device="cuda").to(dtype)
    y = gelu(x)
    assert native_node(y) and "TempoGelu" in y.grad_fn.name()  # the default for 16-bit CUDA: the C++ node
    ref = gelu(x, native=False)
    assert not native_node(ref)
    assert torch.equal(y, ref) and torch.equal(y, F.gelu(x)) and y.stride() == ref.stride()
    (dx,) = torch.autograd.grad(y, x, grad)
    (dx_ref,) = torch.autograd.grad(ref, x, grad)
    assert dx.dtype == dx_ref.dtype and torch.equal(dx, dx_ref)


def test_float32_and_table_off_keep_the_python_node(ext):
    x = torch.randn(64, device="cuda", requires_grad=True)
    assert not native_node(gelu(x))  # float32: the Newton kernel
    h = x.detach().bfloat16().requires_grad_()
    assert not native_node(gelu(h, table=False))
    assert not native_node(gelu(h, packed=False))


def test_native_in_cuda_graphs(ext):
    """Graphed (forward and backward captured with the C++ node), fresh inputs give the eager gradient."""
    act = TempoGELU()
    sample = activation(4096, torch.bfloat16, True)
    graphed = torch.cuda.make_graphed_callables(act, (sample,))
    grad = torch.randn(4096, device="cuda").bfloat16()
    for seed in (1, 2):
        x = activation(4096, torch.bfloat16, True, seed)
        y = graphed(x)
        (dx,) = torch.autograd.grad(y, x, grad)
        ref = gelu(x, native=False)
        (dx_ref,) = torch.autograd.grad(ref, x, grad)
        assert torch.equal(y, ref) and torch.equal(dx, dx_ref)


def test_bad_table_is_refused(ext):
    x = torch.randn(64, device="cuda").bfloat16()
    with pytest.raises(RuntimeError, match="grad_table"):
        ext.gelu(x, torch.zeros(10, device="cuda"), -0.75)


@pytest.mark.parametrize(("dtype", "weight_dtype"), [(torch.float32, torch.float32), (torch.bfloat16, torch.bfloat16),
                                                     (torch.bfloat16, torch.float32), (torch.float16, torch.float16)])
@pytest.mark.parametrize(("rows", "n"), [(1, 1), (17, 37), (33, 256), (8192, 1024), (40, 3000), (16, 4096)])
def test_native_layer_norm_matches_stock(ext, dtype, weight_dtype, rows, n):
    """The C++ node (default) and the Python node with the Triton kernel (native=False): outputs bit for bit
    stock's; gradients each within the rounding scale of stock's own against float64 (tests/tolerances.py;
    the two nodes sum in different orders, so they agree to rounding, not bits)."""
    from tolerances import assert_within_rounding_scale

    from pmexp.tempo import layer_norm

    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(rows, n, device="cuda", generator=g).to(dtype)
    w = (1 + 0.1 * torch.randn(n, device="cuda", generator=g)).to(weight_dtype)
    b = (0.1 * torch.randn(n, device="cuda", generator=g)).to(weight_dtype)
    grad = torch.randn(rows, n, device="cuda", generator=g).to(dtype)
    try:
        F.layer_norm(x, (n,), w, b, 1e-5)
    except RuntimeError:  # torch 2.11's CUDA LayerNorm takes no 16-bit input with a float32 weight: nor do ours
        for native in (None, False):
            with pytest.raises(RuntimeError):
                layer_norm(x.clone().requires_grad_(), (n,), w.clone().requires_grad_(), b, 1e-5, native=native)
        return
    results = {}
    paths = {"stock": lambda *a: F.layer_norm(*a[:4]), "native": lambda *a: layer_norm(*a),
             "python": lambda *a: layer_norm(*a, native=False), "float64": lambda *a: F.layer_norm(*a[:4])}
    for name, fn in paths.items():
        cast = (lambda t: t.double()) if name == "float64" else (lambda t: t)
        leaves = [cast(t).clone().requires_grad_() for t in (x, w, b)]
        y = fn(leaves[0], (n,), leaves[1], leaves[2], 1e-5)
        if name in ("native", "python"):
            assert native_node(y) == (name == "native")
        dx, dw, db = torch.autograd.grad(y, leaves, cast(grad))
        results[name] = (y.detach(), {"x": dx, "weight": dw, "bias": db})
    for name in ("native", "python"):
        assert torch.equal(results[name][0], results["stock"][0])
        assert_within_rounding_scale(results[name][1], results["stock"][1], results["float64"][1], dtype)


def test_layer_norm_python_node_where_native_does_not_serve(ext):
    from pmexp.tempo import layer_norm

    wide = torch.randn(4, 4097, device="cuda", requires_grad=True)
    ones = torch.ones(4097, device="cuda", requires_grad=True)
    assert not native_node(layer_norm(wide, (4097,), ones, torch.zeros_like(ones)))
    x = torch.randn(4, 8, 8, device="cuda", requires_grad=True)
    w = torch.ones(8, 8, device="cuda", requires_grad=True)
    assert not native_node(layer_norm(x, (8, 8), w, torch.zeros_like(w)))  # two dims
    v = torch.ones(8, device="cuda", requires_grad=True)
    assert not native_node(layer_norm(x, (8,), v, None))  # no bias
