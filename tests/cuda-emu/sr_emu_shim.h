// sunrise CUDA emulator, kernel side (tests only; never shipped).
//
// Prepended (-include) to a kernel module when the emulated NVRTC
// (libnvrtc.cpp) compiles it with g++ for the CPU. Each CUDA thread of a
// block runs on its own OS thread; blocks run one after another, so
// `__shared__` can be a function-local static. __syncthreads and warp
// shuffles go through the launcher's barriers (libcuda.cpp).
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <atomic>
#include <mutex>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
typedef dim3 uint3;

// CUDA's built-in 16-byte vector types.
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) double2 {
    double x, y;
};

// What the launcher hands each emulated thread.
struct SrEmuThread {
    dim3 thread, block, block_dim, grid_dim;
    void (*sync)(void* block);
    void (*warp_sync)(void* block, unsigned warp);
    void* block_state;
    unsigned long long* exchange; // one slot per thread of the block
    char* dyn_smem;               // dynamic shared memory of the block
};

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
inline thread_local SrEmuThread sr_emu;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static
#define warpSize 32

inline unsigned sr_emu_tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
inline void __syncthreads() { sr_emu.sync(sr_emu.block_state); }
inline void __syncwarp(unsigned = 0xffffffffu) { sr_emu.warp_sync(sr_emu.block_state, sr_emu_tid() / 32); }

template <class T> T sr_emu_shfl(T v, unsigned src_lane) {
    unsigned tid = sr_emu_tid(), warp = tid / 32;
    unsigned long long bits = 0;
    memcpy(&bits, &v, sizeof(T));
    sr_emu.exchange[tid] = bits;
    sr_emu.warp_sync(sr_emu.block_state, warp);
    unsigned long long got = sr_emu.exchange[warp * 32 + (src_lane & 31)];
    sr_emu.warp_sync(sr_emu.block_state, warp);
    T out;
    memcpy(&out, &got, sizeof(T));
    return out;
}
template <class T> T __shfl_xor_sync(unsigned, T v, int mask, int = 32) { return sr_emu_shfl(v, (sr_emu_tid() % 32) ^ mask); }
template <class T> T __shfl_down_sync(unsigned, T v, unsigned d, int = 32) {
    unsigned l = sr_emu_tid() % 32;
    return sr_emu_shfl(v, l + d < 32 ? l + d : l);
}
template <class T> T __shfl_up_sync(unsigned, T v, unsigned d, int = 32) {
    unsigned l = sr_emu_tid() % 32;
    return sr_emu_shfl(v, l >= d ? l - d : l);
}
template <class T> T __shfl_sync(unsigned, T v, int src, int = 32) { return sr_emu_shfl(v, (unsigned)src); }

inline std::mutex& sr_emu_atomic_lock() {
    static std::mutex m;
    return m;
}
template <class T> T atomicAdd(T* p, T v) {
    std::lock_guard<std::mutex> g(sr_emu_atomic_lock());
    T old = *p;
    *p = old + v;
    return old;
}
template <class T> T atomicMax(T* p, T v) {
    std::lock_guard<std::mutex> g(sr_emu_atomic_lock());
    T old = *p;
    *p = old > v ? old : v;
    return old;
}
template <class T> T atomicMin(T* p, T v) {
    std::lock_guard<std::mutex> g(sr_emu_atomic_lock());
    T old = *p;
    *p = old < v ? old : v;
    return old;
}
template <class T> T atomicExch(T* p, T v) {
    std::lock_guard<std::mutex> g(sr_emu_atomic_lock());
    T old = *p;
    *p = v;
    return old;
}
template <class T> T atomicCAS(T* p, T cmp, T v) {
    std::lock_guard<std::mutex> g(sr_emu_atomic_lock());
    T old = *p;
    if (old == cmp) *p = v;
    return old;
}
template <class T> T atomicOr(T* p, T v) {
    std::lock_guard<std::mutex> g(sr_emu_atomic_lock());
    T old = *p;
    *p = old | v;
    return old;
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <class A, class B> inline auto sr_emu_bits(B v) {
    A a;
    memcpy(&a, &v, sizeof(A));
    return a;
}
inline float __int_as_float(int v) { return sr_emu_bits<float>(v); }
inline int __float_as_int(float v) { return sr_emu_bits<int>(v); }
inline float __uint_as_float(unsigned v) { return sr_emu_bits<float>(v); }
inline unsigned __float_as_uint(float v) { return sr_emu_bits<unsigned>(v); }
inline double __longlong_as_double(long long v) { return sr_emu_bits<double>(v); }
inline long long __double_as_longlong(double v) { return sr_emu_bits<long long>(v); }

// CUDA's global min/max: floats like fminf/fmaxf, integers plain.
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }

inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v ? __builtin_clz((unsigned)v) : 32; }
inline int __clzll(long long v) { return v ? __builtin_clzll((unsigned long long)v) : 64; }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline int __ffsll(long long v) { return __builtin_ffsll(v); }

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
// Round-to-nearest arithmetic that is never contracted into an FMA (the
// emulator is built without FMA code generation, so plain operators do).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
template <class T> inline T __ldg(const T* p) { return *p; }
