//! Data sets for training: an in-memory [`Dataset`] (f32 features, i64
//! labels, on the host), a [`DataLoader`] that shuffles with a seed and
//! batches into tensors on any [`crate::Device`], readers for MNIST-format
//! IDX files ([`idx`]) and numeric CSV ([`csv`]), and the 8x8 handwritten
//! digits set embedded in the library ([`digits()`]).
//!
//! Every reader error is a [`DataError`] naming the file and where in it
//! (line and column for CSV, record and byte offset for IDX).

pub mod csv;
mod dataset;
mod digits;
pub mod idx;
mod loader;

use std::fmt;
use std::path::PathBuf;

pub use dataset::{Dataset, Holdout, Normalization};
pub use digits::{digits, DIGITS_ATTRIBUTION, DIGITS_CSV, DIGITS_DESCRIPTION};
pub use loader::{Batches, DataLoader};

/// Where in a file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A line of a text file (1-based).
    Line(usize),
    /// A field of a text file: line and column (both 1-based; the column
    /// counts delimited fields, not characters).
    Cell {
        /// The line.
        line: usize,
        /// The field.
        column: usize,
    },
    /// A record of a binary file (0-based) and the byte offset it starts at.
    Record {
        /// The record's index.
        index: usize,
        /// Its byte offset in the file.
        byte: u64,
    },
    /// A byte offset in a binary file.
    Byte(u64),
    /// A sample of an in-memory data set (0-based).
    Row(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(l) => write!(f, "line {l}"),
            Location::Cell { line, column } => write!(f, "line {line}, column {column}"),
            Location::Record { index, byte } => write!(f, "record {index} (byte offset {byte})"),
            Location::Byte(b) => write!(f, "byte offset {b}"),
            Location::Row(r) => write!(f, "row {r}"),
        }
    }
}

/// What kind of malformed input a [`DataError::Format`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatKind {
    /// An IDX file whose magic number is not the one expected.
    BadMagic,
    /// A file that ends before its header says it should.
    Truncated,
    /// Bytes after the last record an IDX header announces.
    TrailingBytes,
    /// An IDX header with impossible dimensions.
    BadHeader,
    /// A gzip-compressed file (gunzip it first).
    Compressed,
    /// A CSV row with a different number of fields than the first row.
    Ragged,
    /// A CSV field that is not a finite number.
    NotNumeric,
    /// A label that is not a non-negative integer.
    BadLabel,
    /// A file with no samples.
    Empty,
    /// A text file that is not UTF-8.
    Encoding,
    /// A row whose feature count does not fit the requested feature shape.
    Shape,
}

/// A data file that cannot be used, or a data-set operation that makes no
/// sense. Every file error names the file and the place in it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file's contents are malformed.
    #[error("{}: {location}: {detail}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Where in it.
        location: Location,
        /// What kind of problem.
        kind: FormatKind,
        /// What is wrong, in words.
        detail: String,
    },
    /// A label outside `0..num_classes`.
    #[error(
        "{}: {location}: label {label} is out of range for {num_classes} classes (expected 0..={})",
        path.display(),
        num_classes.saturating_sub(1)
    )]
    LabelOutOfRange {
        /// The file (or `<in-memory data set>`).
        path: PathBuf,
        /// Where the label is.
        location: Location,
        /// The label.
        label: i64,
        /// The number of classes expected.
        num_classes: usize,
    },
    /// An images file and a labels file that hold different numbers of
    /// samples.
    #[error(
        "{} holds {images} images but {} holds {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// The labels file.
        labels_path: PathBuf,
        /// Images in it.
        images: usize,
        /// Labels in it.
        labels: usize,
    },
    /// An invalid argument to a data-set operation (a split fraction, a
    /// batch size, an index, a shape).
    #[error("{op}: {detail}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl DataError {
    pub(crate) fn invalid(op: &'static str, detail: impl Into<String>) -> Self {
        DataError::Invalid {
            op,
            detail: detail.into(),
        }
    }

    pub(crate) fn format(
        path: &std::path::Path,
        location: Location,
        kind: FormatKind,
        detail: impl Into<String>,
    ) -> Self {
        DataError::Format {
            path: path.to_path_buf(),
            location,
            kind,
            detail: detail.into(),
        }
    }

    /// The location the error points at, if it points into a file.
    pub fn location(&self) -> Option<Location> {
        match self {
            DataError::Format { location, .. } | DataError::LabelOutOfRange { location, .. } => {
                Some(*location)
            }
            _ => None,
        }
    }
}
