// sunrise CUDA emulator: cuBLASLt's presence (tests only; never shipped).
#include <stddef.h>
extern "C" __attribute__((visibility("default"))) size_t cublasLtGetVersion() { return 120400; }
