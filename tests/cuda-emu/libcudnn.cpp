// sunrise CUDA emulator: the cuDNN convolution calls the plugin makes, as
// plain loops on the CPU (tests only; never shipped). Built as libcudnn.so.9.
#include <stddef.h>
#include <string.h>

#include <vector>

#define API extern "C" __attribute__((visibility("default")))

struct Tensor { int dtype, n, c, h, w, ns, cs, hs, ws; };
struct Filter { int dtype, k, c, h, w; };
struct Conv { int ph, pw, u, v, dh, dw, math, groups = 1; };
struct Perf { int algo, status; float time; size_t memory; int determinism, math, reserved[3]; };

static int handle_token;
API size_t cudnnGetVersion() { return 90100; }
API const char* cudnnGetErrorString(int) { return "cuDNN error (emulated)"; }
API int cudnnCreate(void** h) { *h = &handle_token; return 0; }
API int cudnnDestroy(void*) { return 0; }
API int cudnnSetStream(void*, void*) { return 0; }
API int cudnnCreateTensorDescriptor(Tensor** t) { *t = new Tensor{}; return 0; }
API int cudnnDestroyTensorDescriptor(Tensor* t) { delete t; return 0; }
API int cudnnSetTensor4dDescriptorEx(Tensor* t, int dt, int n, int c, int h, int w, int ns, int cs, int hs, int ws) {
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return 3; // CUDNN_STATUS_BAD_PARAM
    *t = Tensor{dt, n, c, h, w, ns, cs, hs, ws};
    return 0;
}
API int cudnnCreateFilterDescriptor(Filter** f) { *f = new Filter{}; return 0; }
API int cudnnDestroyFilterDescriptor(Filter* f) { delete f; return 0; }
API int cudnnSetFilter4dDescriptor(Filter* f, int dt, int, int k, int c, int h, int w) { *f = Filter{dt, k, c, h, w}; return 0; }
API int cudnnCreateConvolutionDescriptor(Conv** c) { *c = new Conv{}; return 0; }
API int cudnnDestroyConvolutionDescriptor(Conv* c) { delete c; return 0; }
API int cudnnSetConvolution2dDescriptor(Conv* c, int ph, int pw, int u, int v, int dh, int dw, int, int) {
    c->ph = ph, c->pw = pw, c->u = u, c->v = v, c->dh = dh, c->dw = dw;
    return 0;
}
API int cudnnSetConvolutionMathType(Conv* c, int m) { c->math = m; return 0; }
API int cudnnSetConvolutionGroupCount(Conv* c, int g) { c->groups = g; return 0; }

static int heuristic(int* ret, Perf* p) {
    *ret = 1;
    p[0] = Perf{1, 0, 0.f, 256, 1, 3, {0, 0, 0}};
    return 0;
}
API int cudnnGetConvolutionForwardAlgorithm_v7(void*, void*, void*, void*, void*, int, int* r, Perf* p) { return heuristic(r, p); }
API int cudnnGetConvolutionBackwardDataAlgorithm_v7(void*, void*, void*, void*, void*, int, int* r, Perf* p) { return heuristic(r, p); }
API int cudnnGetConvolutionBackwardFilterAlgorithm_v7(void*, void*, void*, void*, void*, int, int* r, Perf* p) { return heuristic(r, p); }

// Visits every (output element, input element, weight element) triple.
template <class F> static void each(const Tensor* x, const Filter* w, const Tensor* y, const Conv* c, F f) {
    int kg = w->k / c->groups;
    for (int n = 0; n < y->n; ++n)
        for (int k = 0; k < y->c; ++k)
            for (int p = 0; p < y->h; ++p)
                for (int q = 0; q < y->w; ++q)
                    for (int ci = 0; ci < w->c; ++ci)
                        for (int r = 0; r < w->h; ++r)
                            for (int s = 0; s < w->w; ++s) {
                                int hi = p * c->u - c->ph + r * c->dh, wi = q * c->v - c->pw + s * c->dw;
                                if (hi < 0 || hi >= x->h || wi < 0 || wi >= x->w) continue;
                                int cx = (k / kg) * w->c + ci;
                                long long xo = (long long)n * x->ns + (long long)cx * x->cs + (long long)hi * x->hs + (long long)wi * x->ws;
                                long long wo = (((long long)k * w->c + ci) * w->h + r) * w->w + s;
                                long long yo = (long long)n * y->ns + (long long)k * y->cs + (long long)p * y->hs + (long long)q * y->ws;
                                f(xo, wo, yo);
                            }
}
static long long count(const Tensor* t) { return (long long)t->n * t->c * t->h * t->w; }
static long long offset(const Tensor* t, long long i) {
    long long w = i % t->w, h = (i / t->w) % t->h, c = (i / t->w / t->h) % t->c, n = i / t->w / t->h / t->c;
    return n * t->ns + c * t->cs + h * t->hs + w * t->ws;
}
// out = alpha acc + beta out, with beta == 0 never reading out.
template <class T> static void blend(T* out, const std::vector<T>& acc, long long n, const void* al, const void* be,
                                     long long (*off)(const void*, long long), const void* desc) {
    T a = *(const T*)al, b = *(const T*)be;
    for (long long i = 0; i < n; ++i) {
        T* o = out + off(desc, i);
        *o = b == T(0) ? a * acc[i] : a * acc[i] + b * *o;
    }
}
static long long toff(const void* d, long long i) { return offset((const Tensor*)d, i); }
static long long foff(const void*, long long i) { return i; }

template <class T> static void fwd(const void* al, const Tensor* xd, const T* x, const Filter* wd, const T* w, const Conv* c, const void* be, const Tensor* yd, T* y) {
    std::vector<T> acc(count(yd), T(0));
    Tensor lin = *yd; // accumulate in packed order of y
    lin.ns = yd->c * yd->h * yd->w, lin.cs = yd->h * yd->w, lin.hs = yd->w, lin.ws = 1;
    each(xd, wd, &lin, c, [&](long long xo, long long wo, long long yo) { acc[yo] += x[xo] * w[wo]; });
    blend(y, acc, count(yd), al, be, toff, yd);
}
template <class T> static void bwd_data(const void* al, const Filter* wd, const T* w, const Tensor* dyd, const T* dy, const Conv* c, const void* be, const Tensor* dxd, T* dx) {
    std::vector<T> acc(count(dxd), T(0));
    Tensor lin = *dxd;
    lin.ns = dxd->c * dxd->h * dxd->w, lin.cs = dxd->h * dxd->w, lin.hs = dxd->w, lin.ws = 1;
    each(&lin, wd, dyd, c, [&](long long xo, long long wo, long long yo) { acc[xo] += dy[yo] * w[wo]; });
    blend(dx, acc, count(dxd), al, be, toff, dxd);
}
template <class T> static void bwd_filter(const void* al, const Tensor* xd, const T* x, const Tensor* dyd, const T* dy, const Conv* c, const void* be, const Filter* dwd, T* dw) {
    long long nw = (long long)dwd->k * dwd->c * dwd->h * dwd->w;
    std::vector<T> acc(nw, T(0));
    each(xd, dwd, dyd, c, [&](long long xo, long long wo, long long yo) { acc[wo] += dy[yo] * x[xo]; });
    blend(dw, acc, nw, al, be, foff, nullptr);
}

API int cudnnConvolutionForward(void*, const void* al, const Tensor* xd, const void* x, const Filter* wd, const void* w, const Conv* c, int, void*, size_t, const void* be, const Tensor* yd, void* y) {
    if (xd->dtype == 1) fwd(al, xd, (const double*)x, wd, (const double*)w, c, be, yd, (double*)y);
    else fwd(al, xd, (const float*)x, wd, (const float*)w, c, be, yd, (float*)y);
    return 0;
}
API int cudnnConvolutionBackwardData(void*, const void* al, const Filter* wd, const void* w, const Tensor* dyd, const void* dy, const Conv* c, int, void*, size_t, const void* be, const Tensor* dxd, void* dx) {
    if (dyd->dtype == 1) bwd_data(al, wd, (const double*)w, dyd, (const double*)dy, c, be, dxd, (double*)dx);
    else bwd_data(al, wd, (const float*)w, dyd, (const float*)dy, c, be, dxd, (float*)dx);
    return 0;
}
API int cudnnConvolutionBackwardFilter(void*, const void* al, const Tensor* xd, const void* x, const Tensor* dyd, const void* dy, const Conv* c, int, void*, size_t, const void* be, const Filter* dwd, void* dw) {
    if (xd->dtype == 1) bwd_filter(al, xd, (const double*)x, dyd, (const double*)dy, c, be, dwd, (double*)dw);
    else bwd_filter(al, xd, (const float*)x, dyd, (const float*)dy, c, be, dwd, (float*)dw);
    return 0;
}
