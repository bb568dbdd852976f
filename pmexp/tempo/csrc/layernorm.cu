// Tempo LayerNorm's backward from its output, as CUDA (pmexp/tempo/ln_kernels.py has the Triton kernel this
// ports; the same formulas in float32, reductions in another order). Per row of n normalized elements:
// x_hat = (y - b) / w (IEEE division), gw = g * w, dx = rstd * (gw - mean(gw) - x_hat * mean(gw * x_hat)) in
// grad's dtype; dw and db summed over a block's rows in float32 registers and written as one partial row per
// block, which torch then sums (deterministic: no atomics). One block of 256 threads per 16 rows; a thread
// holds n / 256 columns (rounded up to a power of two, n <= 4096). This file includes no torch header.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "half.cuh"

#include <type_traits>

namespace pmtempo {

constexpr int kLnThreads = 256;
constexpr int kLnWarps = kLnThreads / 32;
constexpr int kLnRows = 16;  // rows per block: 512 blocks for BERT-large's 8192 rows, partial sums 512 x n

// (sum of a, sum of b) over the block; every thread gets both. shared: 2 * kLnWarps + 2 floats.
__device__ __forceinline__ float2 block_sum2(float a, float b, float* shared) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    a += __shfl_xor_sync(0xffffffffu, a, o);
    b += __shfl_xor_sync(0xffffffffu, b, o);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    shared[warp] = a;
    shared[kLnWarps + warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < kLnWarps ? shared[lane] : 0.0f;
    b = lane < kLnWarps ? shared[kLnWarps + lane] : 0.0f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      a += __shfl_xor_sync(0xffffffffu, a, o);
      b += __shfl_xor_sync(0xffffffffu, b, o);
    }
    if (lane == 0) {
      shared[2 * kLnWarps] = a;
      shared[2 * kLnWarps + 1] = b;
    }
  }
  __syncthreads();
  const float2 sums = make_float2(shared[2 * kLnWarps], shared[2 * kLnWarps + 1]);
  __syncthreads();  // the next row's partial sums overwrite shared
  return sums;
}

template <typename T, typename W, int VPT>
__global__ void __launch_bounds__(kLnThreads)
    ln_backward_kernel(const T* __restrict__ g, const T* __restrict__ y, const W* __restrict__ w,
                       const W* __restrict__ b, const float* __restrict__ rstd, T* __restrict__ dx,
                       float* __restrict__ dw_part, float* __restrict__ db_part, int64_t m, int n) {
  __shared__ float shared[2 * kLnWarps + 2];
  float wv[VPT], bv[VPT], dw[VPT], db[VPT];
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    const int col = threadIdx.x + j * kLnThreads;
    wv[j] = col < n ? to_f(w[col]) : 1.0f;
    bv[j] = col < n ? to_f(b[col]) : 0.0f;
    dw[j] = db[j] = 0.0f;
  }
  for (int r = 0; r < kLnRows; ++r) {
    const int64_t row = (int64_t)blockIdx.x * kLnRows + r;
    if (row >= m) break;  // the same for every thread of the block: no thread skips a barrier
    const int64_t off = row * n;
    float gv[VPT], gw[VPT], xh[VPT], s1 = 0.0f, s2 = 0.0f;
#pragma unroll
    for (int j = 0; j < VPT; ++j) {
      const int col = threadIdx.x + j * kLnThreads;
      gv[j] = col < n ? to_f(g[off + col]) : 0.0f;
      xh[j] = col < n ? __fdiv_rn(to_f(y[off + col]) - bv[j], wv[j]) : 0.0f;
      gw[j] = __fmul_rn(gv[j], wv[j]);  // not contracted into the subtraction below: gw - mean(gw) is then
      s1 += gw[j] * xh[j];                // exactly 0 where it should be (one element a row), as stock's
      s2 += gw[j];
    }
    const float2 sums = block_sum2(s1, s2, shared);
    const float c1 = sums.x / n, c2 = sums.y / n, rs = rstd[row];
#pragma unroll
    for (int j = 0; j < VPT; ++j) {
      const int col = threadIdx.x + j * kLnThreads;
      if (col < n) {
        dx[off + col] = from_f<T>((gw[j] - c2 - xh[j] * c1) * rs);
        dw[j] += gv[j] * xh[j];
        db[j] += gv[j];
      }
    }
  }
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    const int col = threadIdx.x + j * kLnThreads;
    if (col < n) {
      dw_part[(int64_t)blockIdx.x * n + col] = dw[j];
      db_part[(int64_t)blockIdx.x * n + col] = db[j];
    }
  }
}

template <typename T, typename W>
void ln_backward_typed(const void* g, const void* y, const void* w, const void* b, const float* rstd, void* dx,
                       float* dw_part, float* db_part, int64_t m, int n, cudaStream_t stream) {
  const unsigned grid = (unsigned)((m + kLnRows - 1) / kLnRows);
  auto launch = [&](auto vpt) {
    ln_backward_kernel<T, W, decltype(vpt)::value><<<grid, kLnThreads, 0, stream>>>(
        static_cast<const T*>(g), static_cast<const T*>(y), static_cast<const W*>(w), static_cast<const W*>(b), rstd,
        static_cast<T*>(dx), dw_part, db_part, m, n);
  };
  if (n <= 256) launch(std::integral_constant<int, 1>{});
  else if (n <= 512) launch(std::integral_constant<int, 2>{});
  else if (n <= 1024) launch(std::integral_constant<int, 4>{});
  else if (n <= 2048) launch(std::integral_constant<int, 8>{});
  else launch(std::integral_constant<int, 16>{});
}

// dtype codes as tempo.cpp: 0 float32, 1 float16, 2 bfloat16; the weight's code is the input's or 0.
// n <= 4096 (tempo.cpp checks).
void launch_ln_backward(int dtype, int weight_dtype, const void* g, const void* y, const void* w, const void* b,
                        const float* rstd, void* dx, float* dw_part, float* db_part, int64_t m, int n,
                        cudaStream_t stream) {
  if (dtype == 0)
    ln_backward_typed<float, float>(g, y, w, b, rstd, dx, dw_part, db_part, m, n, stream);
  else if (dtype == 1 && weight_dtype == 1)
    ln_backward_typed<__half, __half>(g, y, w, b, rstd, dx, dw_part, db_part, m, n, stream);
  else if (dtype == 1)
    ln_backward_typed<__half, float>(g, y, w, b, rstd, dx, dw_part, db_part, m, n, stream);
  else if (weight_dtype == 2)
    ln_backward_typed<__nv_bfloat16, __nv_bfloat16>(g, y, w, b, rstd, dx, dw_part, db_part, m, n, stream);
  else
    ln_backward_typed<__nv_bfloat16, float>(g, y, w, b, rstd, dx, dw_part, db_part, m, n, stream);
}

}  // namespace pmtempo
