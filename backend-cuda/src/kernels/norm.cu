// Norm family: layer_norm, batch_norm (training and inference) and their
// backward ops, as backend-cpu/src/norm.rs and simd/norm_batch.rs:
// - statistics accumulate in double: biased variance, rstd = 1/sqrt(var + eps);
// - forward outputs in the input's precision: y = (x - mean) * rstd * gamma
//   + beta (layer norm, with mean and rstd rounded to T first, as the CPU's
//   f32 rows) and y = x * a + b with per-channel a = rstd * gamma,
//   b = beta - mean * a (batch norm);
// - backward ops compute in double and round once.
//
// Statistics are one pass of shifted sums: with K the first element of the
// row (channel), s1 = sum (x - K), s2 = sum (x - K)^2 in double, then
// mean = K + s1 / M and var = (s2 - s1^2 / M) / M (clamped at 0). The shift
// keeps the cancellation small (K is a sample of the data) and double
// carries 29 more bits than f32, so this matches the CPU's two-pass
// statistics to rounding while reading x once.
//
// Mappings (contiguous data; the host copies strided inputs):
// - ln_fwd_*, ln_bwd_dx_*: a team per row: a warp (rows up to 1024) or the
//   whole block (longer rows), `team` threads; rows loop over the grid.
// - ln_bwd_params_*: dgamma and dbeta, sums over rows: 256-thread blocks of
//   32 columns x 8 row slices (coalesced), rows split over gridDim.y into
//   double partials when the columns alone cannot fill the GPU, merged in
//   order by ln_bwd_params_finish_*.
// - bn_stats_*, bn_bwd_sums_*: a block per (channel, split of the N * S
//   elements of that channel): runs of S contiguous elements, one per n;
//   partial double pairs merged in order by the *_finish_* kernels.
// - bn_apply_*, bn_bwd_dx_*: elementwise over x, the channel of element i is
//   (i / S) % C through multiply-shift division when i fits 31 bits.


__device__ __forceinline__ double nan_d() { return __longlong_as_double(0x7ff8000000000000LL); }

// Sums (a, b) over a team of `team` threads (32 or blockDim.x); the result
// is valid in every thread of the team. Called by every thread of the block.
__device__ void team_sum2(double& a, double& b, int team) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_xor_sync(FULL_MASK, a, o);
        b += __shfl_xor_sync(FULL_MASK, b, o);
    }
    if (team == 32) return;
    __shared__ double sa[32], sb[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) {
        sa[warp] = a;
        sb[warp] = b;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < nw; ++w) {
            a += sa[w];
            b += sb[w];
        }
        sa[0] = a;
        sb[0] = b;
    }
    __syncthreads();
    a = sa[0];
    b = sb[0];
}

// Mean and rstd from shifted sums over m elements (m > 0).
__device__ __forceinline__ void stats(double k, double s1, double s2, double m, double eps, double& mu,
                                      double& inv) {
    mu = k + s1 / m;
    double var = (s2 - s1 * s1 / m) / m;
    if (var < 0.0) var = 0.0; // rounding only; NaN stays NaN
    inv = 1.0 / sqrt(var + eps);
}

// ---- layer norm ----------------------------------------------------------------------

template <typename T>
__device__ void ln_fwd(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, i64 rows, i64 d,
                       double eps, int team) {
    int lane = threadIdx.x & (team - 1);
    i64 teams = blockDim.x / team;
    for (i64 rb = (i64)blockIdx.x * teams; rb < rows; rb += (i64)gridDim.x * teams) {
        i64 row = rb + threadIdx.x / team;
        bool ok = row < rows && d > 0;
        const T* xr = x + (ok ? row * d : 0);
        double k = ok ? (double)xr[0] : 0.0, s1 = 0.0, s2 = 0.0;
        if (ok)
            for (i64 j = lane; j < d; j += team) {
                double t = (double)xr[j] - k;
                s1 += t;
                s2 += t * t;
            }
        team_sum2(s1, s2, team);
        if (row >= rows) continue;
        if (d == 0) { // CPU: NaN statistics for an empty row
            if (lane == 0) mean[row] = rstd[row] = (T)nan_d();
            continue;
        }
        double mu, inv;
        stats(k, s1, s2, (double)d, eps, mu, inv);
        if (lane == 0) {
            mean[row] = (T)mu;
            rstd[row] = (T)inv;
        }
        T mt = (T)mu, rt = (T)inv;
        T* yr = y + row * d;
        for (i64 j = lane; j < d; j += team) yr[j] = (xr[j] - mt) * rt * gamma[j] + beta[j];
    }
}

// dx = rstd * (g - mean(g) - xh * mean(g * xh)), g = dy * gamma, xh = (x - mean) * rstd.
template <typename T>
__device__ void ln_bwd_dx(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx, i64 rows,
                          i64 d, int team) {
    int lane = threadIdx.x & (team - 1);
    i64 teams = blockDim.x / team;
    for (i64 rb = (i64)blockIdx.x * teams; rb < rows; rb += (i64)gridDim.x * teams) {
        i64 row = rb + threadIdx.x / team;
        bool ok = row < rows;
        double mu = ok ? (double)mean[row] : 0.0, inv = ok ? (double)rstd[row] : 0.0;
        const T* xr = x + (ok ? row * d : 0);
        const T* gr = dy + (ok ? row * d : 0);
        double sg = 0.0, sgx = 0.0;
        if (ok)
            for (i64 j = lane; j < d; j += team) {
                double g = (double)gr[j] * (double)gamma[j];
                sg += g;
                sgx += g * (((double)xr[j] - mu) * inv);
            }
        team_sum2(sg, sgx, team);
        if (!ok) continue;
        double a = sg / (double)d, c = sgx / (double)d;
        T* dr = dx + row * d;
        for (i64 j = lane; j < d; j += team) {
            double g = (double)gr[j] * (double)gamma[j];
            double xh = ((double)xr[j] - mu) * inv;
            dr[j] = (T)(inv * (g - a - xh * c));
        }
    }
}

// dgamma[j] = sum_r dy * xh, dbeta[j] = sum_r dy over the rows of split
// blockIdx.y; part[(s * d + j) * 2 + {0, 1}] when split.
template <typename T>
__device__ void ln_bwd_params(const T* x, const T* mean, const T* rstd, const T* dy, i64 rows, i64 d, i64 per,
                              T* dgamma, T* dbeta, double* part) {
    __shared__ double sg[256], sb[256];
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5; // 32 columns x 8 row slices
    i64 s = blockIdx.y;
    i64 r0 = s * per, r1 = r0 + per < rows ? r0 + per : rows;
    for (i64 jb = (i64)blockIdx.x * 32; jb < d; jb += (i64)gridDim.x * 32) {
        i64 j = jb + tx;
        double pg = 0.0, pb = 0.0;
        if (j < d)
            for (i64 r = r0 + ty; r < r1; r += 8) {
                double g = (double)dy[r * d + j];
                pg += g * (((double)x[r * d + j] - (double)mean[r]) * (double)rstd[r]);
                pb += g;
            }
        sg[threadIdx.x] = pg;
        sb[threadIdx.x] = pb;
        __syncthreads();
        if (ty == 0 && j < d) {
            for (int k = 1; k < 8; ++k) {
                pg += sg[k * 32 + tx];
                pb += sb[k * 32 + tx];
            }
            if (gridDim.y == 1) {
                dgamma[j] = (T)pg;
                dbeta[j] = (T)pb;
            } else {
                part[(s * d + j) * 2] = pg;
                part[(s * d + j) * 2 + 1] = pb;
            }
        }
        __syncthreads();
    }
}

template <typename T>
__device__ void ln_bwd_params_finish(const double* part, i64 splits, i64 d, T* dgamma, T* dbeta) {
    SR_LOOP(j, d) {
        double pg = 0.0, pb = 0.0;
        for (i64 s = 0; s < splits; ++s) {
            pg += part[(s * d + j) * 2];
            pb += part[(s * d + j) * 2 + 1];
        }
        dgamma[j] = (T)pg;
        dbeta[j] = (T)pb;
    }
}

// ---- batch norm: per-channel sums ----------------------------------------------------------

// Calls f(offset) for this thread's share of elements r in [r0, r1) of
// channel c of x [N, C, S]: element r = n * S + j sits at (n * C + c) * S + j.
// The block's threads take every blockDim.x-th element; runs of S are
// walked directly, short runs (S < blockDim.x) stepped across without a
// division per element.
template <class F> __device__ void channel_walk(i64 C, i64 S, i64 c, i64 r0, i64 r1, F f) {
    i64 team = blockDim.x, cs = C * S, co = c * S;
    if (S < team) {
        i64 dq = team / S, dr = team - dq * S;
        i64 r = r0 + threadIdx.x, g = r / S, j = r - g * S;
#pragma unroll 1
        for (; r < r1; r += team) {
            f(g * cs + co + j);
            g += dq;
            j += dr;
            if (j >= S) {
                j -= S;
                ++g;
            }
        }
        return;
    }
    i64 r = r0;
    while (r < r1) {
        i64 g = r / S, s0 = g * S;
        i64 end = (r1 < s0 + S ? r1 : s0 + S) - s0;
        i64 base = g * cs + co;
        for (i64 j = r - s0 + threadIdx.x; j < end; j += team) f(base + j);
        r = s0 + end;
    }
}

// Shifted sums of channel c over split blockIdx.y: part[(s * C + c) * 2 + {0, 1}].
template <typename T> __device__ void bn_stats(const T* x, i64 N, i64 C, i64 S, i64 per, double* part) {
    i64 count = N * S, s = blockIdx.y;
    i64 r0 = s * per, r1 = r0 + per < count ? r0 + per : count;
    for (i64 c = blockIdx.x; c < C; c += gridDim.x) {
        double k = (double)x[c * S], s1 = 0.0, s2 = 0.0;
        channel_walk(C, S, c, r0, r1, [&](i64 off) {
            double t = (double)x[off] - k;
            s1 += t;
            s2 += t * t;
        });
        team_sum2(s1, s2, blockDim.x);
        if (threadIdx.x == 0) {
            part[(s * C + c) * 2] = s1;
            part[(s * C + c) * 2 + 1] = s2;
        }
    }
}

// Per channel: mean and rstd (outputs), and the affine a, b of bn_apply.
// N * S == 0: NaN statistics (the CPU's), x not read.
template <typename T>
__device__ void bn_stats_finish(const T* x, const double* part, i64 splits, i64 N, i64 C, i64 S, double eps,
                                const T* gamma, const T* beta, T* mean, T* rstd, T* a, T* b) {
    SR_LOOP(c, C) {
        double m = (double)(N * S), mu = nan_d(), inv = nan_d();
        if (N * S > 0) {
            double s1 = 0.0, s2 = 0.0;
            for (i64 s = 0; s < splits; ++s) {
                s1 += part[(s * C + c) * 2];
                s2 += part[(s * C + c) * 2 + 1];
            }
            stats((double)x[c * S], s1, s2, m, eps, mu, inv);
        }
        mean[c] = (T)mu;
        rstd[c] = (T)inv;
        double av = inv * (double)gamma[c];
        a[c] = (T)av;
        b[c] = (T)((double)beta[c] - mu * av);
    }
}

// Inference: a, b from the running statistics.
template <typename T>
__device__ void bn_infer_ab(const T* gamma, const T* beta, const T* rmean, const T* rvar, i64 C, double eps, T* a,
                            T* b) {
    SR_LOOP(c, C) {
        double inv = 1.0 / sqrt((double)rvar[c] + eps);
        double av = inv * (double)gamma[c];
        a[c] = (T)av;
        b[c] = (T)((double)beta[c] - (double)rmean[c] * av);
    }
}

// ---- batch norm: elementwise passes -----------------------------------------------------------

// n / d for n, d < 2^31 by multiply and shift (m, s from the host; see
// FastDiv in src/norm.rs).
struct FastDiv {
    unsigned int d, m, s;
};
__device__ __forceinline__ unsigned int fdiv(unsigned int n, FastDiv f) { return (__umulhi(n, f.m) + n) >> f.s; }

// Channel of element i of [N, C, S]; `narrow`: every index fits 31 bits.
__device__ __forceinline__ i64 channel(i64 i, i64 S, i64 C, FastDiv fs, FastDiv fc, int narrow) {
    if (narrow) {
        unsigned int q = fdiv((unsigned int)i, fs);
        return (i64)(q - fdiv(q, fc) * fc.d);
    }
    return (i / S) % C;
}

template <typename T>
__device__ void bn_apply(const T* x, const T* a, const T* b, T* y, i64 total, i64 S, i64 C, FastDiv fs, FastDiv fc,
                         int narrow) {
    SR_LOOP(i, total) {
        i64 c = channel(i, S, C, fs, fc, narrow);
        y[i] = x[i] * a[c] + b[c];
    }
}

// Per-channel sums of the backward: sb = sum dy, sg = sum dy * xh.
template <typename T>
__device__ void bn_bwd_sums(const T* x, const T* dy, const T* mean, const T* rstd, i64 N, i64 C, i64 S, i64 per,
                            double* part) {
    i64 count = N * S, s = blockIdx.y;
    i64 r0 = s * per, r1 = r0 + per < count ? r0 + per : count;
    for (i64 c = blockIdx.x; c < C; c += gridDim.x) {
        double mu = (double)mean[c], inv = (double)rstd[c], sb = 0.0, sg = 0.0;
        channel_walk(C, S, c, r0, r1, [&](i64 off) {
            double g = (double)dy[off];
            sb += g;
            sg += g * (((double)x[off] - mu) * inv);
        });
        team_sum2(sb, sg, blockDim.x);
        if (threadIdx.x == 0) {
            part[(s * C + c) * 2] = sb;
            part[(s * C + c) * 2 + 1] = sg;
        }
    }
}

// dgamma = sg, dbeta = sb (outputs); sums[2c], sums[2c + 1] = sb, sg for bn_bwd_dx.
template <typename T>
__device__ void bn_bwd_finish(const double* part, i64 splits, i64 C, T* dgamma, T* dbeta, double* sums) {
    SR_LOOP(c, C) {
        double sb = 0.0, sg = 0.0;
        for (i64 s = 0; s < splits; ++s) {
            sb += part[(s * C + c) * 2];
            sg += part[(s * C + c) * 2 + 1];
        }
        dgamma[c] = (T)sg;
        dbeta[c] = (T)sb;
        sums[2 * c] = sb;
        sums[2 * c + 1] = sg;
    }
}

// dx = gamma * rstd / M * (M * dy - sb - xh * sg), M = N * S.
template <typename T>
__device__ void bn_bwd_dx(const T* x, const T* dy, const T* gamma, const T* mean, const T* rstd, const double* sums,
                          T* dx, i64 total, double m, i64 S, i64 C, FastDiv fs, FastDiv fc, int narrow) {
    SR_LOOP(i, total) {
        i64 c = channel(i, S, C, fs, fc, narrow);
        double inv = (double)rstd[c];
        double xh = ((double)x[i] - (double)mean[c]) * inv;
        double scale = (double)gamma[c] * inv / m;
        dx[i] = (T)(scale * (m * (double)dy[i] - sums[2 * c] - xh * sums[2 * c + 1]));
    }
}

// ---- entry points -----------------------------------------------------------------------------

#define NORM_KERNELS(SUF, T)                                                                                     \
    extern "C" __global__ void ln_fwd_##SUF(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,   \
                                            i64 rows, i64 d, double eps, int team) {                            \
        ln_fwd<T>(x, gamma, beta, y, mean, rstd, rows, d, eps, team);                                            \
    }                                                                                                            \
    extern "C" __global__ void ln_bwd_dx_##SUF(const T* x, const T* gamma, const T* mean, const T* rstd,         \
                                               const T* dy, T* dx, i64 rows, i64 d, int team) {                 \
        ln_bwd_dx<T>(x, gamma, mean, rstd, dy, dx, rows, d, team);                                               \
    }                                                                                                            \
    extern "C" __global__ void ln_bwd_params_##SUF(const T* x, const T* mean, const T* rstd, const T* dy,        \
                                                   i64 rows, i64 d, i64 per, T* dgamma, T* dbeta, double* part) { \
        ln_bwd_params<T>(x, mean, rstd, dy, rows, d, per, dgamma, dbeta, part);                                  \
    }                                                                                                            \
    extern "C" __global__ void ln_bwd_params_finish_##SUF(const double* part, i64 splits, i64 d, T* dgamma,      \
                                                          T* dbeta) {                                           \
        ln_bwd_params_finish<T>(part, splits, d, dgamma, dbeta);                                                 \
    }                                                                                                            \
    extern "C" __global__ void bn_stats_##SUF(const T* x, i64 N, i64 C, i64 S, i64 per, double* part) {         \
        bn_stats<T>(x, N, C, S, per, part);                                                                      \
    }                                                                                                            \
    extern "C" __global__ void bn_stats_finish_##SUF(const T* x, const double* part, i64 splits, i64 N, i64 C,   \
                                                     i64 S, double eps, const T* gamma, const T* beta, T* mean,  \
                                                     T* rstd, T* a, T* b) {                                     \
        bn_stats_finish<T>(x, part, splits, N, C, S, eps, gamma, beta, mean, rstd, a, b);                        \
    }                                                                                                            \
    extern "C" __global__ void bn_infer_ab_##SUF(const T* gamma, const T* beta, const T* rmean, const T* rvar,   \
                                                 i64 C, double eps, T* a, T* b) {                               \
        bn_infer_ab<T>(gamma, beta, rmean, rvar, C, eps, a, b);                                                  \
    }                                                                                                            \
    extern "C" __global__ void bn_apply_##SUF(const T* x, const T* a, const T* b, T* y, i64 total, i64 S, i64 C, \
                                              FastDiv fs, FastDiv fc, int narrow) {                             \
        bn_apply<T>(x, a, b, y, total, S, C, fs, fc, narrow);                                                    \
    }                                                                                                            \
    extern "C" __global__ void bn_bwd_sums_##SUF(const T* x, const T* dy, const T* mean, const T* rstd, i64 N,   \
                                                 i64 C, i64 S, i64 per, double* part) {                         \
        bn_bwd_sums<T>(x, dy, mean, rstd, N, C, S, per, part);                                                   \
    }                                                                                                            \
    extern "C" __global__ void bn_bwd_finish_##SUF(const double* part, i64 splits, i64 C, T* dgamma, T* dbeta,   \
                                                   double* sums) {                                              \
        bn_bwd_finish<T>(part, splits, C, dgamma, dbeta, sums);                                                  \
    }                                                                                                            \
    extern "C" __global__ void bn_bwd_dx_##SUF(const T* x, const T* dy, const T* gamma, const T* mean,           \
                                               const T* rstd, const double* sums, T* dx, i64 total, double m,   \
                                               i64 S, i64 C, FastDiv fs, FastDiv fc, int narrow) {              \
        bn_bwd_dx<T>(x, dy, gamma, mean, rstd, sums, dx, total, m, S, C, fs, fc, narrow);                        \
    }

NORM_KERNELS(f32, float)
NORM_KERNELS(f64, double)
