//! Numeric CSV: one sample per line, every field a number, one of them (the
//! first or the last) the integer label. An optional header line is
//! detected (or declared); blank lines are skipped; `\r\n` endings, a UTF-8
//! byte-order mark, spaces around fields and double quotes around a field
//! are accepted. Errors name the file, line and column.

use std::path::Path;

use super::dataset::Origin;
use super::{DataError, Dataset, FormatKind, Location};

/// Which column holds the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelColumn {
    /// The first field of each row.
    First,
    /// The last field of each row.
    Last,
}

/// Whether the first non-blank line is a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A header when none of its fields is a number.
    Auto,
    /// Always a header (skipped; it sets the expected field count).
    Present,
    /// Never a header: the first line is data.
    Absent,
}

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Where the label is.
    pub label_column: LabelColumn,
    /// The shape of one sample's features; `None` means `[fields - 1]`.
    pub feature_shape: Option<Vec<usize>>,
    /// Header handling.
    pub header: Header,
    /// The field separator (`,` by default).
    pub delimiter: char,
    /// When set, a label at or above it is an error.
    pub num_classes: Option<usize>,
}

impl CsvOptions {
    /// Comma-separated, header detected, flat features, no class limit.
    pub fn new(label_column: LabelColumn) -> CsvOptions {
        CsvOptions {
            label_column,
            feature_shape: None,
            header: Header::Auto,
            delimiter: ',',
            num_classes: None,
        }
    }
}

/// Reads `path` with the label in `label_column` and each sample's features
/// shaped `feature_shape` (`None`: flat). See [`read_with`] for more options.
pub fn read(
    path: impl AsRef<Path>,
    label_column: LabelColumn,
    feature_shape: Option<Vec<usize>>,
) -> Result<Dataset, DataError> {
    let mut opts = CsvOptions::new(label_column);
    opts.feature_shape = feature_shape;
    read_with(path, &opts)
}

/// Reads `path` as numeric CSV with `opts`.
pub fn read_with(path: impl AsRef<Path>, opts: &CsvOptions) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        DataError::format(
            path,
            Location::Line(line),
            FormatKind::Encoding,
            "the file is not UTF-8 text",
        )
    })?;
    parse(text, path, opts)
}

/// Parses CSV `text`; `name` is the file name used in errors.
pub fn parse(text: &str, name: &Path, opts: &CsvOptions) -> Result<Dataset, DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Rows::new(name, opts);
    let mut fields: Vec<&str> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        fields.clear();
        fields.extend(line.split(opts.delimiter).map(clean));
        rows.push(i + 1, &fields)?;
    }
    rows.finish()
}

/// Trims spaces and one pair of surrounding double quotes.
fn clean(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|g| g.strip_suffix('"'))
        .map_or(f, str::trim)
}

/// The rows read so far.
struct Rows<'a> {
    name: &'a Path,
    opts: &'a CsvOptions,
    width: Option<usize>,
    seen_first: bool,
    feature_shape: Vec<usize>,
    features: Vec<f32>,
    labels: Vec<i64>,
    lines: Vec<Location>,
}

impl<'a> Rows<'a> {
    fn new(name: &'a Path, opts: &'a CsvOptions) -> Rows<'a> {
        Rows {
            name,
            opts,
            width: None,
            seen_first: false,
            feature_shape: Vec::new(),
            features: Vec::new(),
            labels: Vec::new(),
            lines: Vec::new(),
        }
    }

    fn err(&self, location: Location, kind: FormatKind, detail: String) -> DataError {
        DataError::format(self.name, location, kind, detail)
    }

    fn push(&mut self, line: usize, fields: &[&str]) -> Result<(), DataError> {
        if !self.seen_first {
            self.seen_first = true;
            if self.is_header(fields) {
                self.width = Some(fields.len());
                return Ok(());
            }
        }
        match self.width {
            Some(w) if w != fields.len() => {
                return Err(self.err(
                    Location::Line(line),
                    FormatKind::Ragged,
                    format!("{} fields, but earlier rows have {w}", fields.len()),
                ))
            }
            Some(_) => {}
            None => self.width = Some(fields.len()),
        }
        if self.labels.is_empty() {
            self.set_shape(line, fields.len())?;
        }
        let (label_col, feats) = match self.opts.label_column {
            LabelColumn::First => (1, &fields[1..]),
            LabelColumn::Last => (fields.len(), &fields[..fields.len() - 1]),
        };
        let first_feat_col = if label_col == 1 { 2 } else { 1 };
        for (j, f) in feats.iter().enumerate() {
            let v = f.parse::<f32>().ok().filter(|v| v.is_finite());
            let v = v.ok_or_else(|| {
                let cell = Location::Cell {
                    line,
                    column: first_feat_col + j,
                };
                self.err(
                    cell,
                    FormatKind::NotNumeric,
                    format!("{f:?} is not a finite number"),
                )
            })?;
            self.features.push(v);
        }
        let label = self.label(line, label_col, fields[label_col - 1])?;
        self.labels.push(label);
        self.lines.push(Location::Line(line));
        Ok(())
    }

    fn is_header(&self, fields: &[&str]) -> bool {
        match self.opts.header {
            Header::Present => true,
            Header::Absent => false,
            Header::Auto => fields
                .iter()
                .all(|f| !f.is_empty() && f.parse::<f64>().is_err()),
        }
    }

    /// Fixes the feature shape from the first data row's width.
    fn set_shape(&mut self, line: usize, width: usize) -> Result<(), DataError> {
        if width < 2 {
            return Err(self.err(
                Location::Line(line),
                FormatKind::Shape,
                format!("{width} field(s): a row needs a label and at least one feature"),
            ));
        }
        let n = width - 1;
        self.feature_shape = match &self.opts.feature_shape {
            None => vec![n],
            Some(s) if !s.is_empty() && s.iter().product::<usize>() == n => s.clone(),
            Some(s) => {
                return Err(self.err(
                    Location::Line(line),
                    FormatKind::Shape,
                    format!("{n} feature values per row do not fill feature shape {s:?}"),
                ))
            }
        };
        Ok(())
    }

    /// A label: an integer (or an integral float such as `3.0`), not
    /// negative, below `num_classes` when set.
    fn label(&self, line: usize, column: usize, f: &str) -> Result<i64, DataError> {
        let cell = Location::Cell { line, column };
        let v = f.parse::<i64>().ok().or_else(|| {
            let x = f.parse::<f64>().ok()?;
            let integral = x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15;
            integral.then_some(x as i64)
        });
        let v = v.ok_or_else(|| {
            self.err(
                cell,
                FormatKind::BadLabel,
                format!("label {f:?} is not an integer"),
            )
        })?;
        if v < 0 {
            return Err(self.err(cell, FormatKind::BadLabel, format!("label {v} is negative")));
        }
        match self.opts.num_classes {
            Some(k) if v as u64 >= k as u64 => Err(DataError::LabelOutOfRange {
                path: self.name.to_path_buf(),
                location: cell,
                label: v,
                num_classes: k,
            }),
            _ => Ok(v),
        }
    }

    fn finish(self) -> Result<Dataset, DataError> {
        if self.labels.is_empty() {
            return Err(self.err(
                Location::Line(1),
                FormatKind::Empty,
                "no data rows".to_string(),
            ));
        }
        let origin = Origin {
            path: self.name.to_path_buf(),
            locations: self.lines,
        };
        let ds = Dataset::from_parts(self.features, self.feature_shape, self.labels, Some(origin));
        match self.opts.num_classes {
            Some(k) => ds.with_num_classes(k),
            None => Ok(ds),
        }
    }
}
