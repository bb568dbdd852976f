// Tempo GELU's eager CUDA path in C++ for 16-bit activations: the autograd node and the launches, so a
// call costs about what torch's GELU costs on the host (the Python autograd.Function and Triton's launcher
// cost ~3x that: H200, 368 against 127 us forward+backward, runs/2026-11-30-tempo-gelu-table). Forward is
// torch's exact GELU plus the branch bits; backward gathers g' from pmexp.tempo.kernels.grad_table's table
// (built by Python, passed in). Built on first use by pmexp/tempo/native.py.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

namespace pmtempo {
void launch_branch_bits(int dtype, const void* x, uint8_t* bits, int64_t n, float threshold, cudaStream_t stream);
void launch_backward(int grad_dtype, const void* grad, const uint16_t* y_bits, const uint8_t* branch,
                     const float* table, void* dx, int64_t n, cudaStream_t stream);
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

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Tempo GELU for 16-bit CUDA tensors with its autograd node in C++ (pmexp.tempo.native)";
  m.def("gelu", &gelu, "exact GELU keeping its output and the branch bits; backward from the g' table");
}
