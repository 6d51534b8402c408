//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong loading or running an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Bytes that are not a valid ONNX protobuf message.
    #[error("{what}: not a valid ONNX protobuf message: {detail}")]
    Decode {
        /// What was being decoded (the file).
        what: String,
        /// The decoder's message.
        detail: String,
    },
    /// Bytes that are not a `.npy` file this crate reads.
    #[error("{what}: not a readable .npy file: {detail}")]
    Npy {
        /// The file.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// A model that decodes but breaks ONNX's rules; `at` names the graph,
    /// node or tensor and the field.
    #[error("invalid model: {at}: {detail}")]
    Invalid {
        /// Where (node, tensor, field).
        at: String,
        /// What is wrong.
        detail: String,
    },
    /// An op, attribute value or dtype this crate does not run (yet).
    #[error("unsupported: {at}: {detail}")]
    Unsupported {
        /// Where (node and op, or tensor).
        at: String,
        /// What is not supported.
        detail: String,
    },
    /// Inputs given to [`crate::Model::run`] that do not match the graph.
    #[error("input {name:?}: {detail}")]
    Input {
        /// The graph input.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The core refused an op while a node ran.
    #[error("node {node:?} ({op}): {source}")]
    Node {
        /// The node's name (or its first output when unnamed).
        node: String,
        /// Its op type.
        op: String,
        /// The core's error.
        source: sunrise::Error,
    },
    /// Any other error of the core (moving tensors, converting data).
    #[error(transparent)]
    Core(#[from] sunrise::Error),
}

impl Error {
    /// An [`Error::Invalid`].
    pub(crate) fn invalid(at: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Invalid {
            at: at.into(),
            detail: detail.into(),
        }
    }

    /// An [`Error::Unsupported`].
    pub(crate) fn unsupported(at: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Unsupported {
            at: at.into(),
            detail: detail.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
