// sunrise CUDA emulator: NVRTC on the CPU (tests only; never shipped).
// "Compiling" a program means: g++ -E to find its `extern "C" __global__`
// kernels, then g++ builds the source plus one trampoline per kernel
// (`name__emu(void** args, const SrEmuThread*)`) into a shared object. The
// "cubin" is the text `SREMU1:<path of that .so>`, which the emulated
// driver (libcuda.cpp) dlopens. A g++ error is a compile error with g++'s
// output as the program log.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#define API extern "C" __attribute__((visibility("default")))

enum { SUCCESS = 0, INVALID_INPUT = 3, INVALID_PROGRAM = 4, COMPILATION = 6 };

struct Program {
    std::string src, name, log, image;
};

static std::string here() {
    Dl_info info;
    dladdr((void*)&here, &info);
    std::string p = info.dli_fname;
    return p.substr(0, p.rfind('/'));
}

static int run(const std::string& cmd, std::string& out) {
    FILE* f = popen((cmd + " 2>&1").c_str(), "r");
    if (!f) return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    return pclose(f);
}

// `extern "C" void name(type a, type b)` in preprocessed text -> trampolines.
static std::string trampolines(const std::string& pre) {
    std::ostringstream t;
    std::regex kernel(R"(extern\s+"C"\s+void\s+(\w+)\s*\(([^)]*)\)\s*\{)");
    std::regex param(R"(^\s*(.*?)\s*\b(\w+)\s*$)");
    for (auto it = std::sregex_iterator(pre.begin(), pre.end(), kernel); it != std::sregex_iterator(); ++it) {
        std::string name = (*it)[1], params = (*it)[2];
        t << "extern \"C\" void " << name << "__emu(void** a, const SrEmuThread* th) {\n"
          << "  sr_emu = *th; threadIdx = th->thread; blockIdx = th->block; blockDim = th->block_dim;"
          << " gridDim = th->grid_dim;\n  " << name << "(";
        std::stringstream ps(params);
        std::string p;
        int i = 0;
        while (std::getline(ps, p, ',')) {
            std::smatch m;
            if (!std::regex_match(p, m, param)) continue;
            t << (i ? ", " : "") << "*(" << m[1].str() << "*)a[" << i << "]";
            ++i;
        }
        t << ");\n}\n";
    }
    return t.str();
}

// `extern __shared__ T name[];` -> a pointer into the block's dynamic shared memory.
static std::string dynamic_shared(const std::string& src) {
    std::regex ext(R"(extern\s+__shared__\s+(?:__align__\(\d+\)\s*)?([\w\s]+?)\s+(\w+)\s*\[\s*\]\s*;)");
    return std::regex_replace(src, ext, "$1* $2 = ($1*)sr_emu.dyn_smem;");
}

API int nvrtcVersion(int* major, int* minor) { *major = 12; *minor = 4; return SUCCESS; }
static const int ARCHS[] = {75, 80, 86, 89, 90};
API int nvrtcGetNumSupportedArchs(int* n) { *n = 5; return SUCCESS; }
API int nvrtcGetSupportedArchs(int* a) { memcpy(a, ARCHS, sizeof ARCHS); return SUCCESS; }
API const char* nvrtcGetErrorString(int r) { return r == COMPILATION ? "NVRTC_ERROR_COMPILATION (emulated)" : "NVRTC error (emulated)"; }

API int nvrtcCreateProgram(Program** prog, const char* src, const char* name, int, const char* const*, const char* const*) {
    if (!prog || !src) return INVALID_INPUT;
    *prog = new Program{src, name ? name : "prog.cu", "", ""};
    return SUCCESS;
}
API int nvrtcDestroyProgram(Program** prog) { delete *prog; *prog = nullptr; return SUCCESS; }

API int nvrtcCompileProgram(Program* p, int, const char* const*) {
    if (!p) return INVALID_PROGRAM;
    const char* tmp = getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/sunrise-cuda-emu-XXXXXX";
    std::vector<char> d(dir.begin(), dir.end());
    d.push_back(0);
    if (!mkdtemp(d.data())) return COMPILATION;
    dir = d.data();
    std::string shim = here() + "/sr_emu_shim.h";
    std::string src = dynamic_shared(p->src);
    { std::ofstream(dir + "/k.cpp") << src; }
    std::string pre;
    std::string flags = "-std=c++20 -w -include '" + shim + "' -x c++";
    if (run("g++ " + flags + " -E -P '" + dir + "/k.cpp' -o '" + dir + "/k.ii'", p->log) != 0) return COMPILATION;
    { std::ifstream f(dir + "/k.ii"); std::stringstream s; s << f.rdbuf(); pre = s.str(); }
    { std::ofstream(dir + "/k.cpp", std::ios::app) << "\n// trampolines\n" << trampolines(pre); }
    std::string so = dir + "/k.so";
    if (run("g++ " + flags + " -O1 -fPIC -shared -pthread '" + dir + "/k.cpp' -o '" + so + "'", p->log) != 0) {
        p->log = p->name + ": " + p->log;
        return COMPILATION;
    }
    p->image = "SREMU1:" + so;
    return SUCCESS;
}
static int get_size(Program* p, size_t* n) { *n = p->image.size() + 1; return SUCCESS; }
static int get(Program* p, char* out) { memcpy(out, p->image.c_str(), p->image.size() + 1); return SUCCESS; }
API int nvrtcGetCUBINSize(Program* p, size_t* n) { return get_size(p, n); }
API int nvrtcGetCUBIN(Program* p, char* out) { return get(p, out); }
API int nvrtcGetPTXSize(Program* p, size_t* n) { return get_size(p, n); }
API int nvrtcGetPTX(Program* p, char* out) { return get(p, out); }
API int nvrtcGetProgramLogSize(Program* p, size_t* n) { *n = p->log.size() + 1; return SUCCESS; }
API int nvrtcGetProgramLog(Program* p, char* out) { memcpy(out, p->log.c_str(), p->log.size() + 1); return SUCCESS; }
