//! The core's one error type. Every misuse of the API (shapes, dtypes,
//! axes, indices, devices) is a typed variant; nothing panics.

use sunrise_backend_api::{BackendError, DType};

/// Everything that can go wrong in `sunrise`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shapes that an op cannot combine.
    #[error("{op}: shape mismatch: {detail}")]
    ShapeMismatch {
        /// The op.
        op: &'static str,
        /// What did not fit.
        detail: String,
    },
    /// Shapes that do not broadcast together.
    #[error("{op}: cannot broadcast shapes {lhs:?} and {rhs:?}")]
    Broadcast {
        /// The op.
        op: &'static str,
        /// One shape.
        lhs: Vec<usize>,
        /// The other.
        rhs: Vec<usize>,
    },
    /// A tensor of the wrong dtype.
    #[error("{op}: expected dtype {expected}, got {got}")]
    DType {
        /// The op.
        op: &'static str,
        /// What the op accepts.
        expected: String,
        /// What it got.
        got: DType,
    },
    /// An axis outside `-rank..rank`.
    #[error("{op}: axis {axis} is out of range for a tensor of rank {rank}")]
    AxisOutOfRange {
        /// The op.
        op: &'static str,
        /// The axis given.
        axis: isize,
        /// The tensor's rank.
        rank: usize,
    },
    /// An index or range outside a dimension.
    #[error("{op}: index {index} is out of range for a dimension of size {size}")]
    IndexOutOfRange {
        /// The op.
        op: &'static str,
        /// The index given.
        index: i64,
        /// The dimension's extent.
        size: usize,
    },
    /// Rank above the ABI's maximum.
    #[error("{op}: rank {rank} exceeds the maximum rank 8")]
    RankTooLarge {
        /// The op.
        op: &'static str,
        /// The rank asked for.
        rank: usize,
    },
    /// Host data whose length does not fill the shape.
    #[error("{op}: {len} values do not fill shape {shape:?} ({numel} elements)")]
    DataLength {
        /// The op.
        op: &'static str,
        /// Values given.
        len: usize,
        /// Target shape.
        shape: Vec<usize>,
        /// Elements the shape holds.
        numel: usize,
    },
    /// Any other invalid argument (params, options).
    #[error("{op}: {detail}")]
    InvalidArgument {
        /// The op.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Tensors on different devices given to one op.
    #[error("{op}: tensors are on different devices ({a} and {b}); move one with .to(&device)")]
    DeviceMismatch {
        /// The op.
        op: &'static str,
        /// One device.
        a: String,
        /// The other.
        b: String,
    },
    /// A device that cannot be used, with why.
    #[error("device {requested:?} is unavailable: {reason}{}", hint.as_ref().map(|h| format!("; hint: {h}")).unwrap_or_default())]
    DeviceUnavailable {
        /// What was asked for (`cuda`, `cuda:1`, ...).
        requested: String,
        /// Why it cannot be used.
        reason: String,
        /// What the user can do.
        hint: Option<String>,
    },
    /// A backend reported an error.
    #[error("{op} on {backend}: {source}")]
    Backend {
        /// The backend's name.
        backend: String,
        /// The op or call.
        op: String,
        /// The backend's report.
        #[source]
        source: Box<BackendError>,
    },
    /// A data file or data set problem (names the file and line).
    #[error(transparent)]
    Data(#[from] Box<crate::data::DataError>),
    /// A checkpoint that cannot be written, read or applied.
    #[error(transparent)]
    Checkpoint(#[from] Box<crate::checkpoint::CheckpointError>),
}

impl From<crate::data::DataError> for Error {
    fn from(e: crate::data::DataError) -> Self {
        Error::Data(Box::new(e))
    }
}

impl From<crate::checkpoint::CheckpointError> for Error {
    fn from(e: crate::checkpoint::CheckpointError) -> Self {
        Error::Checkpoint(Box::new(e))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(op: &'static str, detail: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            detail: detail.into(),
        }
    }

    pub(crate) fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::ShapeMismatch {
            op,
            detail: detail.into(),
        }
    }

    pub(crate) fn backend(backend: &str, op: impl Into<String>, source: BackendError) -> Self {
        Error::Backend {
            backend: backend.to_string(),
            op: op.into(),
            source: Box::new(source),
        }
    }
}
