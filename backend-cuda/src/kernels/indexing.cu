// Indexing kernels: the index range check, index_select (a gather) and
// index_add (a scatter with atomics). Semantics are the CPU backend's
// (backend-cpu/src/indexing.rs):
//
// - index_select(table, index i64) along `axis`: out (contiguous) has shape
//   table[..axis] ++ index.shape ++ table[axis+1..];
//   out[b, j, r] = table[b, index[j], r] with b the flat outer position, j the
//   flat (row-major) index position and r the flat inner position.
// - index_add(index i64, src) into out (contiguous, read and written):
//   out[b, index[j], r] += src[b, j, r]. Floats use atomicAdd, so where an
//   index repeats the order of the additions is unspecified (see indexing.rs);
//   i64 adds wrap (unsigned 64-bit atomicAdd), as the CPU's wrapping_add.
//
// The host runs `index_check` and reads its result before launching either
// op, so the ops only ever see valid indices; they still skip (index_add) or
// zero-fill (index_select) an out-of-range row, so memory outside the
// tensors is never touched whatever the indices hold.
//
// Mapping of both ops: a 2-D grid over (inner position r, row = (b, j)).
// blockDim = (bx, by) with bx*by = 256 and bx a power of two covering the
// inner extent (bx = 1 for inner = 1: one thread per row), both dimensions
// grid-strided. Each thread reads its row's index once and then moves a
// contiguous run of the row, so consecutive threads touch consecutive
// addresses of out.

// a / b for a >= 0, b > 0: 32-bit division when both fit.
__device__ __forceinline__ i64 ix_div(i64 a, i64 b) {
    return (((unsigned long long)(a | b)) >> 32) == 0 ? (i64)((unsigned)a / (unsigned)b) : a / b;
}

// *first_bad = ~0 ("none yet"), before `index_check`. One thread.
extern "C" __global__ void index_check_init(unsigned long long* first_bad) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *first_bad = ~0ULL;
}

// The smallest flat position i in [0, n) whose index is outside [0, extent)
// goes to *first_bad (set to ~0 by `index_check_init` before; stays ~0 when
// all are valid). One thread per index, grid-stride.
extern "C" __global__ void index_check(const i64* idx, Strided sidx, i64 n, i64 extent,
                                       unsigned long long* first_bad) {
    SR_LOOP(i, n) {
        i64 v = idx[sr_offset(sidx, i)];
        if (v < 0 || v >= extent) atomicMin(first_bad, (unsigned long long)i);
    }
}

// index_select on elements of `sizeof(T)` bytes (moved bit for bit).
// `outer`, `inner`: the table's dims before and after `axis` with its strides
// (used when `dense` is 0); `axis_stride`: the table's stride along `axis`.
template <typename T>
__device__ void index_select(const T* table, const Strided& outer, const Strided& inner, i64 axis_stride, i64 extent,
                             const i64* idx, const Strided& sidx, i64 n_idx, T* out, i64 rows, i64 inner_n,
                             int dense) {
    i64 r0 = (i64)blockIdx.x * blockDim.x + threadIdx.x, rstep = (i64)gridDim.x * blockDim.x;
    for (i64 row = (i64)blockIdx.y * blockDim.y + threadIdx.y; row < rows; row += (i64)gridDim.y * blockDim.y) {
        i64 b = ix_div(row, n_idx), j = row - b * n_idx;
        i64 e = idx[sr_offset(sidx, j)];
        bool ok = e >= 0 && e < extent;
        T* o = out + row * inner_n;
        if (dense) {
            const T* t = table + (b * extent + e) * inner_n;
            for (i64 r = r0; r < inner_n; r += rstep) o[r] = ok ? t[r] : (T)0;
        } else {
            const T* t = table + sr_offset(outer, b) + e * axis_stride;
            for (i64 r = r0; r < inner_n; r += rstep) o[r] = ok ? t[sr_offset(inner, r)] : (T)0;
        }
    }
}

#define INDEX_SELECT(T, S)                                                                                         \
    extern "C" __global__ void index_select_##S(const T* table, Strided outer, Strided inner, i64 axis_stride,      \
                                                i64 extent, const i64* idx, Strided sidx, i64 n_idx, T* out,       \
                                                i64 rows, i64 inner_n, int dense) {                                \
        index_select<T>(table, outer, inner, axis_stride, extent, idx, sidx, n_idx, out, rows, inner_n, dense);    \
    }

INDEX_SELECT(u8, b1)
INDEX_SELECT(unsigned int, b4)
INDEX_SELECT(unsigned long long, b8)

// out += v, atomically. f64 atomicAdd exists from sm_60; older devices get
// the compare-and-swap loop the CUDA guide gives.
__device__ __forceinline__ void ix_atomic_add(float* a, float v) { atomicAdd(a, v); }
__device__ __forceinline__ void ix_atomic_add(double* a, double v) {
#if __CUDA_ARCH__ >= 600
    atomicAdd(a, v);
#else
    unsigned long long* p = (unsigned long long*)a;
    unsigned long long old = *p, seen;
    do {
        seen = old;
        old = atomicCAS(p, seen, (unsigned long long)__double_as_longlong(v + __longlong_as_double((long long)seen)));
    } while (seen != old);
#endif
}
__device__ __forceinline__ void ix_atomic_add(i64* a, i64 v) {
    atomicAdd((unsigned long long*)a, (unsigned long long)v);  // wraps, like wrapping_add
}

// index_add: out[b, index[j], r] += src[b, j, r]. `src` is any view of shape
// outer ++ index.shape ++ inner (flat element row*inner_n + r, through
// `ssrc`); out is contiguous [outer, extent, inner].
template <typename T>
__device__ void index_add(const i64* idx, const Strided& sidx, i64 n_idx, i64 extent, const T* src,
                          const Strided& ssrc, T* out, i64 rows, i64 inner_n) {
    i64 r0 = (i64)blockIdx.x * blockDim.x + threadIdx.x, rstep = (i64)gridDim.x * blockDim.x;
    for (i64 row = (i64)blockIdx.y * blockDim.y + threadIdx.y; row < rows; row += (i64)gridDim.y * blockDim.y) {
        i64 b = ix_div(row, n_idx), j = row - b * n_idx;
        i64 e = idx[sr_offset(sidx, j)];
        if (e < 0 || e >= extent) continue;
        T* o = out + (b * extent + e) * inner_n;
        i64 f = row * inner_n;
        for (i64 r = r0; r < inner_n; r += rstep) ix_atomic_add(o + r, src[sr_offset(ssrc, f + r)]);
    }
}

#define INDEX_ADD(T, S)                                                                                            \
    extern "C" __global__ void index_add_##S(const i64* idx, Strided sidx, i64 n_idx, i64 extent, const T* src,    \
                                             Strided ssrc, T* out, i64 rows, i64 inner_n) {                        \
        index_add<T>(idx, sidx, n_idx, extent, src, ssrc, out, rows, inner_n);                                     \
    }

INDEX_ADD(float, f32)
INDEX_ADD(double, f64)
INDEX_ADD(i64, i64)
