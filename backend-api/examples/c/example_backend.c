/*
 * example_backend.c: a complete sunrise device backend plugin in C99.
 *
 * It is written against sunrise_backend.h alone and shows every part of the
 * plugin ABI v1 a backend needs: probe and init, one device, 64-byte aligned
 * buffers that know their size (so buffer_read, buffer_write and execute
 * check every byte range), status objects, the host's logging callback, and
 * f32 kernels for seven ops on arbitrary strided views:
 *
 *     fill, copy, neg, relu, add, sub, mul
 *
 * Every other (op, dtype) pair is answered with SR_UNSUPPORTED, after which
 * the host runs that one call on its CPU backend. Bad arguments (wrong input
 * or output count, rank above SR_MAX_RANK, an input shape that is not the
 * output's, mixed dtypes, a view outside its buffer) get SR_INVALID_ARGUMENT.
 * Nothing here aborts or crashes on a bad call.
 *
 * Build (Debian: the header comes with sunrise-backend-dev):
 *
 *     cc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -I/usr/include/sunrise \
 *        -shared -fPIC -o libsunrise_backend_example.so example_backend.c
 *
 * (or `make`, with the Makefile beside this file). Then check it against the
 * built-in CPU backend:
 *
 *     SUNRISE_BACKEND_PATH=$PWD sunrise conformance --device example
 *
 * Compiled with -DSUNRISE_EXAMPLE_WRONG_ADD, `add` is deliberately wrong
 * (a + b + 0.001 |a|), so that the conformance run shows what a failure looks
 * like.
 *
 * The probe score is 1, below the built-in CPU backend's 10: with
 * SUNRISE_DEVICE=auto the host keeps its own CPU, and this backend runs only
 * when chosen by name (--device example, SUNRISE_DEVICE=example).
 *
 * SPDX-License-Identifier: Apache-2.0 OR MIT
 */

/* posix_memalign is POSIX (2001), not ISO C99. */
#define _POSIX_C_SOURCE 200112L

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sunrise_backend.h"

/* The alignment the ABI requires of every buffer (at least 64 bytes). */
#define EXAMPLE_ALIGN 64u

/* The number of (op, dtype) pairs this backend lists. */
#define EXAMPLE_PAIRS 7

/* ---------------------------------------------------------------------------
 * The opaque types of the header, completed here: only this plugin looks
 * inside them.
 */

struct SrBuffer {
    uint64_t bytes;      /* the size the host asked for */
    unsigned char *data; /* EXAMPLE_ALIGN-aligned, at least `bytes` long */
};

struct SrBackend {
    /* The host's table, valid until destroy: used for logging. */
    const SrHostApi *host;
    /* What supported_ops returns; lives as long as the instance. */
    SrOpSupport ops[EXAMPLE_PAIRS];
    /* What device_props returns; lives as long as the instance. */
    SrAttribute attributes[2];
};

/*
 * Threading: the host may call any entry point from any thread, at the same
 * time. Nothing in this backend changes after init (the tables above are
 * written once, buffers are the host's to use), and posix_memalign and free
 * are thread-safe, so no lock is needed. A backend with a cache, a queue or
 * a device handle shared between calls must guard it with a mutex.
 */

/* ---------------------------------------------------------------------------
 * Status objects. A status belongs to the side that made it and is freed
 * through its own `release`, exactly once, by the receiver.
 */

static void release_heap(SrStatus *status) { free(status); }

/* The status of last resort, when even a status cannot be allocated. */
static void release_static(SrStatus *status) { (void)status; }

static SrStatus out_of_memory_status = {
    sizeof(SrStatus), NULL, SR_OUT_OF_MEMORY, 0, "example: out of memory (status)", NULL,
    NULL, release_static,
};

/* A status with a formatted message, in one allocation. */
#ifdef __GNUC__
__attribute__((format(printf, 2, 3)))
#endif
static SrStatus *status(SrStatusCode code, const char *format, ...);

static SrStatus *status(SrStatusCode code, const char *format, ...) {
    char message[256];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    size_t len = strlen(message) + 1;
    SrStatus *s = malloc(sizeof(SrStatus) + len);
    if (s == NULL) {
        return &out_of_memory_status;
    }
    memset(s, 0, sizeof(SrStatus));
    s->struct_size = sizeof(SrStatus);
    s->code = code;
    s->message = memcpy((char *)(s + 1), message, len);
    s->release = release_heap;
    return s;
}

static void log_line(const SrBackend *backend, SrLogLevel level, const char *message) {
    if (backend->host->log != NULL) {
        backend->host->log(backend->host->user_data, level, "example", message);
    }
}

/* ---------------------------------------------------------------------------
 * The device.
 */

static void destroy(SrBackend *backend) {
    /* Called once, after the host's last call into this instance. */
    free(backend);
}

static uint32_t device_count(SrBackend *backend) {
    (void)backend;
    return 1;
}

static SrStatusPtr device_props(SrBackend *backend, uint32_t device, SrDeviceProps *out) {
    if (device != 0) {
        return status(SR_INVALID_ARGUMENT, "example: no device %u (it has one, 0)",
                      (unsigned)device);
    }
    if (out == NULL || out->struct_size < sizeof(SrDeviceProps)) {
        return status(SR_ABI_MISMATCH, "example: SrDeviceProps too small");
    }
    /* Write only the fields of ABI 1.0; the host zeroed the rest. */
    out->kind = SR_DEVICE_CPU;
    out->name = "example C99 device (host memory)";
    out->total_memory = 0; /* unknown */
    out->free_memory = 0;
    out->driver_version = NULL;
    out->library_versions = NULL;
    out->attribute_count = 2;
    out->attributes = backend->attributes;
    return NULL;
}

static SrStatusPtr supported_ops(SrBackend *backend, uint64_t *count,
                                 const SrOpSupport **pairs) {
    if (count == NULL || pairs == NULL) {
        return status(SR_INVALID_ARGUMENT, "example: supported_ops: null output");
    }
    *count = EXAMPLE_PAIRS;
    *pairs = backend->ops;
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Buffers: host memory from posix_memalign, 64-byte aligned, with their size.
 */

static SrStatusPtr buffer_alloc(SrBackend *backend, uint32_t device, uint64_t bytes,
                                SrBuffer **out) {
    (void)backend;
    if (device != 0 || out == NULL) {
        return status(SR_INVALID_ARGUMENT, "example: buffer_alloc: bad device or output");
    }
    /* Round up to the alignment; a 0-byte buffer is still a real handle. */
    if (bytes > (uint64_t)SIZE_MAX - EXAMPLE_ALIGN) {
        return status(SR_OUT_OF_MEMORY, "example: %llu bytes cannot be allocated",
                      (unsigned long long)bytes);
    }
    size_t rounded = (size_t)((bytes + EXAMPLE_ALIGN - 1) / EXAMPLE_ALIGN * EXAMPLE_ALIGN);
    if (rounded == 0) {
        rounded = EXAMPLE_ALIGN;
    }
    SrBuffer *b = malloc(sizeof(SrBuffer));
    void *data = NULL;
    if (b == NULL || posix_memalign(&data, EXAMPLE_ALIGN, rounded) != 0) {
        free(b);
        return status(SR_OUT_OF_MEMORY, "example: out of memory allocating %llu bytes",
                      (unsigned long long)bytes);
    }
    b->bytes = bytes;
    b->data = data;
    *out = b;
    return NULL;
}

static void buffer_free(SrBackend *backend, SrBuffer *buffer) {
    (void)backend;
    if (buffer != NULL) {
        free(buffer->data);
        free(buffer);
    }
}

/* True when [offset, offset + len) lies inside the buffer (no overflow). */
static int in_range(const SrBuffer *b, uint64_t offset, uint64_t len) {
    return offset <= b->bytes && len <= b->bytes - offset;
}

static SrStatusPtr buffer_write(SrBackend *backend, SrBuffer *buffer, uint64_t offset,
                                const void *src, uint64_t len) {
    (void)backend;
    if (buffer == NULL || (src == NULL && len > 0)) {
        return status(SR_INVALID_ARGUMENT, "example: buffer_write: null buffer or source");
    }
    if (!in_range(buffer, offset, len)) {
        return status(SR_INVALID_ARGUMENT,
                      "example: buffer_write of %llu bytes at %llu is outside a buffer of "
                      "%llu bytes",
                      (unsigned long long)len, (unsigned long long)offset,
                      (unsigned long long)buffer->bytes);
    }
    if (len > 0) {
        memcpy(buffer->data + offset, src, (size_t)len);
    }
    return NULL; /* synchronous: the host may reuse `src` at once */
}

static SrStatusPtr buffer_read(SrBackend *backend, SrBuffer *buffer, uint64_t offset,
                               void *dst, uint64_t len) {
    (void)backend;
    if (buffer == NULL || (dst == NULL && len > 0)) {
        return status(SR_INVALID_ARGUMENT, "example: buffer_read: null buffer or destination");
    }
    if (!in_range(buffer, offset, len)) {
        return status(SR_INVALID_ARGUMENT,
                      "example: buffer_read of %llu bytes at %llu is outside a buffer of "
                      "%llu bytes",
                      (unsigned long long)len, (unsigned long long)offset,
                      (unsigned long long)buffer->bytes);
    }
    if (len > 0) {
        memcpy(dst, buffer->data + offset, (size_t)len);
    }
    return NULL;
}

static SrStatusPtr synchronize(SrBackend *backend, uint32_t device) {
    (void)backend;
    /* execute runs to completion before it returns: nothing is queued. */
    if (device != 0) {
        return status(SR_INVALID_ARGUMENT, "example: no device %u", (unsigned)device);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Tensor descriptors.
 */

/*
 * Checks one descriptor: its struct size, rank, extents and strides, and that
 * every element it names lies inside its buffer. `elem` is the element size
 * in bytes. `what` names it in messages.
 */
static SrStatus *check_view(const SrTensorDesc *t, uint64_t elem, const char *what) {
    if (t->struct_size < sizeof(SrTensorDesc)) {
        return status(SR_ABI_MISMATCH, "example: %s: tensor descriptor too small", what);
    }
    if (t->rank > SR_MAX_RANK) {
        return status(SR_INVALID_ARGUMENT, "example: %s: rank %u is above SR_MAX_RANK (%d)",
                      what, (unsigned)t->rank, SR_MAX_RANK);
    }
    if (t->buffer == NULL) {
        return status(SR_INVALID_ARGUMENT, "example: %s: null buffer", what);
    }
    if (t->byte_offset % elem != 0) {
        return status(SR_INVALID_ARGUMENT, "example: %s: byte offset %llu is not a multiple of "
                      "the element size", what, (unsigned long long)t->byte_offset);
    }
    /* The last element's index: sum of (extent - 1) * stride, checked. */
    uint64_t last = 0;
    int empty = 0;
    for (uint32_t k = 0; k < t->rank; k++) {
        if (t->shape[k] < 0 || t->strides[k] < 0) {
            return status(SR_INVALID_ARGUMENT, "example: %s: negative extent or stride in "
                          "dim %u", what, (unsigned)k);
        }
        if (t->shape[k] == 0) {
            empty = 1;
        }
    }
    if (empty) {
        return NULL; /* no element is touched */
    }
    for (uint32_t k = 0; k < t->rank; k++) {
        uint64_t n = (uint64_t)t->shape[k] - 1;
        uint64_t s = (uint64_t)t->strides[k];
        if (s != 0 && n > (UINT64_MAX - last) / s) {
            return status(SR_INVALID_ARGUMENT, "example: %s: view too large", what);
        }
        last += n * s;
    }
    /* Bytes touched: (last + 1) * elem, from byte_offset. */
    if (last >= UINT64_MAX / elem) {
        return status(SR_INVALID_ARGUMENT, "example: %s: view too large", what);
    }
    if (!in_range(t->buffer, t->byte_offset, (last + 1) * elem)) {
        return status(SR_INVALID_ARGUMENT,
                      "example: %s: view reaches byte %llu of a buffer of %llu bytes", what,
                      (unsigned long long)(t->byte_offset + (last + 1) * elem),
                      (unsigned long long)t->buffer->bytes);
    }
    return NULL;
}

/*
 * An output must not name one element twice (a stride of 0 on a dim of
 * extent > 1, or dims that interleave). Sorted by stride, each stride must
 * step past everything the smaller ones reach.
 */
static SrStatus *check_no_overlap(const SrTensorDesc *t) {
    int64_t shape[SR_MAX_RANK];
    int64_t strides[SR_MAX_RANK];
    uint32_t n = 0;
    for (uint32_t k = 0; k < t->rank; k++) {
        if (t->shape[k] == 0) {
            return NULL;
        }
        if (t->shape[k] > 1) {
            /* insertion sort by stride */
            uint32_t j = n++;
            while (j > 0 && strides[j - 1] > t->strides[k]) {
                strides[j] = strides[j - 1];
                shape[j] = shape[j - 1];
                j--;
            }
            strides[j] = t->strides[k];
            shape[j] = t->shape[k];
        }
    }
    int64_t reach = 0; /* check_view bounded every product below */
    for (uint32_t j = 0; j < n; j++) {
        if (strides[j] <= reach) {
            return status(SR_INVALID_ARGUMENT, "example: the output overlaps itself");
        }
        reach += strides[j] * (shape[j] - 1);
    }
    return NULL;
}

static int same_shape(const SrTensorDesc *a, const SrTensorDesc *b) {
    if (a->rank != b->rank) {
        return 0;
    }
    for (uint32_t k = 0; k < a->rank; k++) {
        if (a->shape[k] != b->shape[k]) {
            return 0;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------------------
 * Kernels. Each one runs along the innermost dim of the output; `walk`
 * visits every innermost row of a view of any rank (0 to SR_MAX_RANK).
 * Strides are in elements; 0 repeats an element (broadcast input).
 */

typedef enum { K_FILL, K_COPY, K_NEG, K_RELU, K_ADD, K_SUB, K_MUL } Kernel;

static void row(Kernel kernel, int64_t n, float *y, int64_t sy, const float *a, int64_t sa,
                const float *b, int64_t sb, float value) {
    int64_t i;
    switch (kernel) {
    case K_FILL:
        for (i = 0; i < n; i++) y[i * sy] = value;
        break;
    case K_COPY:
        for (i = 0; i < n; i++) y[i * sy] = a[i * sa];
        break;
    case K_NEG:
        for (i = 0; i < n; i++) y[i * sy] = -a[i * sa];
        break;
    case K_RELU:
        /* As the CPU backend: 0 > x ? 0 : x, so NaN stays NaN. */
        for (i = 0; i < n; i++) {
            float x = a[i * sa];
            y[i * sy] = 0.0f > x ? 0.0f : x;
        }
        break;
    case K_ADD:
        for (i = 0; i < n; i++) {
            float x = a[i * sa];
#ifdef SUNRISE_EXAMPLE_WRONG_ADD
            /* Deliberately wrong, for the negative conformance test. */
            y[i * sy] = x + b[i * sb] + 1e-3f * (x < 0.0f ? -x : x);
#else
            y[i * sy] = x + b[i * sb];
#endif
        }
        break;
    case K_SUB:
        for (i = 0; i < n; i++) y[i * sy] = a[i * sa] - b[i * sb];
        break;
    case K_MUL:
        for (i = 0; i < n; i++) y[i * sy] = a[i * sa] * b[i * sb];
        break;
    }
}

/* Element 0 of a checked f32 view. */
static float *base_of(const SrTensorDesc *t) {
    return (float *)(void *)(t->buffer->data + t->byte_offset);
}

/*
 * Runs `kernel` over the output `y`; `a` and `b` (null when unused) have its
 * shape. The outer dims are counted like an odometer.
 */
static void walk(Kernel kernel, const SrTensorDesc *y, const SrTensorDesc *a,
                 const SrTensorDesc *b, float value) {
    uint32_t rank = y->rank;
    int64_t index[SR_MAX_RANK] = {0};
    int64_t zero[SR_MAX_RANK] = {0};
    const int64_t *sa = a != NULL ? a->strides : zero;
    const int64_t *sb = b != NULL ? b->strides : zero;
    float *py = base_of(y);
    const float *pa = a != NULL ? base_of(a) : NULL;
    const float *pb = b != NULL ? base_of(b) : NULL;
    for (uint32_t k = 0; k < rank; k++) {
        if (y->shape[k] == 0) {
            return; /* no elements */
        }
    }
    if (rank == 0) {
        row(kernel, 1, py, 1, pa, 1, pb, 1, value);
        return;
    }
    uint32_t inner = rank - 1;
    for (;;) {
        int64_t oy = 0, oa = 0, ob = 0;
        for (uint32_t k = 0; k < inner; k++) {
            oy += index[k] * y->strides[k];
            oa += index[k] * sa[k];
            ob += index[k] * sb[k];
        }
        row(kernel, y->shape[inner], py + oy, y->strides[inner], pa != NULL ? pa + oa : NULL,
            sa[inner], pb != NULL ? pb + ob : NULL, sb[inner], value);
        /* Next row: carry through the outer dims. */
        uint32_t k = inner;
        while (k > 0) {
            k--;
            if (++index[k] < y->shape[k]) {
                break;
            }
            index[k] = 0;
            if (k == 0) {
                return;
            }
        }
        if (inner == 0) {
            return;
        }
    }
}

/* ---------------------------------------------------------------------------
 * execute: checks, then one kernel. Runs to completion before returning, so
 * a later buffer_read sees its results (the ABI requires that of every
 * backend, asynchronous ones included).
 */

static SrStatusPtr execute(SrBackend *backend, uint32_t device, uint32_t op, const void *params,
                           const SrTensorDesc *inputs, uint64_t input_count,
                           const SrTensorDesc *outputs, uint64_t output_count) {
    (void)backend;
    Kernel kernel;
    uint64_t arity;
    const char *name;
    switch (op) {
    case SR_OP_FILL: kernel = K_FILL; arity = 0; name = "fill"; break;
    case SR_OP_COPY: kernel = K_COPY; arity = 1; name = "copy"; break;
    case SR_OP_NEG: kernel = K_NEG; arity = 1; name = "neg"; break;
    case SR_OP_RELU: kernel = K_RELU; arity = 1; name = "relu"; break;
    case SR_OP_ADD: kernel = K_ADD; arity = 2; name = "add"; break;
    case SR_OP_SUB: kernel = K_SUB; arity = 2; name = "sub"; break;
    case SR_OP_MUL: kernel = K_MUL; arity = 2; name = "mul"; break;
    default:
        /* Not ours: the host runs this call on its CPU backend. */
        return status(SR_UNSUPPORTED, "example: op %u is not implemented", (unsigned)op);
    }
    if (device != 0) {
        return status(SR_INVALID_ARGUMENT, "example: %s: no device %u", name, (unsigned)device);
    }
    if (input_count != arity || output_count != 1 || (arity > 0 && inputs == NULL) ||
        outputs == NULL) {
        return status(SR_INVALID_ARGUMENT,
                      "example: %s takes %u input(s) and 1 output, got %llu and %llu", name,
                      (unsigned)arity, (unsigned long long)input_count,
                      (unsigned long long)output_count);
    }
    const SrTensorDesc *y = &outputs[0];
    const SrTensorDesc *a = arity > 0 ? &inputs[0] : NULL;
    const SrTensorDesc *b = arity > 1 ? &inputs[1] : NULL;

    /* The pair's dtype is the first input's (fill: the output's). */
    const SrTensorDesc *first = a != NULL ? a : y;
    if (first->struct_size >= sizeof(SrTensorDesc) && first->dtype != SR_DTYPE_F32) {
        return status(SR_UNSUPPORTED, "example: %s is implemented for f32 only (dtype id %u)",
                      name, (unsigned)first->dtype);
    }
    SrStatus *s = check_view(y, 4, "output");
    if (s == NULL && a != NULL) s = check_view(a, 4, "input 0");
    if (s == NULL && b != NULL) s = check_view(b, 4, "input 1");
    if (s == NULL) s = check_no_overlap(y);
    if (s != NULL) {
        return s;
    }
    if (y->dtype != SR_DTYPE_F32 || (b != NULL && b->dtype != SR_DTYPE_F32)) {
        return status(SR_INVALID_ARGUMENT, "example: %s: every operand must be f32", name);
    }
    if ((a != NULL && !same_shape(a, y)) || (b != NULL && !same_shape(b, y))) {
        return status(SR_INVALID_ARGUMENT,
                      "example: %s: inputs must arrive broadcast to the output's shape", name);
    }
    float value = 0.0f;
    if (kernel == K_FILL) {
        const SrFillParams *p = params;
        if (p == NULL || p->struct_size < sizeof(SrFillParams)) {
            return status(SR_INVALID_ARGUMENT, "example: fill needs SrFillParams");
        }
        /* Rounded to nearest, out-of-range values to +-inf, as IEEE 754
         * (C99 Annex F) converts double to float. */
        value = (float)p->value;
    }
    walk(kernel, y, a, b, value);
    return NULL;
}

/* ---------------------------------------------------------------------------
 * The two entry points.
 */

static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Cheap and without side effects: no allocation, no device set-up. */
void sunrise_backend_probe_v1(SrProbeInfo *info) {
    if (info == NULL || info->struct_size < sizeof(SrProbeInfo)) {
        return;
    }
    info->abi_major = SR_ABI_MAJOR;
    info->abi_minor = 0; /* this plugin implements ABI 1.0: no set_option */
    info->usable = 1;
    info->score = 1; /* below the built-in CPU's 10: `auto` keeps the CPU */
    copy_str(info->name, sizeof info->name, "example");
}

SrStatus *sunrise_backend_init_v1(const SrHostApi *host, SrPluginApi *plugin) {
    /* The 1.0 tables end at `log` (host) and `execute` (plugin). */
    size_t host_1_0 = offsetof(SrHostApi, log) + sizeof(host->log);
    size_t plugin_1_0 = offsetof(SrPluginApi, execute) + sizeof(plugin->execute);
    if (host == NULL || plugin == NULL) {
        return status(SR_INVALID_ARGUMENT, "example: null host or plugin table");
    }
    if (host->struct_size < host_1_0 || host->abi_major != SR_ABI_MAJOR ||
        plugin->struct_size < plugin_1_0) {
        return status(SR_ABI_MISMATCH, "example: needs ABI 1 tables (host speaks %u.%u)",
                      (unsigned)host->abi_major, (unsigned)host->abi_minor);
    }
    SrBackend *b = malloc(sizeof(SrBackend));
    if (b == NULL) {
        return status(SR_OUT_OF_MEMORY, "example: out of memory");
    }
    static const uint32_t ops[EXAMPLE_PAIRS] = {
        SR_OP_NEG, SR_OP_RELU, SR_OP_ADD, SR_OP_SUB, SR_OP_MUL, SR_OP_FILL, SR_OP_COPY,
    };
    for (int i = 0; i < EXAMPLE_PAIRS; i++) {
        b->ops[i].op = ops[i];
        b->ops[i].dtype = SR_DTYPE_F32;
    }
    b->host = host;
    b->attributes[0].key = "lang";
    b->attributes[0].value = "C99";
    b->attributes[1].key = "example.ops";
    b->attributes[1].value = "fill copy neg relu add sub mul (f32)";

    /* Fill the 1.0 part of the table: fields a later minor appends
     * (set_option, 1.1) stay as the host left them, and struct_size says so. */
    memset(plugin, 0, plugin_1_0);
    plugin->struct_size = plugin_1_0;
    plugin->abi_major = SR_ABI_MAJOR;
    plugin->abi_minor = 0;
    plugin->backend = b;
    plugin->destroy = destroy;
    plugin->device_count = device_count;
    plugin->device_props = device_props;
    plugin->supported_ops = supported_ops;
    plugin->buffer_alloc = buffer_alloc;
    plugin->buffer_free = buffer_free;
    plugin->buffer_write = buffer_write;
    plugin->buffer_read = buffer_read;
    plugin->synchronize = synchronize;
    plugin->execute = execute;

#ifdef SUNRISE_EXAMPLE_WRONG_ADD
    log_line(b, SR_LOG_WARN, "example backend ready, built with a WRONG add kernel");
#else
    log_line(b, SR_LOG_INFO, "example backend ready: 1 device, 7 f32 ops");
#endif
    return NULL;
}
