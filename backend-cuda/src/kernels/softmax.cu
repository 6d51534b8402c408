// Softmax family: softmax and log_softmax along one axis and their backward
// ops (inputs (y, dy), y the forward output):
//   softmax:     y = e^(x - m) / sum e^(x - m)     dx = y * (dy - sum(dy * y))
//   log_softmax: y = x - (m + log sum e^(x - m))   dx = dy - e^y * sum(dy)
// with m the row's NaN-propagating maximum, as backend-cpu/src/softmax.rs:
// a row whose maximum is NaN or infinite gives NaN everywhere; sums
// accumulate in double; f32 rows use the CPU's f32 formulas (e^(x - m) in
// f32 times the f32 reciprocal of the sum; x minus the f32 log-sum-exp).
//
// The host passes contiguous data viewed as [outer, n, inner] (n along the
// axis). Mappings:
// - softmax_warp_*  (inner == 1, n <= 32 * WARP_ELEMS): one warp per row;
//   the forward keeps the row in registers (one read, one write).
// - softmax_block_* (inner == 1, longer rows): one block per row; the
//   forward folds (max, sum) online in one pass, then writes in a second.
// - softmax_cols_*  (inner > 1): a 256-thread block is 32 columns (o, i) x 8
//   slices of the axis; warps read 32 neighbouring columns (coalesced).
// kind: 0 softmax, 1 log_softmax, 2 softmax_backward, 3 log_softmax_backward.

#define KIND_SOFTMAX 0
#define KIND_LOG 1
#define KIND_SOFTMAX_BWD 2
#define KIND_LOG_BWD 3


// NaN-propagating maximum step (CPU: max_step).
template <typename T> __device__ __forceinline__ T nan_max(T a, T v) { return (v > a || v != v) ? v : a; }

// A non-finite maximum makes the whole row NaN, as on the CPU.
template <typename T> __device__ __forceinline__ void ms_guard(T m, double& s) {
    if (!isfinite((double)m)) s = __longlong_as_double(0x7ff8000000000000LL);
}

template <typename T> __device__ __forceinline__ void warp_ms(T& m, double& s) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        T m2 = __shfl_xor_sync(FULL_MASK, m, o);
        double s2 = __shfl_xor_sync(FULL_MASK, s, o);
        sr_ms_merge(m, s, m2, s2);
    }
}

// (m, s) over the block; every thread gets the result.
template <typename T> __device__ void block_ms(T& m, double& s) {
    __shared__ T sm_m[32];
    __shared__ double sm_s[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    warp_ms(m, s);
    __syncthreads();
    if (lane == 0) {
        sm_m[warp] = m;
        sm_s[warp] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < nw; ++w) sr_ms_merge(m, s, sm_m[w], sm_s[w]);
        sm_m[0] = m;
        sm_s[0] = s;
    }
    __syncthreads();
    m = sm_m[0];
    s = sm_s[0];
}

// ---- per-row constants and outputs -----------------------------------------------------

// Forward output of x given the row's m and s (s already guarded).
template <typename T> struct Fwd;
template <> struct Fwd<float> {
    float m, k; // softmax: k = (f32)(1 / s); log_softmax: k = (f32)(m + log s)
    __device__ Fwd(float m_, double s, int kind)
        : m(m_), k(kind == KIND_SOFTMAX ? (float)(1.0 / s) : (float)((double)m_ + log(s))) {}
    __device__ float operator()(float x, int kind) const { return kind == KIND_SOFTMAX ? expf(x - m) * k : x - k; }
};
template <> struct Fwd<double> {
    double m, s, k;
    __device__ Fwd(double m_, double s_, int kind) : m(m_), s(s_), k(m_ + log(s_)) {}
    __device__ double operator()(double x, int kind) const { return kind == KIND_SOFTMAX ? exp(x - m) / s : x - k; }
};

// Backward: the row sum's term, and dx given the sum.
template <typename T> __device__ __forceinline__ double bwd_term(T y, T g, int kind) {
    return kind == KIND_SOFTMAX_BWD ? (double)(y * g) : (double)g;
}
template <typename T> __device__ __forceinline__ T bwd_out(T y, T g, T acc, int kind) {
    return kind == KIND_SOFTMAX_BWD ? y * (g - acc) : g - exp(y) * acc;
}

// ---- one warp per row -----------------------------------------------------------------

template <typename T, int E>
__device__ void softmax_warp(const T* x, const T* g, T* y, i64 rows, i64 n, int kind) {
    int lane = threadIdx.x & 31;
    i64 wpb = blockDim.x >> 5;
    for (i64 row = (i64)blockIdx.x * wpb + (threadIdx.x >> 5); row < rows; row += (i64)gridDim.x * wpb) {
        const T* xr = x + row * n;
        T* yr = y + row * n;
        if (kind >= KIND_SOFTMAX_BWD) {
            const T* gr = g + row * n;
            double acc = 0.0;
            for (i64 j = lane; j < n; j += 32) acc += bwd_term(xr[j], gr[j], kind);
            acc = sr_warp_sum(acc);
            T a = (T)acc;
            for (i64 j = lane; j < n; j += 32) yr[j] = bwd_out(xr[j], gr[j], a, kind);
            continue;
        }
        // Element lane + 32 * e, held in v[e] (registers: e is unrolled).
        T v[E];
        T m = sr_neg_inf<T>();
#pragma unroll
        for (int e = 0; e < E; ++e) {
            i64 j = lane + 32 * e;
            v[e] = j < n ? xr[j] : sr_neg_inf<T>();
            m = nan_max(m, v[e]);
        }
        m = sr_warp_max(m);
        double s = 0.0;
#pragma unroll
        for (int e = 0; e < E; ++e)
            if (lane + 32 * e < n) s += (double)exp(v[e] - m);
        s = sr_warp_sum(s);
        ms_guard(m, s);
        Fwd<T> f(m, s, kind);
#pragma unroll
        for (int e = 0; e < E; ++e) {
            i64 j = lane + 32 * e;
            if (j < n) yr[j] = f(v[e], kind);
        }
    }
}

// ---- one block per row --------------------------------------------------------------

template <typename T> __device__ void softmax_block(const T* x, const T* g, T* y, i64 rows, i64 n, int kind) {
    __shared__ double scratch[32];
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * n;
        T* yr = y + row * n;
        if (kind >= KIND_SOFTMAX_BWD) {
            const T* gr = g + row * n;
            double acc = 0.0;
            for (i64 j = threadIdx.x; j < n; j += blockDim.x) acc += bwd_term(xr[j], gr[j], kind);
            T a = (T)sr_block_sum(acc, scratch);
            for (i64 j = threadIdx.x; j < n; j += blockDim.x) yr[j] = bwd_out(xr[j], gr[j], a, kind);
            continue;
        }
        T m = sr_neg_inf<T>();
        double s = 0.0;
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) sr_ms_add(m, s, xr[j]);
        block_ms(m, s);
        ms_guard(m, s);
        Fwd<T> f(m, s, kind);
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) yr[j] = f(xr[j], kind);
    }
}

// ---- columns (inner > 1) --------------------------------------------------------------

template <typename T>
__device__ void softmax_cols(const T* x, const T* g, T* y, i64 outer, i64 n, i64 inner, int kind) {
    __shared__ T sm_m[256];
    __shared__ double sm_s[256];
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5; // 32 columns x 8 slices
    i64 cols = outer * inner;
    for (i64 cb = (i64)blockIdx.x * 32; cb < cols; cb += (i64)gridDim.x * 32) {
        i64 c = cb + tx;
        bool ok = c < cols;
        i64 o = ok ? c / inner : 0;
        i64 base = o * n * inner + (c - o * inner);
        const T* xc = x + base;
        T* yc = y + base;
        T m = sr_neg_inf<T>();
        double s = 0.0;
        if (kind >= KIND_SOFTMAX_BWD) {
            const T* gc = g + base;
            if (ok)
                for (i64 j = ty; j < n; j += 8) s += bwd_term(xc[j * inner], gc[j * inner], kind);
            sm_s[threadIdx.x] = s;
            __syncthreads();
            if (ty == 0) {
                for (int k = 1; k < 8; ++k) s += sm_s[k * 32 + tx];
                sm_s[tx] = s;
            }
            __syncthreads();
            T a = (T)sm_s[tx];
            if (ok)
                for (i64 j = ty; j < n; j += 8) yc[j * inner] = bwd_out(xc[j * inner], gc[j * inner], a, kind);
        } else {
            if (ok)
                for (i64 j = ty; j < n; j += 8) sr_ms_add(m, s, xc[j * inner]);
            sm_m[threadIdx.x] = m;
            sm_s[threadIdx.x] = s;
            __syncthreads();
            if (ty == 0) {
                for (int k = 1; k < 8; ++k) sr_ms_merge(m, s, sm_m[k * 32 + tx], sm_s[k * 32 + tx]);
                ms_guard(m, s);
                sm_m[tx] = m;
                sm_s[tx] = s;
            }
            __syncthreads();
            Fwd<T> f(sm_m[tx], sm_s[tx], kind);
            if (ok)
                for (i64 j = ty; j < n; j += 8) yc[j * inner] = f(xc[j * inner], kind);
        }
        __syncthreads(); // the shared arrays are reused by the next columns
    }
}

// ---- entry points ---------------------------------------------------------------------
// g (dy) is read only by the backward kinds (null otherwise).

#define SOFTMAX_KERNELS(SUF, T, E)                                                                           \
    extern "C" __global__ void softmax_warp_##SUF(const T* x, const T* g, T* y, i64 rows, i64 n, int kind) { \
        softmax_warp<T, E>(x, g, y, rows, n, kind);                                                          \
    }                                                                                                        \
    extern "C" __global__ void softmax_block_##SUF(const T* x, const T* g, T* y, i64 rows, i64 n, int kind) { \
        softmax_block<T>(x, g, y, rows, n, kind);                                                            \
    }                                                                                                        \
    extern "C" __global__ void softmax_cols_##SUF(const T* x, const T* g, T* y, i64 outer, i64 n, i64 inner, \
                                                  int kind) {                                               \
        softmax_cols<T>(x, g, y, outer, n, inner, kind);                                                     \
    }

// WARP_ELEMS: 32 per lane for f32 (rows up to 1024), 16 for f64 (up to 512).
SOFTMAX_KERNELS(f32, float, 32)
SOFTMAX_KERNELS(f64, double, 16)
