// PM-Drop's eager CUDA path in C++: the autograd node, the seed draw and the launch, so one
// dropout call costs about what torch's own does on the host (a Python autograd.Function plus
// Triton's launcher cost ~4x that). Built on first use by pmexp/dropout/native.py.
//
// Randomness: outside CUDA-graph capture the seed is drawn from torch's default CPU generator
// exactly as the Python path draws it (random64() % 2**62: the same value, the same generator
// advance), so both backends give the same mask and activation checkpointing, which restores
// that generator, replays it. Under capture a Python int would be baked into the graph; there the
// seed is an 8-byte device tensor drawn by randint from the CUDA generator, whose graph-safe
// Philox state gives a fresh seed on every replay, and the kernels read it from memory.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include <cmath>
#include <mutex>

namespace pmdrop {
void launch_forward(int dtype, int out_dtype, const void* x, const void* residual, void* y, uint8_t* bits, int64_t n,
                    const int64_t* seed_ptr, uint64_t seed, int32_t threshold, float scale, cudaStream_t stream);
void launch_backward(int dtype, const void* grad, void* dx, const uint8_t* bits, int64_t n, float scale,
                     cudaStream_t stream);
void launch_bits(uint8_t* bits, int64_t n, const int64_t* seed_ptr, const int64_t* offset_ptr, uint64_t seed,
                 uint64_t offset, int32_t threshold, cudaStream_t stream);
}  // namespace pmdrop

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

int dtype_code(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return 0;
    case at::kHalf: return 1;
    case at::kBFloat16: return 2;
    case at::kDouble: return 3;
    default: TORCH_CHECK(false, "pmexp native dropout: unsupported dtype ", t.scalar_type());
  }
  return -1;
}

int32_t keep_threshold(double p) {  // as pmexp.dropout.kernels.keep_threshold
  return (int32_t)std::min<int64_t>(std::llround(p * 2147483648.0), 2147483647);
}

float scale_of(double p) { return (float)(1.0 / (1.0 - p)); }

struct Seed {
  int64_t value = 0;
  at::Tensor tensor;  // defined under CUDA-graph capture
  const int64_t* ptr() const { return tensor.defined() ? tensor.const_data_ptr<int64_t>() : nullptr; }
};

Seed draw_seed(const at::Tensor& x) {
  Seed seed;
  if (c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None) {
    seed.tensor = at::randint(0, int64_t(1) << 62, {1}, x.options().dtype(at::kLong));
    return seed;
  }
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  const uint64_t r = at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
  seed.value = (int64_t)(r % (uint64_t(1) << 62));  // torch's random_(0, 2**62) on int64
  return seed;
}

// y (and the bits when store_bits); x and residual contiguous, of one shape; the residual of x's dtype, or
// float32 for a half-type x (y then float32, as torch promotes the unfused add).
std::pair<at::Tensor, at::Tensor> forward_impl(const at::Tensor& x, const at::Tensor* residual, const Seed& seed,
                                               double p, bool store_bits) {
  const int64_t n = x.numel();
  at::Tensor y = at::empty(x.sizes(), residual ? residual->options() : x.options());
  at::Tensor bits = at::empty({store_bits ? (n + 7) / 8 : 0}, x.options().dtype(at::kByte));
  if (n > 0) {
    pmdrop::launch_forward(dtype_code(x), dtype_code(y), x.const_data_ptr(),
                           residual ? residual->const_data_ptr() : nullptr,
                           y.data_ptr(), store_bits ? bits.data_ptr<uint8_t>() : nullptr, n, seed.ptr(),
                           (uint64_t)seed.value, keep_threshold(p), scale_of(p),
                           c10::cuda::getCurrentCUDAStream().stream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {y, bits};
}

at::Tensor backward_impl(const at::Tensor& grad_in, const at::Tensor& bits, double p) {
  at::Tensor grad = grad_in.contiguous();
  at::Tensor dx = at::empty(grad.sizes(), grad.options());
  const int64_t n = grad.numel();
  if (n > 0) {
    pmdrop::launch_backward(dtype_code(grad), grad.const_data_ptr(), dx.data_ptr(), bits.const_data_ptr<uint8_t>(),
                            n, scale_of(p), c10::cuda::getCurrentCUDAStream().stream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return dx;
}

at::Tensor seeded_grad(const at::Tensor& grad_in, AutogradContext* ctx) {
  Seed seed;
  seed.value = ctx->saved_data["seed"].toInt();
  const auto saved = ctx->get_saved_variables();
  if (!saved.empty()) seed.tensor = saved[0];
  return forward_impl(grad_in.contiguous(), nullptr, seed, ctx->saved_data["p"].toDouble(), false).first;
}

// packed: the mask kept as bits. With a residual (dropout(x) + residual in one pass), the residual's
// gradient is the incoming gradient itself. Two nodes rather than an optional residual argument: an
// undefined tensor among a C++ autograd function's inputs fails in torch 2.11 ("tensor does not have a device").
template <bool kSeeded>
at::Tensor forward_node(AutogradContext* ctx, const at::Tensor& x, const at::Tensor* residual, double p) {
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  const at::Tensor rc = residual ? residual->contiguous() : at::Tensor();
  Seed seed = draw_seed(x);
  auto [y, bits] = forward_impl(xc, residual ? &rc : nullptr, seed, p, !kSeeded);
  if (kSeeded) {
    if (seed.tensor.defined()) ctx->save_for_backward({seed.tensor});
    ctx->saved_data["seed"] = seed.value;
  } else {
    ctx->save_for_backward({bits});
  }
  ctx->saved_data["p"] = p;
  return y;
}

template <bool kSeeded>
at::Tensor backward_node(AutogradContext* ctx, const at::Tensor& grad) {
  const c10::cuda::CUDAGuard guard(grad.device());
  if (kSeeded) return seeded_grad(grad, ctx);
  return backward_impl(grad, ctx->get_saved_variables()[0], ctx->saved_data["p"].toDouble());
}

template <bool kSeeded>
struct Dropout : public torch::autograd::Function<Dropout<kSeeded>> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double p) {
    return forward_node<kSeeded>(ctx, x, nullptr, p);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {backward_node<kSeeded>(ctx, grads[0]), at::Tensor()};
  }
};

template <bool kSeeded>
struct DropoutAdd : public torch::autograd::Function<DropoutAdd<kSeeded>> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& residual, double p) {
    ctx->saved_data["dtype"] = static_cast<int64_t>(x.scalar_type());  // backward's cast (below)
    return forward_node<kSeeded>(ctx, x, &residual, p);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // A float32 sum of a half-type x: the unfused add hands dropout its gradient cast to x's dtype (autograd
    // casts a gradient to its input's dtype), and so does this node, so the gradients match bit for bit.
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    const at::Tensor& grad = grads[0];
    return {backward_node<kSeeded>(ctx, grad.scalar_type() == dtype ? grad : grad.to(dtype)), grad, at::Tensor()};
  }
};

void check_inputs(const at::Tensor& x, const at::Tensor& residual, double p) {
  TORCH_CHECK(x.is_cuda(), "pmexp native dropout: expected a CUDA tensor");
  TORCH_CHECK(p > 0.0 && p < 1.0, "pmexp native dropout: p must lie in (0, 1), got ", p);
  if (residual.defined()) {
    const bool half = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
    const bool dtype_ok = residual.scalar_type() == x.scalar_type() || (half && residual.scalar_type() == at::kFloat);
    TORCH_CHECK(residual.sizes() == x.sizes() && dtype_ok && residual.device() == x.device(),
                "pmexp native dropout_add: residual must match x in shape and device, and in dtype (or be float32 "
                "for a float16/bfloat16 x)");
  }
}

at::Tensor packed(const at::Tensor& x, double p) {
  check_inputs(x, at::Tensor(), p);
  return Dropout<false>::apply(x, p);
}
at::Tensor seeded(const at::Tensor& x, double p) {
  check_inputs(x, at::Tensor(), p);
  return Dropout<true>::apply(x, p);
}
at::Tensor packed_add(const at::Tensor& x, const at::Tensor& residual, double p) {
  check_inputs(x, residual, p);
  return DropoutAdd<false>::apply(x, residual, p);
}
at::Tensor seeded_add(const at::Tensor& x, const at::Tensor& residual, double p) {
  check_inputs(x, residual, p);
  return DropoutAdd<true>::apply(x, residual, p);
}

// The raw kernels with an explicit seed, for tests against the Triton kernels.
std::pair<at::Tensor, at::Tensor> raw_forward(const at::Tensor& x, int64_t seed_value, double p, bool store_bits) {
  const c10::cuda::CUDAGuard guard(x.device());
  Seed seed;
  seed.value = seed_value;
  return forward_impl(x.contiguous(), nullptr, seed, p, store_bits);
}
at::Tensor raw_backward(const at::Tensor& grad, const at::Tensor& bits, double p) {
  const c10::cuda::CUDAGuard guard(grad.device());
  return backward_impl(grad, bits, p);
}

// Compiled packed's draw (pmexp.dropout.traced): ceil(n / 8) bytes of keep bits for n elements, then the 8 bytes
// 0..7 (the bit shifts the compiled unpacking reads). One C++ op a call where the Triton path launches randint and
// its bits kernel through Python (compiled MiniLM: 59 launches a step more than standard). n comes as the shape of
// an empty (n, 0) tensor on the device: an extern op's inputs are buffers to Inductor, and taking the dropout's
// input cost compiled MiniLM 8 more Inductor kernels a step (runs/2026-11-30-compiled-native). Drawn
// from torch's CUDA generator (philox_cuda_state, as torch's own dropout): graph-safe under CUDA graphs, and
// replayed by compiled activation checkpointing, which restores that generator around nondeterministic_seeded ops.
at::Tensor philox_bits(const at::Tensor& count, double p) {
  TORCH_CHECK(count.is_cuda() && count.dim() == 2 && count.size(1) == 0,
              "pmexp_native::philox_bits: expected an empty (n, 0) CUDA tensor, got ", count.sizes());
  TORCH_CHECK(p > 0.0 && p < 1.0, "pmexp_native::philox_bits: p must lie in (0, 1), got ", p);
  const c10::cuda::CUDAGuard guard(count.device());
  const int64_t n = count.size(0);
  at::Tensor bits = at::empty({(n + 7) / 8 + 8}, count.options().dtype(at::kByte));
  auto* gen = at::check_generator<at::CUDAGeneratorImpl>(at::cuda::detail::getDefaultCUDAGenerator(count.device().index()));
  at::PhiloxCudaState rng;
  {
    std::lock_guard<std::mutex> lock(gen->mutex_);
    rng = gen->philox_cuda_state(4);  // the offset only has to differ between calls: bits_kernel's counters
  }
  if (rng.captured_) {
    pmdrop::launch_bits(bits.data_ptr<uint8_t>(), n, rng.seed_.ptr, rng.offset_.ptr, 0, rng.offset_intragraph_,
                        keep_threshold(p), c10::cuda::getCurrentCUDAStream().stream());
  } else {
    pmdrop::launch_bits(bits.data_ptr<uint8_t>(), n, nullptr, nullptr, rng.seed_.val, rng.offset_.val,
                        keep_threshold(p), c10::cuda::getCurrentCUDAStream().stream());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return bits;
}

}  // namespace

// A torch op (not a pybind function) so torch.compile can call it: the fake (meta) kernel is registered from
// Python (pmexp.dropout.native), and the tag keeps AOTAutograd from merging two draws or recomputing one freely.
TORCH_LIBRARY(pmexp_native, m) {
  m.def("philox_bits(Tensor count, float p) -> Tensor", {at::Tag::nondeterministic_seeded});
}
TORCH_LIBRARY_IMPL(pmexp_native, CUDA, m) { m.impl("philox_bits", &philox_bits); }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "PM-Drop CUDA dropout with its autograd node in C++ (pmexp.dropout.native)";
  m.def("packed", &packed, "packed dropout: the mask kept as bits");
  m.def("seeded", &seeded, "seeded dropout: the mask drawn again from its seed in backward");
  m.def("packed_add", &packed_add, "packed dropout(x) + residual in one pass");
  m.def("seeded_add", &seeded_add, "seeded dropout(x) + residual in one pass");
  m.def("raw_forward", &raw_forward, "(y, bits) from an explicit seed (tests)");
  m.def("raw_backward", &raw_backward, "grad * keep / (1 - p) from bits (tests)");
}
