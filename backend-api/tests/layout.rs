//! Golden test of ABI v1: the size, alignment and the offset and size of every
//! field of every `#[repr(C)]` struct that crosses the ABI, and the numeric
//! value of every id, against literal numbers (LP64: x86-64 and aarch64).
//!
//! A failure here means the ABI changed. If that was intended, it is a new
//! major version (`_v2` entry points), or, for a field appended at the end of
//! a table, a new minor version: update the numbers and the header
//! (`SUNRISE_BLESS=1 cargo test -p sunrise-backend-api --test header`).
//! Never edit a number here to make an accidental change pass.
//!
//! Each struct's field list is also matched by an exhaustive pattern, so a
//! field added or removed without updating this file fails to compile.
#![cfg(target_pointer_width = "64")]

use std::mem::{align_of, offset_of, size_of};

use sunrise_backend_api::abi::*;
use sunrise_backend_api::ops::*;
use sunrise_backend_api::{DType, OpId, StatusCode};

/// Size of the field that `get` projects, without needing a value.
fn field_size<T, F>(_get: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Checks size and alignment of `$t` and the offset and size of each field;
/// `$field: $off + $len` reads "at byte `$off`, `$len` bytes long".
macro_rules! pin_layout {
    ($t:ident, size $size:literal, align $align:literal,
     { $($field:ident: $off:literal + $len:literal),+ $(,)? }) => {{
        assert_eq!(size_of::<$t>(), $size, concat!("size_of::<", stringify!($t), ">()"));
        assert_eq!(align_of::<$t>(), $align, concat!("align_of::<", stringify!($t), ">()"));
        $(
            assert_eq!(
                offset_of!($t, $field),
                $off,
                concat!("offset of ", stringify!($t), ".", stringify!($field))
            );
            assert_eq!(
                field_size(|v: &$t| &v.$field),
                $len,
                concat!("size of ", stringify!($t), ".", stringify!($field))
            );
        )+
        // Exhaustive: a field added or removed is a compile error here.
        let _exhaustive = |v: &$t| {
            let $t { $($field: _),+ } = v;
        };
    }};
}

#[test]
fn status_layout() {
    pin_layout!(SrStatus, size 56, align 8, {
        struct_size: 0 + 8,
        ext: 8 + 8,
        code: 16 + 4,
        reserved: 20 + 4,
        message: 24 + 8,
        component: 32 + 8,
        hint: 40 + 8,
        release: 48 + 8,
    });
}

#[test]
fn tensor_desc_layout() {
    pin_layout!(SrTensorDesc, size 160, align 8, {
        struct_size: 0 + 8,
        dtype: 8 + 4,
        rank: 12 + 4,
        shape: 16 + 64,
        strides: 80 + 64,
        buffer: 144 + 8,
        byte_offset: 152 + 8,
    });
}

#[test]
fn op_support_and_attribute_layout() {
    pin_layout!(SrOpSupport, size 8, align 4, {
        op: 0 + 4,
        dtype: 4 + 4,
    });
    pin_layout!(SrAttribute, size 16, align 8, {
        key: 0 + 8,
        value: 8 + 8,
    });
}

#[test]
fn device_props_layout() {
    pin_layout!(SrDeviceProps, size 88, align 8, {
        struct_size: 0 + 8,
        ext: 8 + 8,
        kind: 16 + 4,
        reserved: 20 + 4,
        name: 24 + 8,
        total_memory: 32 + 8,
        free_memory: 40 + 8,
        compute_major: 48 + 4,
        compute_minor: 52 + 4,
        driver_version: 56 + 8,
        library_versions: 64 + 8,
        attribute_count: 72 + 8,
        attributes: 80 + 8,
    });
}

#[test]
fn probe_info_layout() {
    pin_layout!(SrProbeInfo, size 512, align 8, {
        struct_size: 0 + 8,
        ext: 8 + 8,
        abi_major: 16 + 4,
        abi_minor: 20 + 4,
        usable: 24 + 4,
        score: 28 + 4,
        name: 32 + 32,
        reason: 64 + 256,
        component: 320 + 64,
        hint: 384 + 128,
    });
}

#[test]
fn host_api_layout() {
    pin_layout!(SrHostApi, size 40, align 8, {
        struct_size: 0 + 8,
        ext: 8 + 8,
        abi_major: 16 + 4,
        abi_minor: 20 + 4,
        user_data: 24 + 8,
        log: 32 + 8,
    });
}

#[test]
fn plugin_api_layout() {
    pin_layout!(SrPluginApi, size 120, align 8, {
        struct_size: 0 + 8,
        ext: 8 + 8,
        abi_major: 16 + 4,
        abi_minor: 20 + 4,
        backend: 24 + 8,
        destroy: 32 + 8,
        device_count: 40 + 8,
        device_props: 48 + 8,
        supported_ops: 56 + 8,
        buffer_alloc: 64 + 8,
        buffer_free: 72 + 8,
        buffer_write: 80 + 8,
        buffer_read: 88 + 8,
        synchronize: 96 + 8,
        execute: 104 + 8,
        // ABI 1.1 appended:
        set_option: 112 + 8,
    });
}

#[test]
fn opaque_handles_are_zero_sized() {
    assert_eq!(size_of::<SrBuffer>(), 0);
    assert_eq!(size_of::<SrBackend>(), 0);
    assert_eq!(size_of::<SrStatusPtr>(), 8);
    assert_eq!(size_of::<SrProbeFnV1>(), 8);
    assert_eq!(size_of::<SrInitFnV1>(), 8);
    // A null entry of a table is a null function pointer.
    assert_eq!(size_of::<Option<SrProbeFnV1>>(), 8);
}

#[test]
fn small_params_layout() {
    pin_layout!(UnaryBackwardParams, size 16, align 8, {
        struct_size: 0 + 8,
        op: 8 + 4,
        reserved: 12 + 4,
    });
    pin_layout!(FillParams, size 16, align 8, {
        struct_size: 0 + 8,
        value: 8 + 8,
    });
    pin_layout!(AxisParams, size 16, align 8, {
        struct_size: 0 + 8,
        axis: 8 + 4,
        reserved: 12 + 4,
    });
    pin_layout!(ReduceParams, size 16, align 8, {
        struct_size: 0 + 8,
        axes_mask: 8 + 8,
    });
    pin_layout!(MatmulParams, size 24, align 8, {
        struct_size: 0 + 8,
        alpha: 8 + 8,
        beta: 16 + 8,
    });
    pin_layout!(CrossEntropyParams, size 16, align 8, {
        struct_size: 0 + 8,
        ignore_index: 8 + 8,
    });
    // ABI 1.2 appended:
    pin_layout!(AdamWParams, size 64, align 8, {
        struct_size: 0 + 8,
        lr: 8 + 8,
        beta1: 16 + 8,
        beta2: 24 + 8,
        eps: 32 + 8,
        weight_decay: 40 + 8,
        bias_correction1: 48 + 8,
        bias_correction2: 56 + 8,
    });
    pin_layout!(SgdParams, size 48, align 8, {
        struct_size: 0 + 8,
        lr: 8 + 8,
        momentum: 16 + 8,
        dampening: 24 + 8,
        weight_decay: 32 + 8,
        nesterov: 40 + 4,
        first_step: 44 + 4,
    });
}

#[test]
fn window_and_norm_params_layout() {
    pin_layout!(Conv2dParams, size 64, align 8, {
        struct_size: 0 + 8,
        stride: 8 + 16,
        padding: 24 + 16,
        dilation: 40 + 16,
        groups: 56 + 8,
    });
    pin_layout!(Pool2dParams, size 64, align 8, {
        struct_size: 0 + 8,
        kernel: 8 + 16,
        stride: 24 + 16,
        padding: 40 + 16,
        count_include_pad: 56 + 4,
        reserved: 60 + 4,
    });
    pin_layout!(NormParams, size 24, align 8, {
        struct_size: 0 + 8,
        eps: 8 + 8,
        axis: 16 + 4,
        training: 20 + 4,
    });
}

/// `(op, id, name, params struct size, inputs (None: variable), outputs)`.
type OpRow = (OpId, u32, &'static str, usize, Option<usize>, Option<usize>);

/// Op set v1, as released. Append new ops at the end; never change a row.
const OP_SET_V1: [OpRow; 60] = [
    (OpId::Neg, 1, "neg", 0, Some(1), Some(1)),
    (OpId::Abs, 2, "abs", 0, Some(1), Some(1)),
    (OpId::Exp, 3, "exp", 0, Some(1), Some(1)),
    (OpId::Log, 4, "log", 0, Some(1), Some(1)),
    (OpId::Sqrt, 5, "sqrt", 0, Some(1), Some(1)),
    (OpId::Rsqrt, 6, "rsqrt", 0, Some(1), Some(1)),
    (OpId::Relu, 7, "relu", 0, Some(1), Some(1)),
    (OpId::GeluErf, 8, "gelu_erf", 0, Some(1), Some(1)),
    (OpId::GeluTanh, 9, "gelu_tanh", 0, Some(1), Some(1)),
    (OpId::Sigmoid, 10, "sigmoid", 0, Some(1), Some(1)),
    (OpId::Tanh, 11, "tanh", 0, Some(1), Some(1)),
    (OpId::Silu, 12, "silu", 0, Some(1), Some(1)),
    (
        OpId::UnaryBackward,
        13,
        "unary_backward",
        16,
        Some(2),
        Some(1),
    ),
    (OpId::Add, 14, "add", 0, Some(2), Some(1)),
    (OpId::Sub, 15, "sub", 0, Some(2), Some(1)),
    (OpId::Mul, 16, "mul", 0, Some(2), Some(1)),
    (OpId::Div, 17, "div", 0, Some(2), Some(1)),
    (OpId::Pow, 18, "pow", 0, Some(2), Some(1)),
    (OpId::Maximum, 19, "maximum", 0, Some(2), Some(1)),
    (OpId::Minimum, 20, "minimum", 0, Some(2), Some(1)),
    (OpId::Eq, 21, "eq", 0, Some(2), Some(1)),
    (OpId::Ne, 22, "ne", 0, Some(2), Some(1)),
    (OpId::Lt, 23, "lt", 0, Some(2), Some(1)),
    (OpId::Le, 24, "le", 0, Some(2), Some(1)),
    (OpId::Gt, 25, "gt", 0, Some(2), Some(1)),
    (OpId::Ge, 26, "ge", 0, Some(2), Some(1)),
    (OpId::Where, 27, "where", 0, Some(3), Some(1)),
    (OpId::Fill, 28, "fill", 16, Some(0), Some(1)),
    (OpId::Copy, 29, "copy", 0, Some(1), Some(1)),
    (OpId::Cast, 30, "cast", 0, Some(1), Some(1)),
    (OpId::Concat, 31, "concat", 16, None, Some(1)),
    (OpId::Sum, 32, "sum", 16, Some(1), Some(1)),
    (OpId::Mean, 33, "mean", 16, Some(1), Some(1)),
    (OpId::Max, 34, "max", 16, Some(1), Some(1)),
    (OpId::Min, 35, "min", 16, Some(1), Some(1)),
    (OpId::Argmax, 36, "argmax", 16, Some(1), Some(1)),
    (OpId::Matmul, 37, "matmul", 24, Some(2), Some(1)),
    (OpId::Conv2d, 38, "conv2d", 64, None, Some(1)),
    (
        OpId::Conv2dBackwardData,
        39,
        "conv2d_backward_data",
        64,
        Some(2),
        Some(1),
    ),
    (
        OpId::Conv2dBackwardFilter,
        40,
        "conv2d_backward_filter",
        64,
        Some(2),
        Some(1),
    ),
    (OpId::MaxPool2d, 41, "max_pool2d", 64, Some(1), Some(1)),
    (
        OpId::MaxPool2dBackward,
        42,
        "max_pool2d_backward",
        64,
        Some(2),
        Some(1),
    ),
    (OpId::AvgPool2d, 43, "avg_pool2d", 64, Some(1), Some(1)),
    (
        OpId::AvgPool2dBackward,
        44,
        "avg_pool2d_backward",
        64,
        Some(1),
        Some(1),
    ),
    (OpId::Softmax, 45, "softmax", 16, Some(1), Some(1)),
    (
        OpId::SoftmaxBackward,
        46,
        "softmax_backward",
        16,
        Some(2),
        Some(1),
    ),
    (OpId::LogSoftmax, 47, "log_softmax", 16, Some(1), Some(1)),
    (
        OpId::LogSoftmaxBackward,
        48,
        "log_softmax_backward",
        16,
        Some(2),
        Some(1),
    ),
    (OpId::LayerNorm, 49, "layer_norm", 24, Some(3), Some(3)),
    (
        OpId::LayerNormBackward,
        50,
        "layer_norm_backward",
        24,
        Some(5),
        Some(3),
    ),
    (OpId::BatchNorm, 51, "batch_norm", 24, None, Some(3)),
    (
        OpId::BatchNormBackward,
        52,
        "batch_norm_backward",
        24,
        Some(5),
        Some(3),
    ),
    (OpId::IndexSelect, 53, "index_select", 16, Some(2), Some(1)),
    (OpId::IndexAdd, 54, "index_add", 16, Some(2), Some(1)),
    (
        OpId::CrossEntropy,
        55,
        "cross_entropy",
        16,
        Some(2),
        Some(1),
    ),
    (
        OpId::CrossEntropyBackward,
        56,
        "cross_entropy_backward",
        16,
        Some(3),
        Some(1),
    ),
    // ABI 1.2 appended:
    (OpId::AdamwStep, 57, "adamw_step", 64, Some(1), Some(3)),
    (OpId::SgdStep, 58, "sgd_step", 48, Some(1), Some(2)),
    // ABI 1.3 appended:
    (OpId::AdamwStepMulti, 59, "adamw_step_multi", 64, None, None),
    (OpId::SgdStepMulti, 60, "sgd_step_multi", 48, None, None),
];

#[test]
fn op_ids_names_params_and_arity_are_pinned() {
    assert_eq!(
        OpId::ALL.len(),
        OP_SET_V1.len(),
        "an op was added or removed: add its row to OP_SET_V1 (append-only)"
    );
    for (&(op, id, name, params, inputs, outputs), &all) in OP_SET_V1.iter().zip(OpId::ALL) {
        assert_eq!(op, all, "OpId::ALL is out of id order at {name}");
        assert_eq!(op as u32, id, "id of {name}");
        assert_eq!(OpId::from_u32(id), Some(op), "from_u32({id})");
        assert_eq!(op.name(), name, "name of op {id}");
        assert_eq!(op.params_size(), params, "params size of {name}");
        assert_eq!(op.input_count(), inputs, "input count of {name}");
        assert_eq!(op.output_count(), outputs, "output count of {name}");
    }
}

#[test]
fn dtype_ids_are_pinned() {
    assert_eq!(
        [SR_DTYPE_F32, SR_DTYPE_F64, SR_DTYPE_I64, SR_DTYPE_U8],
        [0, 1, 2, 3]
    );
    let pinned = |d: DType| -> (u32, usize, &'static str) {
        match d {
            DType::F32 => (0, 4, "f32"),
            DType::F64 => (1, 8, "f64"),
            DType::I64 => (2, 8, "i64"),
            DType::U8 => (3, 1, "u8"),
        }
    };
    for d in DType::ALL {
        let (id, size, name) = pinned(d);
        assert_eq!(d as u32, id, "id of {name}");
        assert_eq!(DType::from_u32(id), Some(d));
        assert_eq!(d.size(), size, "size of {name}");
        assert_eq!(dtype_size(id), size, "dtype_size({id})");
        assert_eq!(d.name(), name);
    }
    assert_eq!(dtype_size(4), 0, "an unknown dtype has no size");
}

#[test]
fn status_codes_are_pinned() {
    let raw = [
        SR_OK,
        SR_INVALID_ARGUMENT,
        SR_UNSUPPORTED,
        SR_OUT_OF_MEMORY,
        SR_UNAVAILABLE,
        SR_ABI_MISMATCH,
        SR_PANIC,
        SR_INTERNAL,
    ];
    assert_eq!(raw, [0, 1, 2, 3, 4, 5, 6, 7]);
    let pinned = |c: StatusCode| -> SrStatusCode {
        match c {
            StatusCode::InvalidArgument => 1,
            StatusCode::Unsupported => 2,
            StatusCode::OutOfMemory => 3,
            StatusCode::Unavailable => 4,
            StatusCode::AbiMismatch => 5,
            StatusCode::Panic => 6,
            StatusCode::Internal => 7,
        }
    };
    for c in [
        StatusCode::InvalidArgument,
        StatusCode::Unsupported,
        StatusCode::OutOfMemory,
        StatusCode::Unavailable,
        StatusCode::AbiMismatch,
        StatusCode::Panic,
        StatusCode::Internal,
    ] {
        assert_eq!(c.to_raw(), pinned(c), "{c:?}");
        assert_eq!(StatusCode::from_raw(pinned(c)), c, "{c:?}");
    }
}

#[test]
fn device_kinds_log_levels_and_versions_are_pinned() {
    assert_eq!([SR_DEVICE_CPU, SR_DEVICE_CUDA], [0, 1]);
    assert_eq!(
        [
            SR_LOG_ERROR,
            SR_LOG_WARN,
            SR_LOG_INFO,
            SR_LOG_DEBUG,
            SR_LOG_TRACE
        ],
        [1, 2, 3, 4, 5]
    );
    assert_eq!(SR_ABI_MAJOR, 1);
    assert_eq!(SR_MAX_RANK, 8);
    assert_eq!(SR_PROBE_SYMBOL_V1, b"sunrise_backend_probe_v1\0");
    assert_eq!(SR_INIT_SYMBOL_V1, b"sunrise_backend_init_v1\0");
}
