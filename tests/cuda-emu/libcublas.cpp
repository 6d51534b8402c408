// sunrise CUDA emulator: the cuBLAS calls the plugin makes, as plain loops
// on the CPU (tests only; never shipped). Built as libcublas.so.12; an empty
// libcublasLt.so.12 (cublasLtGetVersion only) stands beside it.
#include <stddef.h>

#define API extern "C" __attribute__((visibility("default")))

static int handle_token;
API int cublasCreate_v2(void** h) { *h = &handle_token; return 0; }
API int cublasDestroy_v2(void*) { return 0; }
API int cublasSetStream_v2(void*, void*) { return 0; }
API int cublasSetMathMode(void*, int) { return 0; }
API int cublasGetProperty(int type, int* v) { *v = type == 0 ? 12 : (type == 1 ? 4 : 0); return 0; }

// Column-major C = alpha op(A) op(B) + beta C, batched by element strides.
template <class T>
static int gemm(int ta, int tb, int m, int n, int k, const T* alpha, const T* A, int lda, long long sa, const T* B,
                int ldb, long long sb, const T* beta, T* C, int ldc, long long sc, int count) {
    if (m < 0 || n < 0 || k < 0 || count < 0) return 7; // CUBLAS_STATUS_INVALID_VALUE
    if (lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m) return 7;
    for (int b = 0; b < count; ++b) {
        const T* a = A + b * sa;
        const T* bb = B + b * sb;
        T* c = C + b * sc;
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < m; ++i) {
                T s = 0;
                for (int p = 0; p < k; ++p) {
                    T x = ta ? a[p + (long long)i * lda] : a[i + (long long)p * lda];
                    T y = tb ? bb[j + (long long)p * ldb] : bb[p + (long long)j * ldb];
                    s += x * y;
                }
                T* out = c + i + (long long)j * ldc;
                *out = *beta == T(0) ? *alpha * s : *alpha * s + *beta * *out;
            }
    }
    return 0;
}
API int cublasSgemmStridedBatched(void*, int ta, int tb, int m, int n, int k, const float* al, const float* A, int lda,
                                  long long sa, const float* B, int ldb, long long sb, const float* be, float* C,
                                  int ldc, long long sc, int count) {
    return gemm(ta, tb, m, n, k, al, A, lda, sa, B, ldb, sb, be, C, ldc, sc, count);
}
API int cublasDgemmStridedBatched(void*, int ta, int tb, int m, int n, int k, const double* al, const double* A,
                                  int lda, long long sa, const double* B, int ldb, long long sb, const double* be,
                                  double* C, int ldc, long long sc, int count) {
    return gemm(ta, tb, m, n, k, al, A, lda, sa, B, ldb, sb, be, C, ldc, sc, count);
}
