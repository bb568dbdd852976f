// Tempo's eager CUDA layers in C++: the autograd nodes and the launches, so a call costs about what torch's
// own layer costs on the host (a Python autograd.Function and Triton's launcher cost 2-3x that: H200, GELU
// 277 against 104 us forward+backward, LayerNorm 295 against 166; runs/2026-11-30-tempo-native). With these
// nodes: GELU 185 against 120, LayerNorm 196 against 191 (runs/2026-11-30-tempo-ln-native).
// - gelu (16-bit activations): torch's exact GELU plus the branch bits; backward gathers g' from
//   pmexp.tempo.kernels.grad_table's table (built by Python, passed in).
// - layer_norm (last dim, weight and bias): torch's LayerNorm forward and a device-side zero-weight check;
//   backward from the output and rstd (layernorm.cu).
// Built on first use by pmexp/tempo/native.py.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

namespace pmtempo {
void launch_branch_bits(int dtype, const void* x, uint8_t* bits, int64_t n, float threshold, cudaStream_t stream);
void launch_backward(int grad_dtype, const void* grad, const uint16_t* y_bits, const uint8_t* branch,
                     const float* table, void* dx, int64_t n, cudaStream_t stream);
void launch_ln_backward(int dtype, int weight_dtype, const void* g, const void* y, const void* w, const void* b,
                        const float* rstd, void* dx, float* dw_part, float* db_part, int64_t m, int n,
                        cudaStream_t stream);
}  // namespace pmtempo

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kTableSize = 2 << 16;  // g' for both branches of every 16-bit y

int dtype_code(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return 0;
    case at::kHalf: return 1;
    case at::kBFloat16: return 2;
    default: TORCH_CHECK(false, "pmexp native Tempo GELU: unsupported dtype ", t.scalar_type());
  }
  return -1;
}

struct TempoGelu : public torch::autograd::Function<TempoGelu> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& table, double threshold) {
    const c10::cuda::CUDAGuard guard(x.device());
    at::Tensor y = at::gelu(x);  // in x's layout, as F.gelu in the Python path
    const at::Tensor xc = x.contiguous();
    const int64_t n = xc.numel();
    at::Tensor bits = at::empty({(n + 7) / 8}, x.options().dtype(at::kByte));
    if (n > 0) {
      pmtempo::launch_branch_bits(dtype_code(xc), xc.const_data_ptr(), bits.data_ptr<uint8_t>(), n, (float)threshold,
                                  c10::cuda::getCurrentCUDAStream().stream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    ctx->save_for_backward({y, bits, table});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor y = saved[0].contiguous(), grad = grads[0].contiguous();
    const c10::cuda::CUDAGuard guard(grad.device());
    at::Tensor dx = at::empty(grad.sizes(), grad.options());
    const int64_t n = grad.numel();
    if (n > 0) {
      pmtempo::launch_backward(dtype_code(grad), grad.const_data_ptr(), static_cast<const uint16_t*>(y.const_data_ptr()),
                               saved[1].const_data_ptr<uint8_t>(), saved[2].const_data_ptr<float>(), dx.data_ptr(), n,
                               c10::cuda::getCurrentCUDAStream().stream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    return {dx, at::Tensor(), at::Tensor()};
  }
};

at::Tensor gelu(const at::Tensor& x, const at::Tensor& table, double threshold) {
  TORCH_CHECK(x.is_cuda() && (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16),
              "pmexp native Tempo GELU: expected a float16 or bfloat16 CUDA tensor, got ", x.scalar_type(), " on ",
              x.device());
  TORCH_CHECK(table.scalar_type() == at::kFloat && table.device() == x.device() && table.numel() == kTableSize &&
                  table.is_contiguous(),
              "pmexp native Tempo GELU: the table must be pmexp.tempo.kernels.grad_table(x.dtype, x.device)");
  return TempoGelu::apply(x, table, threshold);
}

constexpr int64_t kLnMaxColumns = 4096;  // layernorm.cu: 256 threads x 16 columns
constexpr int64_t kLnRows = 16;          // rows per block, as layernorm.cu
constexpr const char* kZeroWeight =
    "Tempo layer_norm recovers x_hat as (y - bias) / weight, but weight has entries equal to 0; keep torch's "
    "nn.LayerNorm for this module";

struct TempoLayerNorm : public torch::autograd::Function<TempoLayerNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, double eps) {
    const c10::cuda::CUDAGuard guard(x.device());
    at::_assert_async(weight.all(), kZeroWeight);  // weight.all(): nonzero, -0.0 and NaN included; no host sync
    auto [y, mean, rstd] = at::native_layer_norm(x, {x.size(-1)}, weight, bias, eps);
    ctx->save_for_backward({y, rstd, weight, bias});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor y = saved[0].contiguous(), rstd = saved[1].contiguous(), grad = grads[0].contiguous();
    const at::Tensor &weight = saved[2], &bias = saved[3];
    const c10::cuda::CUDAGuard guard(grad.device());
    const int64_t n = y.size(-1), m = n ? y.numel() / n : 0, blocks = (m + kLnRows - 1) / kLnRows;
    at::Tensor dx = at::empty(grad.sizes(), grad.options());
    // dw's and db's partial rows (one per block) in one float32 tensor, summed by one reduction
    const std::vector<int64_t> shape{2, std::max<int64_t>(blocks, 1), n};
    const auto options = y.options().dtype(at::kFloat);
    at::Tensor parts = m ? at::empty(shape, options) : at::zeros(shape, options);
    if (m > 0) {
      pmtempo::launch_ln_backward(dtype_code(y), dtype_code(weight), grad.const_data_ptr(), y.const_data_ptr(),
                                  weight.const_data_ptr(), bias.const_data_ptr(), rstd.const_data_ptr<float>(),
                                  dx.data_ptr(), parts[0].data_ptr<float>(), parts[1].data_ptr<float>(), m, (int)n,
                                  c10::cuda::getCurrentCUDAStream().stream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    const at::Tensor sums = parts.sum(1);
    return {dx, sums[0].to(weight.scalar_type()), sums[1].to(bias.scalar_type()), at::Tensor()};
  }
};

bool layer_norm_supports(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const auto t = x.scalar_type(), wt = weight.scalar_type();
  return x.is_cuda() && x.dim() >= 1 && x.size(-1) <= kLnMaxColumns && weight.dim() == 1 &&
         weight.size(0) == x.size(-1) && bias.sizes() == weight.sizes() && bias.scalar_type() == wt &&
         weight.is_contiguous() && bias.is_contiguous() &&
         weight.device() == x.device() && bias.device() == x.device() &&
         (t == at::kFloat || t == at::kHalf || t == at::kBFloat16) && (wt == t || wt == at::kFloat);
}

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  TORCH_CHECK(layer_norm_supports(x, weight, bias),
              "pmexp native Tempo layer_norm: expected a CUDA float32/float16/bfloat16 input normalized over its "
              "last dim (<= ", kLnMaxColumns, " elements) with a weight and bias of that size, float32 or the "
              "input's dtype (pmexp.tempo.layer_norm checks this and takes the Python path otherwise)");
  return TempoLayerNorm::apply(x, weight, bias, eps);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Tempo GELU (16-bit) and LayerNorm for CUDA tensors with their autograd nodes in C++ (pmexp.tempo.native)";
  m.def("gelu", &gelu, "exact GELU keeping its output and the branch bits; backward from the g' table");
  m.def("layer_norm", &layer_norm, "LayerNorm over the last dim keeping its output and rstd");
  m.def("layer_norm_supports", &layer_norm_supports, "whether layer_norm takes these tensors");
}
