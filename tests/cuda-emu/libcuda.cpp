// sunrise CUDA emulator: the driver API subset the plugin calls, on the CPU
// (tests only; never shipped). Built as libcuda.so.1 by build.sh. Memory is
// host memory (filled with 0xFF so no kernel can rely on zeroes); a module
// is a shared object that the emulated NVRTC built with g++; a launch runs
// each block's threads as OS threads, blocks one after another.
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <barrier>
#include <semaphore>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sr_emu_shim.h"

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
enum { OK = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, INVALID_IMAGE = 200, NOT_FOUND = 500, INVALID_DEVICE = 101 };

#define API extern "C" __attribute__((visibility("default")))

static const size_t TOTAL = 8ull << 30;
static int ctx_token, stream_token;

API CUresult cuDriverGetVersion(int* v) { *v = 12040; return OK; }
API CUresult cuInit(unsigned) { return OK; }
API CUresult cuDeviceGetCount(int* n) { *n = 1; return OK; }
API CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    if (ordinal != 0) return INVALID_DEVICE;
    *d = 0;
    return OK;
}
API CUresult cuDeviceGetName(char* name, int len, CUdevice) {
    snprintf(name, len, "sunrise CUDA emulator on the CPU (tests only)");
    return OK;
}
API CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice) {
    switch (attr) {
    case 75: *v = 9; break;  // compute capability major
    case 76: *v = 0; break;  // minor
    case 16: *v = 2; break;  // multiprocessors: few blocks per launch
    default: *v = 0;
    }
    return OK;
}
API CUresult cuDeviceTotalMem_v2(size_t* b, CUdevice) { *b = TOTAL; return OK; }
API CUresult cuDevicePrimaryCtxRetain(void** ctx, CUdevice) { *ctx = &ctx_token; return OK; }
API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return OK; }
API CUresult cuCtxSetCurrent(void*) { return OK; }
API CUresult cuStreamCreate(void** s, unsigned) { *s = &stream_token; return OK; }
API CUresult cuStreamSynchronize(void*) { return OK; }
API CUresult cuStreamDestroy_v2(void*) { return OK; }
API CUresult cuMemGetInfo_v2(size_t* free_b, size_t* total) { *free_b = TOTAL / 2; *total = TOTAL; return OK; }

API CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t n) {
    if (n > TOTAL) return OUT_OF_MEMORY;
    void* m = aligned_alloc(256, (n + 255) / 256 * 256);
    if (!m) return OUT_OF_MEMORY;
    memset(m, 0xFF, n);
    *p = (CUdeviceptr)m;
    return OK;
}
API CUresult cuMemFree_v2(CUdeviceptr p) { free((void*)p); return OK; }
API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, void*) { memcpy((void*)dst, src, n); return OK; }
API CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, void*) { memcpy(dst, (const void*)src, n); return OK; }

API CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, void*) { memset((void*)dst, v, n); return OK; }
API CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned v, size_t n, void*) {
    for (size_t i = 0; i < n; ++i) ((unsigned*)dst)[i] = v;
    return OK;
}

API CUresult cuGetErrorString(CUresult e, const char** s) {
    *s = e == OUT_OF_MEMORY ? "out of memory (emulated)" : "error (emulated driver)";
    return OK;
}
API CUresult cuGetErrorName(CUresult e, const char** s) {
    *s = e == OUT_OF_MEMORY ? "CUDA_ERROR_OUT_OF_MEMORY" : "CUDA_ERROR_EMULATED";
    return OK;
}

// ---- modules --------------------------------------------------------------

typedef void (*Tramp)(void** args, const SrEmuThread* t);
struct Function { Tramp tramp; };
struct Module { void* handle; std::vector<std::unique_ptr<Function>> fns; };

API CUresult cuModuleLoadData(void** out, const void* image) {
    const char* img = (const char*)image;
    const char* magic = "SREMU1:";
    if (strncmp(img, magic, strlen(magic)) != 0) return INVALID_IMAGE;
    void* h = dlopen(img + strlen(magic), RTLD_NOW | RTLD_LOCAL);
    if (!h) return INVALID_IMAGE;
    *out = new Module{h, {}};
    return OK;
}
API CUresult cuModuleGetFunction(void** f, void* module, const char* name) {
    Module* m = (Module*)module;
    std::string sym = std::string(name) + "__emu";
    void* p = dlsym(m->handle, sym.c_str());
    if (!p) return NOT_FOUND;
    m->fns.push_back(std::make_unique<Function>(Function{(Tramp)p}));
    *f = m->fns.back().get();
    return OK;
}
API CUresult cuModuleUnload(void* module) {
    Module* m = (Module*)module;
    dlclose(m->handle);
    delete m;
    return OK;
}

// ---- launches ---------------------------------------------------------------

struct Block {
    std::barrier<> all;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    std::vector<unsigned long long> exchange;
    std::vector<char> smem;
    explicit Block(unsigned n, unsigned shmem) : all(n), exchange(n), smem(shmem + 16) {
        for (unsigned w = 0; w * 32 < n; ++w) warps.push_back(std::make_unique<std::barrier<>>(std::min(32u, n - w * 32)));
    }
};
static void block_sync(void* b) { ((Block*)b)->all.arrive_and_wait(); }
static void warp_sync(void* b, unsigned w) { ((Block*)b)->warps[w]->arrive_and_wait(); }

// Persistent worker threads, one per CUDA thread of the largest block seen:
// creating up to 1024 OS threads per block made emulation slow. Never
// destroyed (detached), so process exit does not wait on them.
struct Workers {
    struct Worker {
        std::binary_semaphore go{0};
    };
    std::mutex m; // guards `pool` growth
    std::vector<Worker*> pool;
    std::function<void(unsigned)> job;
    std::atomic<unsigned> remaining{0};
    std::binary_semaphore finished{0};

    void loop(Worker* w, unsigned id) {
        for (;;) {
            w->go.acquire();
            job(id);
            if (remaining.fetch_sub(1) == 1) finished.release();
        }
    }
    // Runs job(0..n) on n workers (only those n are woken) and waits.
    void run(unsigned n, std::function<void(unsigned)> j) {
        {
            std::lock_guard<std::mutex> l(m);
            while (pool.size() < n) {
                Worker* w = new Worker;
                unsigned id = pool.size();
                pool.push_back(w);
                std::thread([this, w, id] { loop(w, id); }).detach();
            }
        }
        job = std::move(j);
        remaining.store(n);
        for (unsigned i = 0; i < n; ++i) pool[i]->go.release();
        finished.acquire();
    }
};
static Workers& workers() {
    static Workers* w = new Workers;
    return *w;
}
static std::mutex launch_lock;

API CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                            unsigned shmem, void*, void** params, void**) {
    Tramp tramp = ((Function*)f)->tramp;
    unsigned n = bx * by * bz;
    if (n == 0 || n > 1024 || gx == 0 || gy == 0 || gz == 0) return INVALID_VALUE;
    std::lock_guard<std::mutex> g(launch_lock);
    for (unsigned z = 0; z < gz; ++z)
        for (unsigned y = 0; y < gy; ++y)
            for (unsigned x = 0; x < gx; ++x) {
                Block block(n, shmem);
                workers().run(n, [&](unsigned t) {
                    SrEmuThread th;
                    th.thread = dim3{t % bx, (t / bx) % by, t / (bx * by)};
                    th.block = dim3{x, y, z};
                    th.block_dim = dim3{bx, by, bz};
                    th.grid_dim = dim3{gx, gy, gz};
                    th.sync = block_sync;
                    th.warp_sync = warp_sync;
                    th.block_state = &block;
                    th.exchange = block.exchange.data();
                    th.dyn_smem = block.smem.data();
                    tramp(params, &th);
                    // A finished thread no longer holds back barriers.
                    block.all.arrive_and_drop();
                    block.warps[t / 32]->arrive_and_drop();
                });
            }
    return OK;
}
