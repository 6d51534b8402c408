// Shared by every kernel module of the sunrise CUDA backend; prepended to
// each module's source before NVRTC compiles it (see src/kernels.rs).
// No headers: NVRTC compiles without a CUDA toolkit present.

typedef long long i64;
typedef unsigned char u8;

#define SR_MAX_RANK 8

// A tensor's layout, passed by value. Must match `Strided` in src/launch.rs:
// 136 bytes, shape at 0, strides at 64, rank at 128, contiguous at 132.
struct Strided {
    i64 shape[SR_MAX_RANK];   // extents; dims past rank are 1
    i64 strides[SR_MAX_RANK]; // in elements; dims past rank are 0
    int rank;
    int contiguous;           // 1: strides are row-major for shape
};

// Element offset of the i-th element in row-major order of t's shape.
__device__ __forceinline__ i64 sr_offset(const Strided& t, i64 i) {
    if (t.contiguous) return i;
    // Not unrolled: one loop body per call site keeps NVRTC fast and the
    // kernels small; the contiguous path above is the fast one.
    i64 off = 0;
#pragma unroll 1
    for (int d = t.rank - 1; d >= 0; --d) {
        i64 n = t.shape[d];
        // 32-bit division when both fit: several times cheaper than 64-bit.
        i64 q = (((unsigned long long)(i | n)) >> 32) == 0 ? (i64)((unsigned)i / (unsigned)n) : i / n;
        off += (i - q * n) * t.strides[d];
        i = q;
    }
    return off;
}

// Grid-stride loop over [0, n).
#define SR_LOOP(i, n)                                                         \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n);     \
         i += (i64)blockDim.x * gridDim.x)

__device__ __forceinline__ float sr_nan(float) { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ double sr_nan(double) { return __longlong_as_double(0x7ff8000000000000LL); }

#define FULL_MASK 0xffffffffu

template <typename T> __device__ __forceinline__ T sr_neg_inf();
template <> __device__ __forceinline__ float sr_neg_inf<float>() { return __int_as_float(0xff800000); }
template <> __device__ __forceinline__ double sr_neg_inf<double>() { return __longlong_as_double(0xfff0000000000000LL); }

// Online (max, sum of e^(x - max)) for softmax rows and the fused loss.
// State (m, s): m the running max, s = sum e^(x - m) over the elements seen.
// Elements equal to -inf add nothing while m is -inf (so an all -inf row
// ends with m = -inf, and then x - m is NaN: the CPU's NaN row). Rescales
// use double exp; the per-element e^(x - m) is in T, like the CPU's.

template <typename T> __device__ __forceinline__ void sr_ms_add(T& m, double& s, T v) {
    if (v > m || v != v) {
        s = (m == sr_neg_inf<T>()) ? 1.0 : s * exp((double)m - (double)v) + 1.0;
        m = v;
    } else if (m != sr_neg_inf<T>()) {
        s += (double)exp(v - m);
    }
}

template <typename T> __device__ __forceinline__ void sr_ms_merge(T& m, double& s, T m2, double s2) {
    if (m2 > m || m2 != m2) {
        s = (m == sr_neg_inf<T>()) ? s2 : s * exp((double)m - (double)m2) + s2;
        m = m2;
    } else if (m2 != sr_neg_inf<T>()) {
        s += s2 * exp((double)m2 - (double)m);
    }
}

// Warp and block reductions (blockDim.x a multiple of 32, at most 1024).
template <typename T> __device__ __forceinline__ T sr_warp_sum(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <typename T> __device__ __forceinline__ T sr_warp_max(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        T w = __shfl_xor_sync(0xffffffffu, v, o);
        v = (w > v || w != w) ? w : v;   // NaN wins, as on the CPU
    }
    return v;
}
// Sum over the block; every thread gets the result. `scratch` holds 32 T.
template <typename T> __device__ T sr_block_sum(T v, T* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = sr_warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    int nw = (blockDim.x + 31) >> 5;
    v = (threadIdx.x < nw) ? scratch[threadIdx.x] : (T)0;
    if (warp == 0) v = sr_warp_sum(v);
    if (threadIdx.x == 0) scratch[0] = v;
    __syncthreads();
    return scratch[0];
}
template <typename T> __device__ T sr_block_max(T v, T* scratch, T lowest) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = sr_warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    int nw = (blockDim.x + 31) >> 5;
    v = (threadIdx.x < nw) ? scratch[threadIdx.x] : lowest;
    if (warp == 0) v = sr_warp_max(v);
    if (threadIdx.x == 0) scratch[0] = v;
    __syncthreads();
    return scratch[0];
}
