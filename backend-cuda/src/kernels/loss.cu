// The fused cross-entropy pair, as backend-cpu/src/loss.rs:
//   cross_entropy(logits [N, C], labels i64 [N]) -> loss [N]:
//     logsumexp(row) - row[label], 0 where label == ignore_index;
//   cross_entropy_backward(logits, labels, dloss [N]) -> dlogits [N, C]:
//     softmax(row) * dloss - onehot(label) * dloss, a zero row where ignored.
// logsumexp is m + log sum e^(x - m) with m the NaN-propagating row maximum,
// and m itself when m is infinite (the CPU's rule); the softmax of the
// backward is NaN for a row whose maximum is NaN or infinite. f32 rows use
// the CPU's f32 formulas; sums accumulate in double.
//
// Mapping: logits contiguous (the host copies strided ones); a team per
// sample row: a warp for rows up to 1024 classes, else the whole block.
// One online pass folds (max, sum e^(x - max)); the backward writes in a
// second pass. Labels and dloss may be strided ([N] with any stride).
// ce_check runs first: one thread per sample, the first invalid sample
// index lands in *first (atomicMin), which the host reads before anything
// else is written.




// (m, s) over a team of `team` threads (32 or blockDim.x); every thread of
// the team gets the result. Called by every thread of the block.
template <typename T> __device__ void team_ms(T& m, double& s, int team) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        T m2 = __shfl_xor_sync(FULL_MASK, m, o);
        double s2 = __shfl_xor_sync(FULL_MASK, s, o);
        sr_ms_merge(m, s, m2, s2);
    }
    if (team == 32) return;
    __shared__ T sm_m[32];
    __shared__ double sm_s[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
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

// softmax(x) given the row's m and s: f32 as the CPU's f32 row
// (e^(x - m) times the f32 reciprocal of the sum), f64 divides.
__device__ __forceinline__ float soft(float x, float m, double s) { return expf(x - m) * (float)(1.0 / s); }
__device__ __forceinline__ double soft(double x, double m, double s) { return exp(x - m) / s; }

extern "C" __global__ void ce_check(const i64* labels, i64 lstride, i64 n, i64 c, i64 ignore,
                                    unsigned long long* first) {
    SR_LOOP(i, n) {
        i64 l = labels[i * lstride];
        if (l != ignore && (l < 0 || l >= c)) atomicMin(first, (unsigned long long)i);
    }
}

template <typename T>
__device__ void ce_fwd(const T* x, const i64* labels, i64 lstride, T* loss, i64 n, i64 c, i64 ignore, int team) {
    int lane = threadIdx.x & (team - 1);
    i64 teams = blockDim.x / team;
    for (i64 rb = (i64)blockIdx.x * teams; rb < n; rb += (i64)gridDim.x * teams) {
        i64 row = rb + threadIdx.x / team;
        bool ok = row < n;
        i64 l = ok ? labels[row * lstride] : ignore;
        bool active = ok && l != ignore;
        const T* xr = x + (active ? row * c : 0);
        T m = sr_neg_inf<T>();
        double s = 0.0;
        if (active)
            for (i64 j = lane; j < c; j += team) sr_ms_add(m, s, xr[j]);
        team_ms(m, s, team);
        if (!ok || lane != 0) continue;
        if (!active) {
            loss[row] = (T)0;
            continue;
        }
        double md = (double)m;
        T lse = (T)(isinf(md) ? md : md + log(s));
        loss[row] = (T)((double)lse - (double)xr[l]);
    }
}

template <typename T>
__device__ void ce_bwd(const T* x, const i64* labels, i64 lstride, const T* dloss, i64 dstride, T* dx, i64 n, i64 c,
                       i64 ignore, int team) {
    int lane = threadIdx.x & (team - 1);
    i64 teams = blockDim.x / team;
    for (i64 rb = (i64)blockIdx.x * teams; rb < n; rb += (i64)gridDim.x * teams) {
        i64 row = rb + threadIdx.x / team;
        bool ok = row < n;
        i64 l = ok ? labels[row * lstride] : ignore;
        bool active = ok && l != ignore;
        const T* xr = x + (ok ? row * c : 0);
        T m = sr_neg_inf<T>();
        double s = 0.0;
        if (active)
            for (i64 j = lane; j < c; j += team) sr_ms_add(m, s, xr[j]);
        team_ms(m, s, team);
        if (!ok) continue;
        T* dr = dx + row * c;
        if (!active) {
            for (i64 j = lane; j < c; j += team) dr[j] = (T)0;
            continue;
        }
        if (!isfinite((double)m)) s = __longlong_as_double(0x7ff8000000000000LL);
        T g = dloss[row * dstride];
        for (i64 j = lane; j < c; j += team) {
            T v = soft(xr[j], m, s) * g;
            dr[j] = j == l ? v - g : v;
        }
    }
}

#define LOSS_KERNELS(SUF, T)                                                                                  \
    extern "C" __global__ void ce_fwd_##SUF(const T* x, const i64* labels, i64 lstride, T* loss, i64 n, i64 c, \
                                            i64 ignore, int team) {                                          \
        ce_fwd<T>(x, labels, lstride, loss, n, c, ignore, team);                                              \
    }                                                                                                         \
    extern "C" __global__ void ce_bwd_##SUF(const T* x, const i64* labels, i64 lstride, const T* dloss,       \
                                            i64 dstride, T* dx, i64 n, i64 c, i64 ignore, int team) {        \
        ce_bwd<T>(x, labels, lstride, dloss, dstride, dx, n, c, ignore, team);                                \
    }

LOSS_KERNELS(f32, float)
LOSS_KERNELS(f64, double)
