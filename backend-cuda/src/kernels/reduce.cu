// Reduction kernels: sum, mean, max, min over any set of axes and argmax
// along one axis. Semantics follow backend-cpu/src/reduce.rs:
// - f32 sums and means accumulate in double and round once; i64 sums wrap.
// - max/min propagate NaN (a NaN anywhere in the reduced set wins).
// - argmax: NaN counts as larger than every number, ties go to the first
//   index (so the first NaN, or else the first maximum, wins).
//
// The host (src/reduce.rs) plans every call as
//   outputs o in [0, outputs), row-major over the kept dims: input offset
//     roff(kept, o);
//   reduced elements r in [0, count), over the reduced dims (sorted by
//     stride, innermost last, coalesced): offset roff(red, r).
// For the row kernels the reduced set is further split into `segs` (every
// reduced dim but the innermost) and the innermost run of `seg_len`
// elements `seg_stride` apart: r = g * seg_len + j.
//
// Two mappings:
// - reduce_row_*: a team of `team` threads (1, 32 or the whole 256-thread
//   block) folds one output's reduced elements; used when the innermost
//   reduced dim is the one closest together in memory (contiguous rows).
// - reduce_col_*: a 256-thread block is 32 outputs x 8 slices; thread
//   (tx, ty) folds the reduced elements r = ty, ty + 8, .. of output
//   o = base + tx; used when the kept innermost dim is closer together in
//   memory than every reduced dim, so the 32 lanes of a warp read 32
//   neighbouring outputs' elements (coalesced).
// Both take gridDim.y = splits: split s folds r in [s * per, (s + 1) * per).
// With one split the kernel writes the finished output; with more it writes
// the partial accumulator part[s * outputs + o] and reduce_finish_* merges
// the splits in order.

#define I64_MAX 9223372036854775807LL
#define I64_MIN (-9223372036854775807LL - 1)

// Offset of element i of a planned group: rank 1 (the common case after
// coalescing) without a division; rank 0 is offset 0.
__device__ __forceinline__ i64 roff(const Strided& t, i64 i) {
    if (t.rank == 1) return i * t.strides[0];
    if (t.rank == 0) return 0;
    return sr_offset(t, i);
}

template <typename T> __device__ __forceinline__ bool is_nan(T v) { return v != v; }
__device__ __forceinline__ bool is_nan(i64) { return false; }

template <typename T> struct Lim;
template <> struct Lim<float> {
    __device__ static float lowest() { return __int_as_float(0xff800000); }
    __device__ static float highest() { return __int_as_float(0x7f800000); }
};
template <> struct Lim<double> {
    __device__ static double lowest() { return __longlong_as_double(0xfff0000000000000LL); }
    __device__ static double highest() { return __longlong_as_double(0x7ff0000000000000LL); }
};
template <> struct Lim<i64> {
    __device__ static i64 lowest() { return I64_MIN; }
    __device__ static i64 highest() { return I64_MAX; }
};

// ---- the folds ----------------------------------------------------------------
// Each op: In (element), Acc (accumulator), Out (output element) and
//   init(mode), step(acc, value, index r, mode), merge(acc, acc, mode),
//   finish(acc, count, mode), shfl(acc, lane mask).

// sum (mode 0) and mean (mode 1). f32 and f64 accumulate in double, i64 in
// unsigned 64-bit (wrapping, as Rust's wrapping_add).
template <typename T> struct SumAcc { typedef double A; };
template <> struct SumAcc<i64> { typedef unsigned long long A; };

template <typename T> struct OpSum {
    typedef T In;
    typedef typename SumAcc<T>::A Acc;
    typedef T Out;
    __device__ static Acc init(int) { return (Acc)0; }
    __device__ static Acc step(Acc a, T v, i64, int) { return a + (Acc)v; }
    __device__ static Acc merge(Acc a, Acc b, int) { return a + b; }
    // mean: a / count in double, then one rounding (CPU: (a / count as f64) as f32).
    __device__ static Out finish(Acc a, i64 count, int mode) {
        return mode ? (Out)((double)a / (double)count) : (Out)a;
    }
    __device__ static Acc shfl(Acc a, int o) { return __shfl_xor_sync(FULL_MASK, a, o); }
};

// max (mode 1) and min (mode 0): `v` replaces `a` when better or NaN.
template <typename T> struct OpExt {
    typedef T In;
    typedef T Acc;
    typedef T Out;
    __device__ static Acc init(int mode) { return mode ? Lim<T>::lowest() : Lim<T>::highest(); }
    __device__ static Acc pick(Acc a, Acc v, int mode) {
        bool better = mode ? v > a : v < a;
        return (better || is_nan(v)) ? v : a;
    }
    __device__ static Acc step(Acc a, T v, i64, int mode) { return pick(a, v, mode); }
    __device__ static Acc merge(Acc a, Acc b, int mode) { return pick(a, b, mode); }
    __device__ static Out finish(Acc a, i64, int) { return a; }
    __device__ static Acc shfl(Acc a, int o) { return __shfl_xor_sync(FULL_MASK, a, o); }
};

// argmax: (value, index) pairs under a total order: NaN above every number,
// then larger values, then smaller indices. Merging is symmetric, so any
// merge order gives the first NaN or else the first maximum.
template <typename T> struct ArgAcc {
    T v;
    i64 i;
};
template <typename T> struct OpArgmax {
    typedef T In;
    typedef ArgAcc<T> Acc;
    typedef i64 Out;
    __device__ static Acc init(int) {
        Acc a;
        a.v = Lim<T>::lowest();
        a.i = I64_MAX;
        return a;
    }
    __device__ static Acc merge(Acc a, Acc b, int) {
        bool an = is_nan(a.v), bn = is_nan(b.v);
        bool take;
        if (an || bn) take = (an && bn) ? b.i < a.i : bn;
        else take = b.v > a.v || (b.v == a.v && b.i < a.i);
        return take ? b : a;
    }
    __device__ static Acc step(Acc a, T v, i64 r, int mode) {
        Acc b;
        b.v = v;
        b.i = r;
        return merge(a, b, mode);
    }
    __device__ static Out finish(Acc a, i64, int) { return a.i; }
    __device__ static Acc shfl(Acc a, int o) {
        Acc b;
        b.v = __shfl_xor_sync(FULL_MASK, a.v, o);
        b.i = __shfl_xor_sync(FULL_MASK, a.i, o);
        return b;
    }
};

// ---- team reductions ------------------------------------------------------------

template <class Op> __device__ __forceinline__ typename Op::Acc warp_fold(typename Op::Acc a, int mode) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) a = Op::merge(a, Op::shfl(a, o), mode);
    return a;
}

// Folds `a` over a team of `team` threads (1, 32, or blockDim.x); the result
// is valid in the team's first thread. Every thread of the block calls it
// (it synchronises when team == blockDim.x).
template <class Op>
__device__ typename Op::Acc team_fold(typename Op::Acc a, int team, int mode) {
    typedef typename Op::Acc Acc;
    if (team == 1) return a;
    a = warp_fold<Op>(a, mode);
    if (team == 32) return a;
    __shared__ __align__(16) unsigned char raw[32 * sizeof(Acc)];
    Acc* sm = reinterpret_cast<Acc*>(raw);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sm[warp] = a;
    __syncthreads();
    if (threadIdx.x == 0) {
        int nw = blockDim.x >> 5;
        for (int w = 1; w < nw; ++w) a = Op::merge(a, sm[w], mode);
    }
    __syncthreads(); // `sm` is reused by the next output
    return a;
}

// ---- row mapping -------------------------------------------------------------

// Folds reduced elements [r0, r1) of the output whose first element is at
// `p`, as lane `lane` of a team of `team`: lane k takes every team-th
// element. Runs of the innermost dim are walked directly (4 loads in flight
// per thread); when the run is shorter than the team, elements are taken
// one by one across runs instead.
template <class Op>
__device__ typename Op::Acc fold_row(const typename Op::In* p, const Strided& segs, i64 L, i64 ss, i64 r0, i64 r1,
                                     int lane, int team, int mode) {
    typedef typename Op::In In;
    typename Op::Acc a = Op::init(mode);
    if (L < team) {
        // Runs shorter than the team: step across runs, with no division
        // per element.
        i64 dq = team / L, dr = team - dq * L;
        i64 r = r0 + lane, g = r / L, j = r - g * L;
#pragma unroll 1
        for (; r < r1; r += team) {
            a = Op::step(a, p[roff(segs, g) + j * ss], r, mode);
            g += dq;
            j += dr;
            if (j >= L) {
                j -= L;
                ++g;
            }
        }
        return a;
    }
    i64 r = r0;
    while (r < r1) {
        i64 g = r / L, s0 = g * L;
        i64 end = (r1 < s0 + L ? r1 : s0 + L) - s0;
        const In* q = p + roff(segs, g);
        i64 j = r - s0 + lane;
        for (; j + 3 * team < end; j += 4 * team) {
            In v0 = q[j * ss], v1 = q[(j + team) * ss], v2 = q[(j + 2 * team) * ss], v3 = q[(j + 3 * team) * ss];
            a = Op::step(a, v0, s0 + j, mode);
            a = Op::step(a, v1, s0 + j + team, mode);
            a = Op::step(a, v2, s0 + j + 2 * team, mode);
            a = Op::step(a, v3, s0 + j + 3 * team, mode);
        }
        for (; j < end; j += team) a = Op::step(a, q[j * ss], s0 + j, mode);
        r = s0 + end;
    }
    return a;
}

template <class Op>
__device__ void reduce_row(const typename Op::In* x, const Strided& kept, const Strided& segs, i64 seg_len,
                           i64 seg_stride, i64 outputs, i64 count, i64 per, int team, int mode,
                           typename Op::Out* out, typename Op::Acc* part) {
    int lane = threadIdx.x & (team - 1);
    int tid = threadIdx.x / team;
    int teams = blockDim.x / team;
    i64 s = blockIdx.y;
    i64 r0 = s * per, r1 = r0 + per < count ? r0 + per : count;
    // The loop bound is the same for every thread of the block, so the
    // block reductions inside are reached by all of them.
    for (i64 ob = (i64)blockIdx.x * teams; ob < outputs; ob += (i64)gridDim.x * teams) {
        i64 o = ob + tid;
        typename Op::Acc a = Op::init(mode);
        if (o < outputs) a = fold_row<Op>(x + roff(kept, o), segs, seg_len, seg_stride, r0, r1, lane, team, mode);
        a = team_fold<Op>(a, team, mode);
        if (o < outputs && lane == 0) {
            if (gridDim.y == 1) out[o] = Op::finish(a, count, mode);
            else part[s * outputs + o] = a;
        }
    }
}

// ---- column mapping ------------------------------------------------------------

template <class Op>
__device__ void reduce_col(const typename Op::In* x, const Strided& kept, const Strided& red, i64 outputs,
                           i64 count, i64 per, int mode, typename Op::Out* out, typename Op::Acc* part) {
    typedef typename Op::Acc Acc;
    __shared__ __align__(16) unsigned char raw[256 * sizeof(Acc)];
    Acc* sm = reinterpret_cast<Acc*>(raw);
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5; // 32 outputs x 8 slices
    i64 s = blockIdx.y;
    i64 r0 = s * per, r1 = r0 + per < count ? r0 + per : count;
    for (i64 ob = (i64)blockIdx.x * 32; ob < outputs; ob += (i64)gridDim.x * 32) {
        i64 o = ob + tx;
        Acc a = Op::init(mode);
        if (o < outputs) {
            const typename Op::In* p = x + roff(kept, o);
            for (i64 r = r0 + ty; r < r1; r += 8) a = Op::step(a, p[roff(red, r)], r, mode);
        }
        sm[ty * 32 + tx] = a;
        __syncthreads();
        if (ty == 0 && o < outputs) {
            for (int k = 1; k < 8; ++k) a = Op::merge(a, sm[k * 32 + tx], mode);
            if (gridDim.y == 1) out[o] = Op::finish(a, count, mode);
            else part[s * outputs + o] = a;
        }
        __syncthreads();
    }
}

// ---- merging the splits ----------------------------------------------------------

// One thread per output merges its `splits` partials in split order.
// splits = 0 finishes the empty fold (sum 0, mean NaN).
template <class Op>
__device__ void reduce_finish(const typename Op::Acc* part, i64 splits, i64 outputs, i64 count, int mode,
                              typename Op::Out* out) {
    SR_LOOP(o, outputs) {
        typename Op::Acc a = Op::init(mode);
        for (i64 s = 0; s < splits; ++s) a = Op::merge(a, part[s * outputs + o], mode);
        out[o] = Op::finish(a, count, mode);
    }
}

// ---- entry points ------------------------------------------------------------------

#define REDUCE_KERNELS(NAME, OP)                                                                              \
    extern "C" __global__ void reduce_row_##NAME(const OP::In* x, Strided kept, Strided segs, i64 seg_len,   \
                                                 i64 seg_stride, i64 outputs, i64 count, i64 per, int team,  \
                                                 int mode, OP::Out* out, OP::Acc* part) {                   \
        reduce_row<OP>(x, kept, segs, seg_len, seg_stride, outputs, count, per, team, mode, out, part);     \
    }                                                                                                         \
    extern "C" __global__ void reduce_col_##NAME(const OP::In* x, Strided kept, Strided red, i64 outputs,    \
                                                 i64 count, i64 per, int mode, OP::Out* out, OP::Acc* part) { \
        reduce_col<OP>(x, kept, red, outputs, count, per, mode, out, part);                                   \
    }                                                                                                         \
    extern "C" __global__ void reduce_finish_##NAME(const OP::Acc* part, i64 splits, i64 outputs, i64 count, \
                                                    int mode, OP::Out* out) {                                \
        reduce_finish<OP>(part, splits, outputs, count, mode, out);                                           \
    }

REDUCE_KERNELS(sum_f32, OpSum<float>)
REDUCE_KERNELS(sum_f64, OpSum<double>)
REDUCE_KERNELS(sum_i64, OpSum<i64>)
REDUCE_KERNELS(ext_f32, OpExt<float>)
REDUCE_KERNELS(ext_f64, OpExt<double>)
REDUCE_KERNELS(ext_i64, OpExt<i64>)
REDUCE_KERNELS(argmax_f32, OpArgmax<float>)
REDUCE_KERNELS(argmax_f64, OpArgmax<double>)
REDUCE_KERNELS(argmax_i64, OpArgmax<i64>)
