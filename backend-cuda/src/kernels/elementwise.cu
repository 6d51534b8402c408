// Elementwise kernels: unary ops and their backward, binary ops, comparisons,
// where, fill, strided copy, cast, and the conv bias add. Inputs come
// pre-broadcast to the output's shape (stride 0 where broadcast), so one
// linear index over the output addresses every operand. Op ids are the
// ABI's (sunrise-backend-api ops.rs). Semantics follow the CPU backend's
// portable kernels exactly (NaN rules, wrapping i64, saturating casts).


// ---- vectorised contiguous paths ------------------------------------------

// 16-byte loads and stores for contiguous operands whose addresses are all
// 16-byte aligned (float4 / double2), then a scalar tail. The memory-bound
// ops reach the bandwidth PyTorch reaches this way.
template <typename T> struct Vec16 { enum { LANES = 0 }; };
template <> struct Vec16<float> { typedef float4 type; enum { LANES = 4 }; };
template <> struct Vec16<double> { typedef double2 type; enum { LANES = 2 }; };

__device__ __forceinline__ bool sr_aligned16(const void* a, const void* b, const void* c) {
    return ((((unsigned long long)a) | ((unsigned long long)b) | ((unsigned long long)c)) & 15) == 0;
}

template <typename T, typename F>
__device__ __forceinline__ void sr_map_vec(const T* x, T* y, i64 n, F f) {
    typedef typename Vec16<T>::type V;
    const int L = Vec16<T>::LANES;
    i64 nv = n / L;
    const V* xv = (const V*)x;
    V* yv = (V*)y;
    SR_LOOP(i, nv) {
        V v = xv[i];
        T* e = (T*)&v;
#pragma unroll
        for (int l = 0; l < L; ++l) e[l] = f(e[l]);
        yv[i] = v;
    }
    SR_LOOP(i, n - nv * L) y[nv * L + i] = f(x[nv * L + i]);
}

template <typename T, typename F>
__device__ __forceinline__ void sr_zip_vec(const T* a, const T* b, T* c, i64 n, F f) {
    typedef typename Vec16<T>::type V;
    const int L = Vec16<T>::LANES;
    i64 nv = n / L;
    const V* av = (const V*)a;
    const V* bv = (const V*)b;
    V* cv = (V*)c;
    SR_LOOP(i, nv) {
        V va = av[i], vb = bv[i], vc;
        const T* ea = (const T*)&va;
        const T* eb = (const T*)&vb;
        T* ec = (T*)&vc;
#pragma unroll
        for (int l = 0; l < L; ++l) ec[l] = f(ea[l], eb[l]);
        cv[i] = vc;
    }
    SR_LOOP(i, n - nv * L) c[nv * L + i] = f(a[nv * L + i], b[nv * L + i]);
}


// ---- unary ------------------------------------------------------------------

#define OP_NEG 1
#define OP_ABS 2
#define OP_EXP 3
#define OP_LOG 4
#define OP_SQRT 5
#define OP_RSQRT 6
#define OP_RELU 7
#define OP_GELU_ERF 8
#define OP_GELU_TANH 9
#define OP_SIGMOID 10
#define OP_TANH 11
#define OP_SILU 12

#define GELU_C 0.7978845608028654   // sqrt(2/pi)
#define GELU_K 0.044715
#define FRAC_1_SQRT_2 0.7071067811865476
#define FRAC_1_SQRT_2PI 0.3989422804014327

template <typename T> __device__ __forceinline__ T gelu_tanh(T x) {
    T u = x * ((T)GELU_C + (T)(GELU_C * GELU_K) * x * x);
    return x / ((T)1 + exp((T)-2 * u));
}
template <typename T> __device__ __forceinline__ T gelu_tanh_grad(T x) {
    T u = x * ((T)GELU_C + (T)(GELU_C * GELU_K) * x * x);
    T t = tanh(u);
    T du = (T)GELU_C + (T)(3.0 * GELU_C * GELU_K) * x * x;
    return (T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * du;
}
template <typename T> __device__ __forceinline__ T sigmoid(T x) { return (T)1 / ((T)1 + exp(-x)); }

// Computed in f64 like the CPU (x Phi(x)).
__device__ __forceinline__ double gelu_erf(double x) { return 0.5 * x * erfc(-x * FRAC_1_SQRT_2); }
__device__ __forceinline__ double gelu_erf_grad(double x) {
    double cdf = 0.5 * erfc(-x * FRAC_1_SQRT_2);
    return cdf + x * FRAC_1_SQRT_2PI * exp(-0.5 * x * x);
}

template <int OP, typename T> __device__ __forceinline__ T unary_f(T x) {
    switch (OP) {
    case OP_NEG: return -x;
    case OP_ABS: return fabs(x);
    case OP_EXP: return exp(x);
    case OP_LOG: return log(x);
    case OP_SQRT: return sqrt(x);
    case OP_RSQRT: return (T)1 / sqrt(x);
    case OP_RELU: return (T)0 > x ? (T)0 : x;
    case OP_GELU_ERF: return (T)gelu_erf((double)x);
    case OP_GELU_TANH: return gelu_tanh(x);
    case OP_SIGMOID: return sigmoid(x);
    case OP_TANH: return tanh(x);
    default: return x / ((T)1 + exp(-x)); // OP_SILU
    }
}

template <int OP, typename T> __device__ __forceinline__ T unary_grad(T x, T dy) {
    switch (OP) {
    case OP_NEG: return -dy;
    case OP_ABS: return x > (T)0 ? dy : (x < (T)0 ? -dy : (T)0);
    case OP_EXP: return dy * exp(x);
    case OP_LOG: return dy / x;
    case OP_SQRT: return dy / ((T)2 * sqrt(x));
    case OP_RSQRT: { T r = (T)1 / sqrt(x); return (T)-0.5 * dy * r * r * r; }
    case OP_RELU: return x > (T)0 ? dy : (T)0;
    case OP_GELU_ERF: return dy * (T)gelu_erf_grad((double)x);
    case OP_GELU_TANH: return dy * gelu_tanh_grad(x);
    case OP_SIGMOID: { T s = sigmoid(x); return dy * s * ((T)1 - s); }
    case OP_TANH: { T t = tanh(x); return dy * ((T)1 - t * t); }
    default: { T s = sigmoid(x); return dy * s * ((T)1 + x * ((T)1 - s)); } // OP_SILU
    }
}

template <int OP, typename T>
__device__ void unary_loop(const T* x, const Strided& sx, T* y, const Strided& sy, i64 n) {
    if (sx.contiguous && sy.contiguous) {
        if constexpr (Vec16<T>::LANES > 0) {
            if (sr_aligned16(x, y, y)) {
                sr_map_vec(x, y, n, [](T v) { return unary_f<OP>(v); });
                return;
            }
        }
        SR_LOOP(i, n) y[i] = unary_f<OP>(x[i]);
    } else {
        SR_LOOP(i, n) y[sr_offset(sy, i)] = unary_f<OP>(x[sr_offset(sx, i)]);
    }
}

template <typename T>
__device__ void unary_any(const T* x, const Strided& sx, T* y, const Strided& sy, i64 n, int op) {
    switch (op) {
    case OP_NEG: unary_loop<OP_NEG>(x, sx, y, sy, n); break;
    case OP_ABS: unary_loop<OP_ABS>(x, sx, y, sy, n); break;
    case OP_EXP: unary_loop<OP_EXP>(x, sx, y, sy, n); break;
    case OP_LOG: unary_loop<OP_LOG>(x, sx, y, sy, n); break;
    case OP_SQRT: unary_loop<OP_SQRT>(x, sx, y, sy, n); break;
    case OP_RSQRT: unary_loop<OP_RSQRT>(x, sx, y, sy, n); break;
    case OP_RELU: unary_loop<OP_RELU>(x, sx, y, sy, n); break;
    case OP_GELU_ERF: unary_loop<OP_GELU_ERF>(x, sx, y, sy, n); break;
    case OP_GELU_TANH: unary_loop<OP_GELU_TANH>(x, sx, y, sy, n); break;
    case OP_SIGMOID: unary_loop<OP_SIGMOID>(x, sx, y, sy, n); break;
    case OP_TANH: unary_loop<OP_TANH>(x, sx, y, sy, n); break;
    case OP_SILU: unary_loop<OP_SILU>(x, sx, y, sy, n); break;
    }
}

extern "C" __global__ void unary_f32(const float* x, Strided sx, float* y, Strided sy, i64 n, int op) {
    unary_any(x, sx, y, sy, n, op);
}
extern "C" __global__ void unary_f64(const double* x, Strided sx, double* y, Strided sy, i64 n, int op) {
    unary_any(x, sx, y, sy, n, op);
}
// i64: neg and abs only, wrapping (as Rust's wrapping_neg / wrapping_abs).
extern "C" __global__ void unary_i64(const i64* x, Strided sx, i64* y, Strided sy, i64 n, int op) {
    SR_LOOP(i, n) {
        unsigned long long v = (unsigned long long)x[sr_offset(sx, i)];
        unsigned long long neg = 0ull - v;
        bool negative = (long long)v < 0;
        y[sr_offset(sy, i)] = (i64)(op == OP_NEG ? neg : (negative ? neg : v));
    }
}

template <typename T>
__device__ void unary_backward_any(const T* x, const Strided& sx, const T* dy, const Strided& sdy, T* dx,
                                   const Strided& sdx, i64 n, int op) {
#define UB(OPID) case OPID: SR_LOOP(i, n) dx[sr_offset(sdx, i)] = unary_grad<OPID>(x[sr_offset(sx, i)], dy[sr_offset(sdy, i)]); break;
    switch (op) {
        UB(OP_NEG) UB(OP_ABS) UB(OP_EXP) UB(OP_LOG) UB(OP_SQRT) UB(OP_RSQRT)
        UB(OP_RELU) UB(OP_GELU_ERF) UB(OP_GELU_TANH) UB(OP_SIGMOID) UB(OP_TANH) UB(OP_SILU)
    }
#undef UB
}
extern "C" __global__ void unary_backward_f32(const float* x, Strided sx, const float* dy, Strided sdy, float* dx,
                                              Strided sdx, i64 n, int op) {
    unary_backward_any(x, sx, dy, sdy, dx, sdx, n, op);
}
extern "C" __global__ void unary_backward_f64(const double* x, Strided sx, const double* dy, Strided sdy,
                                              double* dx, Strided sdx, i64 n, int op) {
    unary_backward_any(x, sx, dy, sdy, dx, sdx, n, op);
}

// ---- binary -----------------------------------------------------------------

#define OP_ADD 14
#define OP_SUB 15
#define OP_MUL 16
#define OP_DIV 17
#define OP_POW 18
#define OP_MAXIMUM 19
#define OP_MINIMUM 20

template <int OP, typename T> __device__ __forceinline__ T binary_f(T a, T b) {
    switch (OP) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_POW: return pow(a, b);
    case OP_MAXIMUM: return (a != a || a > b) ? a : b;
    default: return (a != a || a < b) ? a : b; // OP_MINIMUM
    }
}
// i64 wraps on overflow, like Rust's wrapping ops.
template <int OP> __device__ __forceinline__ i64 binary_f(i64 a, i64 b) {
    unsigned long long ua = (unsigned long long)a, ub = (unsigned long long)b;
    switch (OP) {
    case OP_ADD: return (i64)(ua + ub);
    case OP_SUB: return (i64)(ua - ub);
    case OP_MUL: return (i64)(ua * ub);
    case OP_MAXIMUM: return a > b ? a : b;
    default: return a < b ? a : b;
    }
}

template <int OP, typename T>
__device__ void binary_loop(const T* a, const Strided& sa, const T* b, const Strided& sb, T* c, const Strided& sc,
                            i64 n) {
    if (sa.contiguous && sb.contiguous && sc.contiguous) {
        if constexpr (Vec16<T>::LANES > 0) {
            if (sr_aligned16(a, b, c)) {
                sr_zip_vec(a, b, c, n, [](T u, T v) { return binary_f<OP>(u, v); });
                return;
            }
        }
        SR_LOOP(i, n) c[i] = binary_f<OP>(a[i], b[i]);
    } else {
        SR_LOOP(i, n) c[sr_offset(sc, i)] = binary_f<OP>(a[sr_offset(sa, i)], b[sr_offset(sb, i)]);
    }
}

template <typename T>
__device__ void binary_any(const T* a, const Strided& sa, const T* b, const Strided& sb, T* c, const Strided& sc,
                           i64 n, int op) {
    switch (op) {
    case OP_ADD: binary_loop<OP_ADD>(a, sa, b, sb, c, sc, n); break;
    case OP_SUB: binary_loop<OP_SUB>(a, sa, b, sb, c, sc, n); break;
    case OP_MUL: binary_loop<OP_MUL>(a, sa, b, sb, c, sc, n); break;
    case OP_MAXIMUM: binary_loop<OP_MAXIMUM>(a, sa, b, sb, c, sc, n); break;
    case OP_MINIMUM: binary_loop<OP_MINIMUM>(a, sa, b, sb, c, sc, n); break;
    }
}
template <typename T>
__device__ void binary_float(const T* a, const Strided& sa, const T* b, const Strided& sb, T* c, const Strided& sc,
                             i64 n, int op) {
    if (op == OP_DIV) binary_loop<OP_DIV>(a, sa, b, sb, c, sc, n);
    else if (op == OP_POW) binary_loop<OP_POW>(a, sa, b, sb, c, sc, n);
    else binary_any(a, sa, b, sb, c, sc, n, op);
}

extern "C" __global__ void binary_f32(const float* a, Strided sa, const float* b, Strided sb, float* c, Strided sc,
                                      i64 n, int op) {
    binary_float(a, sa, b, sb, c, sc, n, op);
}
extern "C" __global__ void binary_f64(const double* a, Strided sa, const double* b, Strided sb, double* c,
                                      Strided sc, i64 n, int op) {
    binary_float(a, sa, b, sb, c, sc, n, op);
}
extern "C" __global__ void binary_i64(const i64* a, Strided sa, const i64* b, Strided sb, i64* c, Strided sc, i64 n,
                                      int op) {
    binary_any(a, sa, b, sb, c, sc, n, op);
}

// ---- comparisons, where -----------------------------------------------------

#define OP_EQ 21
#define OP_NE 22
#define OP_LT 23
#define OP_LE 24
#define OP_GT 25
#define OP_GE 26

template <typename T> __device__ __forceinline__ u8 compare_f(T a, T b, int op) {
    switch (op) {
    case OP_EQ: return a == b;
    case OP_NE: return a != b;
    case OP_LT: return a < b;
    case OP_LE: return a <= b;
    case OP_GT: return a > b;
    default: return a >= b;
    }
}
#define COMPARE(NAME, T)                                                                                   \
    extern "C" __global__ void NAME(const T* a, Strided sa, const T* b, Strided sb, u8* m, Strided sm, i64 n, \
                                    int op) {                                                              \
        SR_LOOP(i, n) m[sr_offset(sm, i)] = compare_f(a[sr_offset(sa, i)], b[sr_offset(sb, i)], op);       \
    }
COMPARE(compare_f32, float)
COMPARE(compare_f64, double)
COMPARE(compare_i64, i64)
COMPARE(compare_u8, u8)

// Moves elements of `bytes` bytes as the same-sized unsigned integer, so one
// kernel serves every dtype of that size.
#define WHERE(NAME, T)                                                                                    \
    extern "C" __global__ void NAME(const u8* m, Strided sm, const T* a, Strided sa, const T* b, Strided sb, \
                                    T* c, Strided sc, i64 n) {                                            \
        SR_LOOP(i, n) c[sr_offset(sc, i)] = m[sr_offset(sm, i)] ? a[sr_offset(sa, i)] : b[sr_offset(sb, i)]; \
    }
WHERE(where_b1, u8)
WHERE(where_b4, unsigned int)
WHERE(where_b8, unsigned long long)

// ---- fill, copy -------------------------------------------------------------

// `bits`: the value already converted to the output dtype on the host.
#define FILL(NAME, T)                                                                    \
    extern "C" __global__ void NAME(T* y, Strided sy, i64 n, unsigned long long bits) {  \
        T v = (T)bits;                                                                   \
        SR_LOOP(i, n) y[sr_offset(sy, i)] = v;                                           \
    }
FILL(fill_b1, u8)
FILL(fill_b4, unsigned int)
FILL(fill_b8, unsigned long long)

#define COPY(NAME, T)                                                                                  \
    extern "C" __global__ void NAME(const T* x, Strided sx, T* y, Strided sy, i64 n) {                 \
        if (sx.contiguous && sy.contiguous) {                                                          \
            SR_LOOP(i, n) y[i] = x[i];                                                                 \
        } else {                                                                                       \
            SR_LOOP(i, n) y[sr_offset(sy, i)] = x[sr_offset(sx, i)];                                   \
        }                                                                                              \
    }
COPY(copy_b1, u8)
COPY(copy_b4, unsigned int)
COPY(copy_b8, unsigned long long)

// ---- cast -------------------------------------------------------------------

// Floats to i64 truncate toward zero and saturate, NaN becomes 0 (Rust's
// `as`); anything to u8 maps nonzero (NaN included) to 1.
template <typename D> struct Conv;
template <> struct Conv<float> {
    template <typename S> __device__ static float from(S v) { return (float)v; }
};
template <> struct Conv<double> {
    template <typename S> __device__ static double from(S v) { return (double)v; }
};
template <> struct Conv<u8> {
    template <typename S> __device__ static u8 from(S v) { return v != (S)0; }
};
template <> struct Conv<i64> {
    __device__ static i64 sat(double v) {
        if (v != v) return 0;
        if (v >= 9223372036854775807.0) return 9223372036854775807LL;
        if (v <= -9223372036854775808.0) return (i64)(-9223372036854775807LL - 1);
        return (i64)v;
    }
    __device__ static i64 from(float v) { return sat((double)v); }
    __device__ static i64 from(double v) { return sat(v); }
    __device__ static i64 from(i64 v) { return v; }
    __device__ static i64 from(u8 v) { return (i64)v; }
};

#define CAST(S, D, SN, DN)                                                                            \
    extern "C" __global__ void cast_##SN##_##DN(const S* x, Strided sx, D* y, Strided sy, i64 n) {    \
        SR_LOOP(i, n) y[sr_offset(sy, i)] = Conv<D>::from(x[sr_offset(sx, i)]);                        \
    }
#define CAST_FROM(S, SN) CAST(S, float, SN, f32) CAST(S, double, SN, f64) CAST(S, i64, SN, i64) CAST(S, u8, SN, u8)
CAST_FROM(float, f32)
CAST_FROM(double, f64)
CAST_FROM(i64, i64)
CAST_FROM(u8, u8)

// ---- conv bias --------------------------------------------------------------

// y [N, K, HW] contiguous: y += bias[k].
#define BIAS(NAME, T)                                                                          \
    extern "C" __global__ void NAME(T* y, const T* bias, i64 n, i64 hw, i64 k) {               \
        SR_LOOP(i, n) y[i] += bias[(i / hw) % k];                                              \
    }
BIAS(bias_add_f32, float)
BIAS(bias_add_f64, double)
