// Pooling kernels over NCHW: max and average pooling forward, and their
// gradients. The semantics are the CPU backend's (backend-cpu/src/pool.rs),
// and each kernel is written to be read beside it:
//
// - Window (oh, ow) covers rows [oh*sh - ph, oh*sh - ph + kh) and columns
//   likewise, clipped to the image (`pool_window` = the CPU's `window`).
// - Max pooling ignores padding and takes the FIRST maximum in row-major
//   window order; a NaN counts as the maximum (the CPU's
//   `v > b || (isnan(v) && !isnan(b))`). An empty window (only possible for
//   an empty image) gives -inf.
// - Average pooling divides by kh*kw with count_include_pad, else by the
//   number of real elements (at least 1).
// - Gradients: max_pool2d_backward sends each dy to its window's first
//   maximum, recomputed from x; avg_pool2d_backward spreads dy / divisor over
//   the window. Both are GATHERS (one thread per dx element sums what reaches
//   it, windows in (oh, ow) row-major order), so they are deterministic and
//   add in the CPU's order: results are bitwise the CPU's.
//
// Mappings (grid-stride loops everywhere):
// - "thread" mode: one thread per window, scanning it sequentially in T
//   (bitwise the CPU's sums and maxima).
// - "warp" mode (large windows, e.g. global pooling): one warp per window;
//   lane l scans window elements l, l+32, ...; maxima combine by
//   (value, position) with ties to the earlier position, which is exactly the
//   sequential first maximum; sums accumulate in double (f32 results may
//   then differ from the CPU's f32 running sum in the last bits).
// - gathers: one thread per dx element.
//
// The host guarantees: x/dy are rank-4 views inside their buffers, dx and y
// contiguous, the geometry validated as on the CPU, blockDim.x a multiple of 32.

// Rust twin: `PoolGeom` in src/pool.rs (12 x i64, then 2 x int: 104 bytes).
struct PoolGeom {
    i64 n, c, h, w;   // image [N, C, H, W]
    i64 oh, ow;       // pooled extents
    i64 kh, kw;       // window
    i64 sh, sw;       // stride
    i64 ph, pw;       // padding
    int include_pad;  // avg: divide by kh*kw
    int reserved;
};

// a / b for a >= 0, b > 0: 32-bit division when both fit (64-bit division is
// a long instruction sequence on the GPU).
__device__ __forceinline__ i64 pool_div(i64 a, i64 b) {
    return (((unsigned long long)(a | b)) >> 32) == 0 ? (i64)((unsigned)a / (unsigned)b) : a / b;
}

__device__ __forceinline__ float pool_neg_inf(float) { return __int_as_float(0xff800000); }
__device__ __forceinline__ double pool_neg_inf(double) { return __longlong_as_double(0xfff0000000000000LL); }

// The CPU's `Geom::window`: rows [h0, h1) and columns [w0, w1) of window (oh, ow).
__device__ __forceinline__ void pool_window(const PoolGeom& g, i64 oh, i64 ow, i64& h0, i64& h1, i64& w0, i64& w1) {
    i64 hs = oh * g.sh - g.ph, ws = ow * g.sw - g.pw;
    i64 he = hs + g.kh < g.h ? hs + g.kh : g.h;
    i64 we = ws + g.kw < g.w ? ws + g.kw : g.w;
    h0 = hs > 0 ? hs : 0;
    h1 = he > 0 ? he : 0;
    w0 = ws > 0 ? ws : 0;
    w1 = we > 0 ? we : 0;
}

// The CPU's `Geom::divisor`.
__device__ __forceinline__ double pool_divisor(const PoolGeom& g, i64 h0, i64 h1, i64 w0, i64 w1) {
    if (g.include_pad) return (double)(g.kh * g.kw);
    i64 n = (h1 - h0) * (w1 - w0);
    return (double)(n > 1 ? n : 1);
}

// Does candidate (v, t) beat the best so far (bv, bt)? t is the plane position
// ih*W + iw (row-major, so it orders window elements as the CPU scans them);
// -1 means "none". A total order: NaN above numbers, numbers by value (+0 and
// -0 tie), ties to the smaller position. Its maximum over a window is the
// CPU's first maximum whatever the order of combination.
template <typename T> __device__ __forceinline__ bool pool_beats(T v, i64 t, T bv, i64 bt) {
    if (t < 0) return false;
    if (bt < 0) return true;
    bool vn = v != v, bn = bv != bv;
    if (vn != bn) return vn;
    if (!vn) {
        if (v > bv) return true;
        if (bv > v) return false;
    }
    return t < bt;
}

// First maximum of window [h0,h1) x [w0,w1) of the plane `p` (strides s2, s3):
// its position ih*W + iw (or -1 when empty) and value in `bv`. `lane`/`group`:
// group 1 scans sequentially (the CPU's loop); group 32 splits the window over
// a warp and combines with butterfly shuffles, so every lane gets the result
// (all 32 lanes must call it together).
template <typename T>
__device__ __forceinline__ i64 pool_argmax(const T* p, i64 s2, i64 s3, const PoolGeom& g, i64 h0, i64 h1, i64 w0,
                                           i64 w1, int lane, int group, T& bv) {
    i64 bt = -1;
    bv = (T)0;
    if (group == 1) {
        for (i64 ih = h0; ih < h1; ++ih)
            for (i64 iw = w0; iw < w1; ++iw) {
                T v = p[ih * s2 + iw * s3];
                if (bt < 0 || v > bv || (v != v && bv == bv)) {  // the CPU's rule
                    bv = v;
                    bt = ih * g.w + iw;
                }
            }
        return bt;
    }
    i64 ww = w1 - w0, area = (h1 - h0) * ww;
    for (i64 t = lane; t < area; t += group) {
        i64 r = pool_div(t, ww);
        i64 ih = h0 + r, iw = w0 + (t - r * ww);
        T v = p[ih * s2 + iw * s3];
        i64 pos = ih * g.w + iw;
        if (pool_beats(v, pos, bv, bt)) {
            bv = v;
            bt = pos;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        T ov = __shfl_xor_sync(0xffffffffu, bv, o);
        i64 ot = __shfl_xor_sync(0xffffffffu, bt, o);
        if (pool_beats(ov, ot, bv, bt)) {
            bv = ov;
            bt = ot;
        }
    }
    return bt;
}

// Window index o (row-major over [N, C, OH, OW]) -> (n, c, oh, ow).
__device__ __forceinline__ void pool_unflatten(const PoolGeom& g, i64 o, i64& n, i64& c, i64& oh, i64& ow) {
    i64 q = pool_div(o, g.ow);
    ow = o - q * g.ow;
    i64 q2 = pool_div(q, g.oh);
    oh = q - q2 * g.oh;
    n = pool_div(q2, g.c);
    c = q2 - n * g.c;
}

// Forward. One thread (warp == 0) or one warp (warp == 1) per window.
// Max: y[o] = first maximum (or -inf), and when `am` is not null
// am[o] = its plane position (or -1; the host checks H*W fits an int).
// Avg: y[o] = sum / divisor. `y` may be null (argmax only, for the backward).
template <typename T>
__device__ void pool_fwd(const T* x, const Strided& sx, T* y, int* am, const PoolGeom& g, int is_max, int warp) {
    int group = warp ? 32 : 1, lane = warp ? (int)(threadIdx.x & 31) : 0;
    i64 gid = (i64)blockIdx.x * blockDim.x + threadIdx.x, all = (i64)gridDim.x * blockDim.x;
    i64 first = warp ? gid >> 5 : gid, step = warp ? all >> 5 : all;
    i64 total = g.n * g.c * g.oh * g.ow;
    for (i64 o = first; o < total; o += step) {
        i64 n, c, oh, ow, h0, h1, w0, w1;
        pool_unflatten(g, o, n, c, oh, ow);
        pool_window(g, oh, ow, h0, h1, w0, w1);
        const T* p = x + n * sx.strides[0] + c * sx.strides[1];
        i64 s2 = sx.strides[2], s3 = sx.strides[3];
        if (is_max) {
            T bv;
            i64 bt = pool_argmax(p, s2, s3, g, h0, h1, w0, w1, lane, group, bv);
            if (lane == 0) {
                if (y) y[o] = bt < 0 ? pool_neg_inf(bv) : bv;
                if (am) am[o] = (int)bt;
            }
        } else if (!warp) {
            T s = (T)0;  // the CPU's running sum, in T, row-major
            for (i64 ih = h0; ih < h1; ++ih)
                for (i64 iw = w0; iw < w1; ++iw) s += p[ih * s2 + iw * s3];
            y[o] = s / (T)pool_divisor(g, h0, h1, w0, w1);
        } else {
            double s = 0.0;
            i64 ww = w1 - w0, area = (h1 - h0) * ww;
            for (i64 t = lane; t < area; t += 32) {
                i64 r = pool_div(t, ww);
                s += (double)p[(h0 + r) * s2 + (w0 + t - r * ww) * s3];
            }
            s = sr_warp_sum(s);
            if (lane == 0) y[o] = (T)s / (T)pool_divisor(g, h0, h1, w0, w1);
        }
    }
}

// Max-pool backward when windows do not overlap (stride >= window on both
// axes): one thread or warp per window finds its first maximum and writes the
// whole window of dx: 0 + dy at the maximum (0 + dy, as the CPU's
// zero-filled plane += dy, so -0 becomes +0), 0 elsewhere. Windows own
// disjoint parts of dx, so there are no races; dx elements under no window
// were zeroed by the host (memset) first.
template <typename T>
__device__ void maxpool_bwd_disjoint(const T* x, const Strided& sx, const T* dy, const Strided& sdy, T* dx,
                                     const PoolGeom& g, int warp) {
    int group = warp ? 32 : 1, lane = warp ? (int)(threadIdx.x & 31) : 0;
    i64 gid = (i64)blockIdx.x * blockDim.x + threadIdx.x, all = (i64)gridDim.x * blockDim.x;
    i64 first = warp ? gid >> 5 : gid, step = warp ? all >> 5 : all;
    i64 total = g.n * g.c * g.oh * g.ow;
    for (i64 o = first; o < total; o += step) {
        i64 n, c, oh, ow, h0, h1, w0, w1;
        pool_unflatten(g, o, n, c, oh, ow);
        pool_window(g, oh, ow, h0, h1, w0, w1);
        const T* p = x + n * sx.strides[0] + c * sx.strides[1];
        T bv;
        i64 bt = pool_argmax(p, sx.strides[2], sx.strides[3], g, h0, h1, w0, w1, lane, group, bv);
        T d = (T)0 + dy[n * sdy.strides[0] + c * sdy.strides[1] + oh * sdy.strides[2] + ow * sdy.strides[3]];
        T* q = dx + (n * g.c + c) * g.h * g.w;
        i64 ww = w1 - w0, area = (h1 - h0) * ww;
        for (i64 t = lane; t < area; t += group) {
            i64 r = pool_div(t, ww);
            i64 pos = (h0 + r) * g.w + w0 + (t - r * ww);
            q[pos] = pos == bt ? d : (T)0;
        }
    }
}

// The windows covering image row (or column) i: [lo, hi] (empty when lo > hi).
// Window o covers i iff o*s - p <= i < o*s - p + k.
__device__ __forceinline__ void pool_covering(i64 i, i64 k, i64 s, i64 p, i64 nout, i64& lo, i64& hi) {
    i64 a = i + p - k + 1;  // o*s >= a
    lo = a <= 0 ? 0 : pool_div(a + s - 1, s);
    hi = pool_div(i + p, s);  // o*s <= i + p
    if (hi > nout - 1) hi = nout - 1;
}

// Max-pool backward by gathering: one thread per dx element adds the dy of
// every window whose first maximum it is, windows in (oh, ow) row-major
// order (the CPU's order of additions). `am` holds each window's maximum
// position from `pool_fwd`; when null (planes too large for int positions)
// the maximum is recomputed from x.
template <typename T>
__device__ void maxpool_bwd_gather(const T* x, const Strided& sx, const int* am, const T* dy, const Strided& sdy,
                                   T* dx, const PoolGeom& g) {
    i64 total = g.n * g.c * g.h * g.w;
    SR_LOOP(i, total) {
        i64 q = pool_div(i, g.w);
        i64 iw = i - q * g.w;
        i64 nc = pool_div(q, g.h);
        i64 ih = q - nc * g.h;
        i64 n = pool_div(nc, g.c), c = nc - n * g.c;
        i64 pos = ih * g.w + iw;
        i64 oh0, oh1, ow0, ow1;
        pool_covering(ih, g.kh, g.sh, g.ph, g.oh, oh0, oh1);
        pool_covering(iw, g.kw, g.sw, g.pw, g.ow, ow0, ow1);
        const T* p = x + n * sx.strides[0] + c * sx.strides[1];
        const T* d = dy + n * sdy.strides[0] + c * sdy.strides[1];
        T acc = (T)0;
        for (i64 oh = oh0; oh <= oh1; ++oh)
            for (i64 ow = ow0; ow <= ow1; ++ow) {
                i64 best;
                if (am) {
                    best = am[(nc * g.oh + oh) * g.ow + ow];
                } else {
                    i64 h0, h1, w0, w1;
                    T bv;
                    pool_window(g, oh, ow, h0, h1, w0, w1);
                    best = pool_argmax(p, sx.strides[2], sx.strides[3], g, h0, h1, w0, w1, 0, 1, bv);
                }
                if (best == pos) acc += d[oh * sdy.strides[2] + ow * sdy.strides[3]];
            }
        dx[i] = acc;
    }
}

// Avg-pool backward by gathering: one thread per dx element adds
// dy / divisor of every window covering it, in (oh, ow) row-major order (the
// CPU's order, from +0).
template <typename T>
__device__ void avgpool_bwd(const T* dy, const Strided& sdy, T* dx, const PoolGeom& g) {
    i64 total = g.n * g.c * g.h * g.w;
    SR_LOOP(i, total) {
        i64 q = pool_div(i, g.w);
        i64 iw = i - q * g.w;
        i64 nc = pool_div(q, g.h);
        i64 ih = q - nc * g.h;
        i64 n = pool_div(nc, g.c), c = nc - n * g.c;
        i64 oh0, oh1, ow0, ow1;
        pool_covering(ih, g.kh, g.sh, g.ph, g.oh, oh0, oh1);
        pool_covering(iw, g.kw, g.sw, g.pw, g.ow, ow0, ow1);
        const T* d = dy + n * sdy.strides[0] + c * sdy.strides[1];
        T acc = (T)0;
        for (i64 oh = oh0; oh <= oh1; ++oh)
            for (i64 ow = ow0; ow <= ow1; ++ow) {
                i64 h0, h1, w0, w1;
                pool_window(g, oh, ow, h0, h1, w0, w1);
                acc += d[oh * sdy.strides[2] + ow * sdy.strides[3]] / (T)pool_divisor(g, h0, h1, w0, w1);
            }
        dx[i] = acc;
    }
}

// dx = 0 (n elements, contiguous): before the disjoint max-pool backward when
// windows leave gaps. One thread per element, grid-stride.
template <typename T> __device__ void pool_zero(T* p, i64 n) {
    SR_LOOP(i, n) p[i] = (T)0;
}

#define POOL_KERNELS(T, S)                                                                                        \
    extern "C" __global__ void pool_fwd_##S(const T* x, Strided sx, T* y, int* am, PoolGeom g, int is_max,        \
                                            int warp) {                                                           \
        pool_fwd<T>(x, sx, y, am, g, is_max, warp);                                                               \
    }                                                                                                             \
    extern "C" __global__ void maxpool_bwd_disjoint_##S(const T* x, Strided sx, const T* dy, Strided sdy, T* dx,  \
                                                        PoolGeom g, int warp) {                                   \
        maxpool_bwd_disjoint<T>(x, sx, dy, sdy, dx, g, warp);                                                     \
    }                                                                                                             \
    extern "C" __global__ void maxpool_bwd_gather_##S(const T* x, Strided sx, const int* am, const T* dy,         \
                                                      Strided sdy, T* dx, PoolGeom g) {                           \
        maxpool_bwd_gather<T>(x, sx, am, dy, sdy, dx, g);                                                         \
    }                                                                                                             \
    extern "C" __global__ void avgpool_bwd_##S(const T* dy, Strided sdy, T* dx, PoolGeom g) {                     \
        avgpool_bwd<T>(dy, sdy, dx, g);                                                                           \
    }                                                                                                             \
    extern "C" __global__ void pool_zero_##S(T* p, i64 n) { pool_zero<T>(p, n); }

POOL_KERNELS(float, f32)
POOL_KERNELS(double, f64)
