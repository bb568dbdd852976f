// PM-Drop CUDA kernels, the same random stream as the Triton kernels (pmexp/dropout/kernels.py).
//
// Element e lies in tile t = e / 4096; within the tile, chunk j = (e % 4096) / 1024 takes output
// j of Philox-4x32-10 at counter c0 = t * 1024 + e % 1024 (c1 = c2 = c3 = 0, key = the 64-bit
// seed), kept when (r >> 1) >= threshold as 31-bit integers. Same seed, same mask as Triton's
// tl.randint4x, so the two backends are interchangeable and tested against each other.
//
// This file includes no torch header (it compiles in seconds); pmdrop.cpp launches it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

namespace pmdrop {

constexpr int kTile = 4096;
constexpr int kCounters = kTile / 4;  // Philox calls per tile
constexpr int kThreads = 256;         // a thread: 4 counters x 4 outputs = 16 elements of a tile

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ double to_f(double v) { return v; }

template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <typename T> __device__ __forceinline__ T zero() { return from_f<T>(0.0f); }
template <> __device__ __forceinline__ double zero<double>() { return 0.0; }

// x * scale in the compute type (fp32; fp64 for double, with the scale rounded to fp32 as Triton does),
// rounded to T: exactly what the Triton kernel stores.
template <typename T> __device__ __forceinline__ T scaled(T x, float scale) { return from_f<T>(to_f(x) * scale); }
template <> __device__ __forceinline__ double scaled<double>(double x, float scale) { return x * (double)scale; }
// d + r rounded to R, as torch's add computes a T plus an R (in fp32 for half types; R is T, or float32 for a
// half-type d: torch's promotion under autocast, where BERT's residual comes from an fp32 LayerNorm).
template <typename R, typename T> __device__ __forceinline__ R add(T d, R r) { return from_f<R>(to_f(d) + to_f(r)); }
template <> __device__ __forceinline__ double add<double, double>(double d, double r) { return d + r; }

struct Philox4 {
  uint32_t r[4];
};

// c1..c3 are 0 for the eager kernels' stream (Triton's tl.randint4x); bits_kernel sets them.
__device__ __forceinline__ Philox4 philox(uint32_t c0, uint64_t seed, uint32_t c1 = 0, uint32_t c2 = 0,
                                          uint32_t c3 = 0) {
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
  for (int i = 0; i < 10; ++i) {
    const uint32_t a0 = c0, a2 = c2;
    c0 = __umulhi(0xCD9E8D57u, a2) ^ c1 ^ k0;
    c2 = __umulhi(0xD2511F53u, a0) ^ c3 ^ k1;
    c1 = 0xCD9E8D57u * a2;
    c3 = 0xD2511F53u * a0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

template <typename T>
struct alignas(4 * sizeof(T)) Vec4 {
  T v[4];
};

// y = keep ? x * scale : 0 (+ residual when ADD); the keep bits packed 8 per byte when STORE. R: the residual's and
// y's type when ADD (T, or float32 for half types), else T.
// seed_ptr, when given, holds the seed on the device (CUDA-graph capture: a fresh seed per replay).
// A thread takes 4 consecutive counters of its tile, so in each of the tile's 4 chunks it reads and
// writes 4 consecutive elements (one vector access when VEC) and owns half a byte of the bits; the
// loads are all issued before the Philox rounds, which then hide their latency.
// Whether Philox output r keeps its element: keep_threshold(p) (pmdrop.cpp) against its top 31 bits.
__device__ __forceinline__ bool keeps(uint32_t r, int32_t threshold) { return (int32_t)(r >> 1) >= threshold; }

// Stores the keep bits of this thread's 4 elements e..e+3 (nibble) and the next thread's 4 as one byte: even
// threads write, odd ones lend their nibble. Every lane of the warp must call it (a warp shuffle).
__device__ __forceinline__ void store_bits(uint8_t* __restrict__ bits, int64_t e, int64_t n, uint32_t nibble) {
  const uint32_t high = __shfl_down_sync(0xffffffffu, nibble, 1);  // the next 4 elements' bits
  if ((threadIdx.x & 1) == 0 && e < n) bits[e / 8] = (uint8_t)(nibble | (high << 4));
}

template <typename T, typename R, bool STORE, bool ADD, bool VEC>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ x, const R* __restrict__ residual, R* __restrict__ y,
                   uint8_t* __restrict__ bits, int64_t n, const int64_t* __restrict__ seed_ptr, uint64_t seed,
                   int32_t threshold, float scale) {
  if (seed_ptr != nullptr) seed = (uint64_t)(*seed_ptr);
  const int64_t base = (int64_t)blockIdx.x * kTile;
  const int c0 = threadIdx.x * 4;  // this thread's first counter within the tile
  const bool full = VEC && base + kTile <= n;
  Vec4<T> xv[4];
  Vec4<R> rv[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t e = base + j * kCounters + c0;
    if (full) {
      xv[j] = *reinterpret_cast<const Vec4<T>*>(x + e);
      if (ADD) rv[j] = *reinterpret_cast<const Vec4<R>*>(residual + e);
    } else {
#pragma unroll
      for (int v = 0; v < 4; ++v) {
        xv[j].v[v] = e + v < n ? x[e + v] : zero<T>();
        if (ADD) rv[j].v[v] = e + v < n ? residual[e + v] : zero<R>();
      }
    }
  }
  uint32_t r[4][4];  // r[v][j]: output j of this thread's counter c0 + v
#pragma unroll
  for (int v = 0; v < 4; ++v) {
    const Philox4 p = philox((uint32_t)(blockIdx.x * (int64_t)kCounters + c0 + v), seed);
#pragma unroll
    for (int j = 0; j < 4; ++j) r[v][j] = p.r[j];
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t e = base + j * kCounters + c0;
    Vec4<R> out;
    uint32_t nibble = 0;
#pragma unroll
    for (int v = 0; v < 4; ++v) {
      const bool keep = e + v < n && keeps(r[v][j], threshold);
      nibble |= (uint32_t)keep << v;
      const T o = keep ? scaled<T>(xv[j].v[v], scale) : zero<T>();  // torch rounds dropout's output to T first
      if constexpr (ADD) {
        out.v[v] = add<R>(o, rv[j].v[v]);
      } else {
        out.v[v] = o;  // R is T
      }
    }
    if (full) {
      *reinterpret_cast<Vec4<R>*>(y + e) = out;
    } else {
#pragma unroll
      for (int v = 0; v < 4; ++v)
        if (e + v < n) y[e + v] = out.v[v];
    }
    if (STORE) store_bits(bits, e, n, nibble);
  }
}

template <typename T>
struct alignas(8 * sizeof(T)) Vec8 {
  T v[8];
};

// dx = keep ? grad * scale : 0 with keep read from the bits; one byte (8 elements) per thread.
template <typename T, bool VEC>
__global__ void backward_kernel(const T* __restrict__ grad, T* __restrict__ dx, const uint8_t* __restrict__ bits,
                                int64_t n, float scale) {
  const int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t e0 = b * 8;
  if (e0 >= n) return;
  const uint32_t byte = bits[b];
  if (VEC && e0 + 8 <= n) {
    const Vec8<T> g = reinterpret_cast<const Vec8<T>*>(grad)[b];
    Vec8<T> out;
#pragma unroll
    for (int i = 0; i < 8; ++i) out.v[i] = ((byte >> i) & 1u) ? scaled<T>(g.v[i], scale) : zero<T>();
    reinterpret_cast<Vec8<T>*>(dx)[b] = out;
  } else {
    for (int i = 0; i < 8 && e0 + i < n; ++i) dx[e0 + i] = ((byte >> i) & 1u) ? scaled<T>(grad[e0 + i], scale) : zero<T>();
  }
}

// Keep bits alone for compiled packed (pmexp_native::philox_bits), in forward_kernel's layout, from torch's CUDA
// generator as its own kernels use it: key = the generator's seed, and the counter's high words its offset
// (c1, c2; a fresh offset per call) and kStreamTag (c3), which torch's curand streams (c3 = the high word of a
// thread index) never reach. Under CUDA-graph capture the seed and offset are read from the generator's device
// memory (graph-safe: a fresh offset per replay). Block 0 also writes the bytes 0..7 after the bits: the bit
// shifts compiled unpacking reads, so no graph builds its own (a kernel and a saved buffer per call; traced.py).
constexpr uint32_t kStreamTag = 0x504D4450u;  // "PMDP"

__global__ void __launch_bounds__(kThreads)
    bits_kernel(uint8_t* __restrict__ bits, int64_t n, const int64_t* seed_ptr, const int64_t* offset_ptr,
                uint64_t seed, uint64_t offset, int32_t threshold) {
  if (seed_ptr != nullptr) {
    seed = (uint64_t)(*seed_ptr);
    offset += (uint64_t)(*offset_ptr);  // offset: the intragraph part under capture
  }
  const int64_t base = (int64_t)blockIdx.x * kTile;
  const int c0 = threadIdx.x * 4;
  uint32_t r[4][4];
#pragma unroll
  for (int v = 0; v < 4; ++v) {
    const Philox4 p = philox((uint32_t)(blockIdx.x * (int64_t)kCounters + c0 + v), seed, (uint32_t)offset,
                             (uint32_t)(offset >> 32), kStreamTag);
#pragma unroll
    for (int j = 0; j < 4; ++j) r[v][j] = p.r[j];
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t e = base + j * kCounters + c0;
    uint32_t nibble = 0;
#pragma unroll
    for (int v = 0; v < 4; ++v) nibble |= (uint32_t)(e + v < n && keeps(r[v][j], threshold)) << v;
    store_bits(bits, e, n, nibble);
  }
  if (blockIdx.x == 0 && threadIdx.x < 8) bits[(n + 7) / 8 + threadIdx.x] = (uint8_t)threadIdx.x;
}

void launch_bits(uint8_t* bits, int64_t n, const int64_t* seed_ptr, const int64_t* offset_ptr, uint64_t seed,
                 uint64_t offset, int32_t threshold, cudaStream_t stream) {
  const unsigned grid = (unsigned)((n + kTile - 1) / kTile);
  bits_kernel<<<grid > 0 ? grid : 1, kThreads, 0, stream>>>(bits, n, seed_ptr, offset_ptr, seed, offset, threshold);
}

// dtype codes shared with pmdrop.cpp: 0 float32, 1 float16, 2 bfloat16, 3 float64.
template <typename F>
void by_dtype(int dtype, F&& f) {
  switch (dtype) {
    case 0: f(static_cast<float*>(nullptr)); break;
    case 1: f(static_cast<__half*>(nullptr)); break;
    case 2: f(static_cast<__nv_bfloat16*>(nullptr)); break;
    default: f(static_cast<double*>(nullptr)); break;
  }
}

template <typename T, typename R, bool VEC>
void launch_forward_typed(const T* x, const R* rs, R* y, uint8_t* bits, int64_t n, const int64_t* seed_ptr,
                          uint64_t seed, int32_t threshold, float scale, cudaStream_t stream) {
  const unsigned grid = (unsigned)((n + kTile - 1) / kTile);
  if (bits != nullptr && rs != nullptr) {
    forward_kernel<T, R, true, true, VEC><<<grid, kThreads, 0, stream>>>(x, rs, y, bits, n, seed_ptr, seed, threshold, scale);
  } else if (rs != nullptr) {
    forward_kernel<T, R, false, true, VEC><<<grid, kThreads, 0, stream>>>(x, rs, y, bits, n, seed_ptr, seed, threshold, scale);
  } else if constexpr (std::is_same_v<T, R>) {  // no residual: y is T (torch's build forbids implicit half casts)
    if (bits != nullptr)
      forward_kernel<T, T, true, false, VEC><<<grid, kThreads, 0, stream>>>(x, rs, y, bits, n, seed_ptr, seed, threshold, scale);
    else
      forward_kernel<T, T, false, false, VEC><<<grid, kThreads, 0, stream>>>(x, rs, y, bits, n, seed_ptr, seed, threshold, scale);
  }
}

bool aligned(const void* p, uintptr_t bytes) { return p == nullptr || (uintptr_t)p % bytes == 0; }

template <typename T, typename R>
void launch_forward_as(const void* x, const void* residual, void* y, uint8_t* bits, int64_t n, const int64_t* seed_ptr,
                       uint64_t seed, int32_t threshold, float scale, cudaStream_t stream) {
  const T* xs = static_cast<const T*>(x);
  const R* rs = static_cast<const R*>(residual);
  R* ys = static_cast<R*>(y);
  if (aligned(x, 4 * sizeof(T)) && aligned(residual, 4 * sizeof(R)) && aligned(y, 4 * sizeof(R)))
    launch_forward_typed<T, R, true>(xs, rs, ys, bits, n, seed_ptr, seed, threshold, scale, stream);
  else  // a tensor starting mid-vector (a storage offset): element by element
    launch_forward_typed<T, R, false>(xs, rs, ys, bits, n, seed_ptr, seed, threshold, scale, stream);
}

// out_dtype: y's (and the residual's) dtype code; dtype's, or float32 (0) for a half-type x with a residual.
void launch_forward(int dtype, int out_dtype, const void* x, const void* residual, void* y, uint8_t* bits, int64_t n,
                    const int64_t* seed_ptr, uint64_t seed, int32_t threshold, float scale, cudaStream_t stream) {
  by_dtype(dtype, [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) {
      if (out_dtype == 0) {
        launch_forward_as<T, float>(x, residual, y, bits, n, seed_ptr, seed, threshold, scale, stream);
        return;
      }
    }
    launch_forward_as<T, T>(x, residual, y, bits, n, seed_ptr, seed, threshold, scale, stream);
  });
}

void launch_backward(int dtype, const void* grad, void* dx, const uint8_t* bits, int64_t n, float scale,
                     cudaStream_t stream) {
  const int threads = 256;
  const unsigned grid = (unsigned)(((n + 7) / 8 + threads - 1) / threads);
  by_dtype(dtype, [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const uintptr_t align = 8 * sizeof(T);
    const bool vec = ((uintptr_t)grad % align == 0) && ((uintptr_t)dx % align == 0);
    if (vec)
      backward_kernel<T, true><<<grid, threads, 0, stream>>>(static_cast<const T*>(grad), static_cast<T*>(dx), bits, n, scale);
    else
      backward_kernel<T, false><<<grid, threads, 0, stream>>>(static_cast<const T*>(grad), static_cast<T*>(dx), bits, n, scale);
  });
}

}  // namespace pmdrop
