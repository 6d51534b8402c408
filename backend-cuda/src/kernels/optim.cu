// adamw_step, sgd_step and their _multi forms, as backend-cpu/src/optim.rs:
// one launch updates up to SR_MULTI_MAX parameters (blockIdx.y picks the
// parameter, the x dimension strides over its elements), each in one pass,
// p, m, v (SGD: buf) contiguous and updated in place, g contiguous (the
// host copies a strided g first). The scalars come from the
// host already rounded to the dtype, and the per-element operations are
// the CPU's, in the CPU's order (no fused multiply-add: __fmul_rn and
// __fadd_rn keep NVRTC from contracting), so both give the same bits.

template <typename T> __device__ __forceinline__ T mul_rn(T a, T b);
template <typename T> __device__ __forceinline__ T add_rn(T a, T b);
template <> __device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
template <> __device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
template <> __device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
template <> __device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

template <typename T>
__device__ void adamw(T* p, T* m, T* v, const T* g, i64 n, T b1, T c1, T b2, T c2, T inv_sqrt_bc2,
                      T eps, T decay, T step) {
    SR_LOOP(i, n) {
        T gi = g[i];
        T mi = add_rn(mul_rn(m[i], b1), mul_rn(gi, c1));
        T vi = add_rn(mul_rn(v[i], b2), mul_rn(mul_rn(gi, gi), c2));
        m[i] = mi;
        v[i] = vi;
        T denom = add_rn(mul_rn(sqrt(vi), inv_sqrt_bc2), eps);
        p[i] = add_rn(mul_rn(p[i], decay), -mul_rn(mi / denom, step));
    }
}

// Up to SR_MULTI_MAX parameters of one launch (backend-cuda/src/optim.rs,
// struct Multi): their p, m, v (SGD: buf; entries a kernel does not touch
// repeat p), contiguous g and lengths.
#define SR_MULTI_MAX 32
template <typename T> struct SrMulti {
    T* p[SR_MULTI_MAX];
    T* m[SR_MULTI_MAX];
    T* v[SR_MULTI_MAX];
    const T* g[SR_MULTI_MAX];
    i64 n[SR_MULTI_MAX];
    int count;
    int reserved;
};
typedef SrMulti<float> SrMultiF32;
typedef SrMulti<double> SrMultiF64;

extern "C" __global__ void adamw_multi_f32(SrMultiF32 t, float b1, float c1, float b2, float c2,
                                           float inv_sqrt_bc2, float eps, float decay,
                                           float step) {
    int k = blockIdx.y;
    if (k >= t.count) return;
    adamw<float>(t.p[k], t.m[k], t.v[k], t.g[k], t.n[k], b1, c1, b2, c2, inv_sqrt_bc2, eps, decay,
                 step);
}

extern "C" __global__ void adamw_multi_f64(SrMultiF64 t, double b1, double c1, double b2,
                                           double c2, double inv_sqrt_bc2, double eps,
                                           double decay, double step) {
    int k = blockIdx.y;
    if (k >= t.count) return;
    adamw<double>(t.p[k], t.m[k], t.v[k], t.g[k], t.n[k], b1, c1, b2, c2, inv_sqrt_bc2, eps,
                  decay, step);
}

// sgd_step, as backend-cpu/src/optim.rs: d = g + p wd (when wd != 0);
// with momentum buf = d (first step) or buf momentum + d (1 - dampening),
// then d = d + buf momentum (Nesterov) or buf; p = p - d lr. Flags: bit 0
// weight decay, bit 1 momentum, bit 2 Nesterov, bit 3 first step.
template <typename T>
__device__ void sgd(T* p, T* buf, const T* g, i64 n, T wd, T momentum, T one_minus_damp, T lr,
                    int flags) {
    SR_LOOP(i, n) {
        T d = g[i];
        if (flags & 1) d = add_rn(d, mul_rn(p[i], wd));
        if (flags & 2) {
            T b = (flags & 8) ? d : add_rn(mul_rn(buf[i], momentum), mul_rn(d, one_minus_damp));
            buf[i] = b;
            d = (flags & 4) ? add_rn(d, mul_rn(b, momentum)) : b;
        }
        p[i] = add_rn(p[i], -mul_rn(d, lr));
    }
}

extern "C" __global__ void sgd_multi_f32(SrMultiF32 t, float wd, float momentum,
                                         float one_minus_damp, float lr, int flags) {
    int k = blockIdx.y;
    if (k >= t.count) return;
    sgd<float>(t.p[k], t.m[k], t.g[k], t.n[k], wd, momentum, one_minus_damp, lr, flags);
}

extern "C" __global__ void sgd_multi_f64(SrMultiF64 t, double wd, double momentum,
                                         double one_minus_damp, double lr, int flags) {
    int k = blockIdx.y;
    if (k >= t.count) return;
    sgd<double>(t.p[k], t.m[k], t.g[k], t.n[k], wd, momentum, one_minus_damp, lr, flags);
}
