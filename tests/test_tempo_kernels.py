"""Tempo GELU's Triton kernels on CPU tensors through Triton's interpreter (TRITON_INTERPRET=1).

The CUDA path of :func:`pmexp.tempo.gelu` runs these kernels; here they run without a GPU and are
compared with the torch reference (float64 bisection) and with torch's own GELU backward.
"""

import math
import os

import pytest
import torch
import torch.nn.functional as F

if torch.cuda.is_available():  # the interpreter would also take over the real kernels in this process
    pytest.skip(
        "interpreter tests run on CPU-only machines; tests/test_tempo_gpu.py covers CUDA", allow_module_level=True
    )
os.environ["TRITON_INTERPRET"] = "1"  # must be set before the kernels are defined
triton = pytest.importorskip("triton")

from tolerances import AS_7_1_26_PHI_ERR, gelu_grad_bound, unit_roundoff  # noqa: E402

from pmexp.masks import pack_bits  # noqa: E402
from pmexp.tempo import X_MIN, Y_MIN, gelu, kernels  # noqa: E402
from pmexp.tempo.gelu import _gelu_derivative, gelu_input_from_output  # noqa: E402

BLOCK = 8 * kernels._BYTES  # elements per program


def grid(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """x values covering both branches: dense near X_MIN, |x| up to 40, zeros, tiny and huge values."""
    special = [0.0, -0.0, 1e-30, -1e-30, 1e-6, -1e-6, X_MIN, -1.0, 1.0, -5.9, -13.0, -20.0, 5.5, 1e4, 1e30]
    x = torch.cat(
        [
            torch.tensor(special, dtype=torch.float64),
            X_MIN + torch.linspace(-0.02, 0.02, 2001, dtype=torch.float64),
            torch.linspace(-40, 40, 4001, dtype=torch.float64),
            torch.linspace(-6, 6, 3001, dtype=torch.float64),
            torch.randn(2000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3,
        ]
    ).to(dtype)
    return torch.cat([x, -x[x > 0]])  # 2 * ... elements: not a multiple of 8 nor of BLOCK


def stock_grad(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_()
    return torch.autograd.grad(F.gelu(x), x, grad)[0]


def reference_derivative(y: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """g'(x) in float64 at the x the torch path recovers from (y, right)."""
    return _gelu_derivative(gelu_input_from_output(y, right))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("numel", [0, 1, 7, 9, BLOCK - 1, BLOCK + 1, 3 * BLOCK + 5])
def test_branch_bits_match_pack_bits(dtype, numel):
    x = torch.randn(numel, generator=torch.Generator().manual_seed(numel)).to(dtype)
    if numel > 4:  # the neighbours of X_MIN in this dtype
        x_min = torch.tensor(X_MIN, dtype=dtype)
        x[:4] = torch.stack([x_min, torch.nextafter(x_min, -x_min), torch.nextafter(x_min, x_min), -x_min])
    bits = kernels.branch_bits(x)
    assert bits.dtype == torch.uint8 and torch.equal(bits, pack_bits(x >= X_MIN))
    assert torch.equal(torch.ops.pmexp.tempo_gelu_branch_bits(x), bits)


def test_backward_float32_accuracy():
    x = grid()
    y, right = F.gelu(x), x >= X_MIN
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    dx = kernels.backward(grad, y, pack_bits(right))
    assert dx.dtype == torch.float32 and dx.shape == x.shape and torch.isfinite(dx).all()
    # against torch's float32 gradient at the true x: torch's rounding of y and the kernel's float32
    # Newton residual (5 u (|y| + |x|)), through the conditioning of g' in y (tests/tolerances.py)
    err = ((dx - stock_grad(x, grad)) / grad).abs().double()
    assert (err <= gelu_grad_bound(x, torch.float32, dy_ulps=5)).all()
    # against the float64 bisection from the same y: only the kernel's own residual and evaluation
    close = ((dx / grad).double() - reference_derivative(y, right)).abs()
    assert (close <= gelu_grad_bound(x, torch.float32, dy_ulps=2.5, eval_ulps=10)).all()
    # the bool branch and the registered op give the same bits of output
    assert torch.equal(kernels.backward(grad, y, right), dx)
    assert torch.equal(torch.ops.pmexp.tempo_gelu_backward(grad, y, pack_bits(right)), dx)


def test_fast_cdf_option():
    """``fast=True`` (Abramowitz-Stegun Phi): the bounds above plus A&S 7.1.26's error of Phi."""
    x = grid()
    y, right = F.gelu(x), x >= X_MIN
    dx = kernels.backward(torch.ones_like(x), y, pack_bits(right), fast=True)
    err = (dx - stock_grad(x, torch.ones_like(x))).abs().double()
    assert (err <= gelu_grad_bound(x, torch.float32, dy_ulps=5, cdf_err=AS_7_1_26_PHI_ERR)).all()
    close = (dx.double() - reference_derivative(y, right)).abs()
    assert (close <= gelu_grad_bound(x, torch.float32, dy_ulps=2.5, eval_ulps=10, cdf_err=AS_7_1_26_PHI_ERR)).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")  # the table's build
@pytest.mark.parametrize("table", [True, False])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_backward_16bit(dtype, table):
    x = grid(dtype)
    x = x[x.isfinite()]
    y, right = F.gelu(x), x >= X_MIN
    dx = kernels.backward(torch.ones_like(x), y, pack_bits(right), table=table)
    assert dx.dtype == dtype and torch.isfinite(dx).all()
    # against the float64 bisection from the same (exact) y: the kernel's float32 work, then the
    # 16-bit result rounded once (u16 |g'|) and, in the interpreter, cast once more by numpy (u16 |g'|)
    ref = reference_derivative(y, right)
    u16 = unit_roundoff(dtype)
    bound = 2 * u16 * ref.abs() + gelu_grad_bound(x, torch.float32, dy_ulps=2.5, eval_ulps=10)
    assert ((dx.double() - ref).abs() <= bound).all()
    # against torch's gradient at the true x: y rounded to 16 bits (u16 (|y| + |x|): torch computes it
    # in float32 and rounds once), both gradients rounded to 16 bits (2 roundings of g' <= 1.13: 4 u16)
    stock = stock_grad(x, torch.ones_like(x))
    assert ((dx - stock).abs().double() <= gelu_grad_bound(x, dtype, dy_ulps=1.5, eval_ulps=4)).all()


def test_backward_float64_accuracy():
    x = grid(torch.float64)
    y, right = F.gelu(x), x >= X_MIN
    dx = kernels.backward(torch.ones_like(x), y, pack_bits(right))
    true = _gelu_derivative(x)
    assert dx.dtype == torch.float64
    # the float32 derivation with float64's u: y's rounding and the kernel's residual, conditioned
    assert ((dx - true).abs() <= gelu_grad_bound(x, torch.float64, dy_ulps=5)).all()
    assert ((dx - reference_derivative(y, right)).abs() <= gelu_grad_bound(x, torch.float64, dy_ulps=2.5)).all()


def test_y_just_below_minimum_and_empty():
    y = torch.tensor([Y_MIN, Y_MIN * (1 + 1e-7), Y_MIN * (1 - 1e-7)], dtype=torch.float32)
    for right in (torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)):
        dx = kernels.backward(torch.ones_like(y), y, right)
        # g'(X_MIN) = 0; y off the minimum by 1e-7 relative moves g' by <= sqrt(2 max|g''| dy), plus evaluation
        assert dx.abs().max() <= math.sqrt(2 * 0.8 * 1e-7 * abs(Y_MIN)) + 20 * unit_roundoff(torch.float32)
    empty = torch.empty(0, 3)
    assert kernels.backward(empty, empty, pack_bits(empty >= X_MIN)).shape == (0, 3)


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("shape", [(0,), (3, 5, 7), (2, BLOCK + 3)])
def test_autograd_function_through_kernels(packed, shape):
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(2)) * 3).requires_grad_()
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    y = gelu(x, packed, kernel=True)
    assert torch.equal(y, F.gelu(x))
    (dx,) = torch.autograd.grad(y, x, grad)
    (dx_ref,) = torch.autograd.grad(gelu(x, packed, kernel=False), x, grad)
    # the same y, recovered by the kernel (float32 residual) and by the float64 bisection
    bound = gelu_grad_bound(x.detach(), torch.float32, dy_ulps=2.5) * grad.abs().double()
    assert ((dx - dx_ref).abs().double() <= bound).all()
    assert dx.shape == shape


def test_gradcheck_float64_through_kernels():
    x = (torch.randn(2, 17, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) * 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: gelu(t, True, kernel=True), (x,), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("rows", "n"), [(37, 256), (5, 100), (1, 1024)])
def test_layer_norm_backward_kernel_within_the_rounding_scale(dtype, rows, n):
    """Tempo's LayerNorm backward kernel (pmexp.tempo.ln_kernels) against stock in the same precision
    and float64 (tests/tolerances.py's rounding scale): a ragged last program, a width that is not a
    power of 2, one row."""
    from tolerances import assert_within_rounding_scale

    from pmexp.tempo import ln_kernels

    torch.manual_seed(0)
    w = (1 + 0.1 * torch.randn(n)).to(dtype)
    b = (0.1 * torch.randn(n)).to(dtype)
    x = (3 * torch.randn(rows, n) + 1).to(dtype)
    g = torch.randn(rows, n).to(dtype)
    grads = {}
    for name, t in (("stock", dtype), ("float64", torch.float64)):
        xi, wi, bi = (v.to(t).requires_grad_() for v in (x, w, b))
        out = F.layer_norm(xi, (n,), wi, bi, 1e-5)
        grads[name] = dict(zip(("x", "weight", "bias"), torch.autograd.grad(out, (xi, wi, bi), g.to(t)), strict=True))
    y, _, rstd = torch.native_layer_norm(x.float(), (n,), w.float(), b.float(), 1e-5)
    dx, dw, db = ln_kernels.backward(g.float(), y, rstd, w.float(), b.float())
    got = {"x": dx.to(dtype), "weight": dw.to(dtype), "bias": db.to(dtype)}
    assert_within_rounding_scale(got, grads["stock"], grads["float64"], dtype)


def test_layer_norm_backward_kernel_writes_every_partial_row(monkeypatch):
    """dw and db are summed from partial rows left uninitialised: every program must write its own.
    Here the buffer starts as NaN, so a row left unwritten would show; no rows: zeros, no kernel."""
    from pmexp.tempo import ln_kernels

    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *size, **kw: real_empty(*size, **kw).fill_(float("nan")))
    torch.manual_seed(0)
    n, rows = 24, 3 * ln_kernels._ROWS + 5  # a ragged last program
    y, g, rstd = torch.randn(rows, n), torch.randn(rows, n), torch.rand(rows) + 0.5
    w, b = torch.rand(n) + 0.5, torch.randn(n)
    dx, dw, db = ln_kernels.backward(g, y, rstd, w, b)
    x_hat = (y - b) / w
    # two float32 sums of the same terms in other orders: each within (rows - 1) u sum|terms| of exact
    u = torch.finfo(torch.float32).eps / 2
    for got, terms in ((db, g), (dw, g * x_hat)):
        assert ((got - terms.sum(0)).abs() <= 2 * rows * u * terms.abs().sum(0)).all()
    _, dw, db = ln_kernels.backward(g[:0], y[:0], rstd[:0], w, b)
    assert torch.equal(dw, torch.zeros(n)) and torch.equal(db, torch.zeros(n))


# --- the g' table (kernels.grad_table, _bwd_table_kernel): the Newton kernel's own float32 g' ---

# every 16-bit pattern (each table build, too) includes infinities and NaNs: numpy warns inside the
# interpreter's Newton kernel
every_pattern = pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")


def assert_same_bits(got: torch.Tensor, want: torch.Tensor) -> None:
    """NaN at the same places; everywhere else the same bit patterns (so -0.0 is not 0.0)."""
    nan = want.isnan()
    assert got.dtype == want.dtype and got.shape == want.shape and torch.equal(got.isnan(), nan)
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[want.element_size()]
    assert torch.equal(got[~nan].view(ints), want[~nan].view(ints))


@pytest.fixture(scope="module", params=list(kernels.TABLE_DTYPES), ids=str)
def every_y_case(request):
    """Every y twice (left branch, then right) under three grads: ones; 0, -0, +-1, other signs and
    scales, inf; random normal. With the Newton kernel's dx (packed branch) as the reference."""
    dtype = request.param
    y = kernels.every_16bit_value(dtype).repeat(2)
    right = torch.arange(y.numel()) >= y.numel() // 2
    special = torch.tensor([0.0, -0.0, 1.0, -1.0, 2.5, -3e-3, 1e3, -7.0, float("inf"), 0.1])
    grads = [
        torch.ones(y.numel()),
        special.repeat(y.numel() // special.numel() + 1)[: y.numel()],
        torch.randn(y.numel(), generator=torch.Generator().manual_seed(5)) * 10,
    ]
    y, right = y.repeat(3), right.repeat(3)
    grad = torch.cat(grads).to(dtype)
    return grad, y, right, kernels.backward(grad, y, pack_bits(right), table=False)


@every_pattern
@pytest.mark.parametrize("packed", [True, False])
def test_table_equals_newton_on_every_16bit_y(every_y_case, packed):
    grad, y, right, newton = every_y_case
    dx = kernels.backward(grad, y, pack_bits(right) if packed else right, table=True)
    assert_same_bits(dx, newton)


@every_pattern
@pytest.mark.parametrize("dtype", kernels.TABLE_DTYPES)
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("numel", [0, 1, 7, 9, 13, BLOCK - 1, BLOCK + 1, 3 * BLOCK + 5])
def test_table_equals_newton_sizes(dtype, packed, numel):
    """A ragged last byte and program; random bit patterns of y, random branches; 16-bit and float32 grads."""
    gen = torch.Generator().manual_seed(numel)
    y = torch.randint(-(1 << 15), 1 << 15, (numel,), generator=gen, dtype=torch.int32).to(torch.int16).view(dtype)
    right = torch.rand(numel, generator=gen) < 0.5
    branch = pack_bits(right) if packed else right
    for grad in (torch.randn(numel, generator=gen).to(dtype), torch.randn(numel, generator=gen)):
        assert_same_bits(kernels.backward(grad, y, branch, table=True), kernels.backward(grad, y, branch, table=False))
    grad = torch.randn(numel, generator=gen).to(dtype).reshape(1, numel, 1)
    assert kernels.backward(grad, y.reshape(1, numel, 1), branch, table=True).shape == (1, numel, 1)


@every_pattern
def test_table_is_built_once_per_dtype_and_device(monkeypatch):
    monkeypatch.setattr(kernels, "_TABLES", {})
    elsewhere = torch.zeros(2 << 16)
    kernels._TABLES[(torch.bfloat16, torch.device("meta"))] = elsewhere  # another device's table
    table = kernels.grad_table(torch.bfloat16, "cpu")
    assert table is not elsewhere and table.dtype == torch.float32 and table.shape == (2 << 16,)
    assert kernels.grad_table(torch.bfloat16, torch.device("cpu")) is table
    y = F.gelu(torch.randn(100)).to(torch.bfloat16)
    kernels.backward(torch.ones_like(y), y, pack_bits(y >= 0))  # the default path gathers from the same table
    assert kernels._TABLES[(torch.bfloat16, torch.device("cpu"))] is table
    assert kernels.grad_table(torch.float16, "cpu") is not table
    assert set(kernels._TABLES) == {(d, torch.device(v)) for d, v in
                                    [(torch.bfloat16, "meta"), (torch.bfloat16, "cpu"), (torch.float16, "cpu")]}


@every_pattern
def test_table_by_default_only_where_it_holds_the_computation(monkeypatch):
    """Default (table=None): 16-bit y, float32 arithmetic, default newton and fast. Elsewhere the Newton
    kernel, and table=True is an error that says what fits."""
    monkeypatch.setattr(kernels, "_TABLES", {})
    y = F.gelu(torch.randn(64)).to(torch.float16)
    branch = pack_bits(y >= 0)
    for kwargs in ({"newton": 2}, {"fast": True}):
        kernels.backward(torch.ones_like(y), y, branch, **kwargs)
    kernels.backward(torch.ones(64, dtype=torch.float64), y, branch)  # float64 arithmetic
    kernels.backward(torch.ones(64), y.float(), branch)
    assert kernels._TABLES == {}
    kernels.backward(torch.ones_like(y), y, branch)
    assert list(kernels._TABLES) == [(torch.float16, torch.device("cpu"))]
    with pytest.raises(ValueError, match="16-bit y"):
        kernels.backward(torch.ones(64), y.float(), branch, table=True)
    with pytest.raises(ValueError, match="fast=True"):
        kernels.backward(torch.ones_like(y), y, branch, fast=True, table=True)
    with pytest.raises(ValueError, match="16-bit dtype"):
        kernels.grad_table(torch.float32, "cpu")


@every_pattern
@pytest.mark.parametrize("table", [True, False])
def test_autograd_function_table_choice(table):
    """gelu(..., table=...) reaches the kernel: both give the same gradient bits; the registered op
    (what torch.compile calls) is the Newton kernel."""
    x = (torch.randn(3, BLOCK + 3, generator=torch.Generator().manual_seed(6)) * 3).to(torch.bfloat16)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(7)).to(torch.bfloat16)
    (dx,) = torch.autograd.grad(gelu(x.requires_grad_(), kernel=True, table=table), x, grad)
    y = F.gelu(x.detach())
    assert_same_bits(dx, torch.ops.pmexp.tempo_gelu_backward(grad, y, pack_bits(x >= X_MIN)))
    with pytest.raises(ValueError, match="table=True"):
        gelu(x.float(), kernel=True, table=True)
    with pytest.raises(ValueError, match="table=True"):
        gelu(x, kernel=False, table=True)
