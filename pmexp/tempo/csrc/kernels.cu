// Tempo GELU's CUDA kernels for 16-bit activations (pmexp/tempo/kernels.py has the Triton ones these match):
// the branch bits of forward, and backward's g' gathered from the float32 table of pmexp.tempo.kernels.grad_table.
// Same bits, same products as the Triton kernels (tests/test_tempo_gpu.py compares them). One byte of bits
// (8 elements) per thread. This file includes no torch header; tempo.cpp launches it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "half.cuh"

namespace pmtempo {

constexpr int kThreads = 256;
constexpr int kPatterns = 1 << 16;  // bit patterns of a 16-bit y: table entries per branch

unsigned grid_of(int64_t n) { return (unsigned)(((n + 7) / 8 + kThreads - 1) / kThreads); }

template <typename T>
struct alignas(8 * sizeof(T)) Vec8 {  // one byte of bits' elements: one or two 16-byte loads
  T v[8];
};

// bits[b] bit i = x[8b + i] >= threshold (compared in float32: exact for 16-bit x; NaN gives 0).
template <typename T, bool VEC>
__global__ void branch_bits_kernel(const T* __restrict__ x, uint8_t* __restrict__ bits, int64_t n, float threshold) {
  const int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t e0 = b * 8;
  if (e0 >= n) return;
  uint32_t byte = 0;
  if (VEC && e0 + 8 <= n) {
    const Vec8<T> xs = reinterpret_cast<const Vec8<T>*>(x)[b];
#pragma unroll
    for (int i = 0; i < 8; ++i) byte |= (uint32_t)(to_f(xs.v[i]) >= threshold) << i;
  } else {
    for (int i = 0; i < 8 && e0 + i < n; ++i) byte |= (uint32_t)(to_f(x[e0 + i]) >= threshold) << i;
  }
  bits[b] = (uint8_t)byte;
}

// dx = grad * table[branch * 65536 + bits(y)], the product in float32, rounded once to grad's dtype.
template <typename G, bool VEC>
__global__ void backward_kernel(const G* __restrict__ grad, const uint16_t* __restrict__ y_bits,
                                const uint8_t* __restrict__ branch, const float* __restrict__ table,
                                G* __restrict__ dx, int64_t n) {
  const int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t e0 = b * 8;
  if (e0 >= n) return;
  const uint32_t byte = branch[b];
  if (VEC && e0 + 8 <= n) {
    const Vec8<G> g = reinterpret_cast<const Vec8<G>*>(grad)[b];
    const Vec8<uint16_t> y = reinterpret_cast<const Vec8<uint16_t>*>(y_bits)[b];
    Vec8<G> out;
#pragma unroll
    for (int i = 0; i < 8; ++i) out.v[i] = from_f<G>(to_f(g.v[i]) * __ldg(table + ((byte >> i) & 1u) * kPatterns + y.v[i]));
    reinterpret_cast<Vec8<G>*>(dx)[b] = out;
  } else {
    for (int i = 0; i < 8 && e0 + i < n; ++i)
      dx[e0 + i] = from_f<G>(to_f(grad[e0 + i]) * __ldg(table + ((byte >> i) & 1u) * kPatterns + y_bits[e0 + i]));
  }
}

bool aligned(const void* p, size_t bytes) { return (uintptr_t)p % bytes == 0; }

template <typename T>
void branch_bits_typed(const void* x, uint8_t* bits, int64_t n, float threshold, cudaStream_t stream) {
  const T* xt = static_cast<const T*>(x);
  if (aligned(x, sizeof(Vec8<T>)))
    branch_bits_kernel<T, true><<<grid_of(n), kThreads, 0, stream>>>(xt, bits, n, threshold);
  else
    branch_bits_kernel<T, false><<<grid_of(n), kThreads, 0, stream>>>(xt, bits, n, threshold);
}

template <typename G>
void backward_typed(const void* grad, const uint16_t* y_bits, const uint8_t* branch, const float* table, void* dx,
                    int64_t n, cudaStream_t stream) {
  const G* g = static_cast<const G*>(grad);
  G* out = static_cast<G*>(dx);
  if (aligned(grad, sizeof(Vec8<G>)) && aligned(dx, sizeof(Vec8<G>)) && aligned(y_bits, sizeof(Vec8<uint16_t>)))
    backward_kernel<G, true><<<grid_of(n), kThreads, 0, stream>>>(g, y_bits, branch, table, out, n);
  else
    backward_kernel<G, false><<<grid_of(n), kThreads, 0, stream>>>(g, y_bits, branch, table, out, n);
}

// dtype codes shared with tempo.cpp: 0 float32, 1 float16, 2 bfloat16.
void launch_branch_bits(int dtype, const void* x, uint8_t* bits, int64_t n, float threshold, cudaStream_t stream) {
  if (dtype == 1)
    branch_bits_typed<__half>(x, bits, n, threshold, stream);
  else
    branch_bits_typed<__nv_bfloat16>(x, bits, n, threshold, stream);
}

void launch_backward(int grad_dtype, const void* grad, const uint16_t* y_bits, const uint8_t* branch,
                     const float* table, void* dx, int64_t n, cudaStream_t stream) {
  if (grad_dtype == 0)
    backward_typed<float>(grad, y_bits, branch, table, dx, n, stream);
  else if (grad_dtype == 1)
    backward_typed<__half>(grad, y_bits, branch, table, dx, n, stream);
  else
    backward_typed<__nv_bfloat16>(grad, y_bits, branch, table, dx, n, stream);
}

}  // namespace pmtempo
