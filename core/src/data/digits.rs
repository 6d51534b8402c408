//! The 8x8 handwritten digits set, embedded in the library as the default
//! data set.

use std::path::Path;

use super::csv::{self, CsvOptions, Header, LabelColumn};
use super::{DataError, Dataset};

/// The data file: 1797 rows of 64 pixel values (0..16) and the label
/// (0..9).
pub const DIGITS_CSV: &str = include_str!("../../data/digits/digits.csv");

/// The data set's own description (from scikit-learn's `digits.rst`).
pub const DIGITS_DESCRIPTION: &str = include_str!("../../data/digits/digits.rst");

/// Where the digits come from and under which licence; show it wherever the
/// data is shipped or reported.
pub const DIGITS_ATTRIBUTION: &str = "Optical Recognition of Handwritten Digits \
(E. Alpaydin, C. Kaynak, 1998), test set, UCI Machine Learning Repository, \
licensed CC BY 4.0, as redistributed in scikit-learn 1.9.1 \
(sklearn/datasets/data/digits.csv.gz, BSD-3-Clause).";

/// The embedded digits: 1797 samples, features `[1, 8, 8]` with raw pixel
/// values 0..16 (divide by 16 for `[0, 1]`), labels 0..9 (`num_classes`
/// 10). Parsed on every call (a few milliseconds).
pub fn digits() -> Result<Dataset, DataError> {
    let opts = CsvOptions {
        label_column: LabelColumn::Last,
        feature_shape: Some(vec![1, 8, 8]),
        header: Header::Absent,
        delimiter: ',',
        num_classes: Some(10),
    };
    csv::parse(DIGITS_CSV, Path::new("<embedded digits.csv>"), &opts)
}
