//! MNIST-format IDX files: an images file (magic `0x00000803`: unsigned
//! bytes, 3 dimensions `[N, rows, cols]`) and a labels file (magic
//! `0x00000801`: unsigned bytes, `[N]`), all header integers big-endian.
//! The same format carries Fashion-MNIST, KMNIST and EMNIST.
//!
//! Pixels become f32 with their raw values (0..255): normalising is the
//! caller's choice (see [`super::Normalization`]). Features are shaped
//! `[N, 1, rows, cols]` (one channel), ready for a convolution. Files must
//! be uncompressed: a gzip file is an error saying to gunzip it first.

use std::path::Path;

use super::dataset::Origin;
use super::{DataError, Dataset, FormatKind, Location};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads an images file and its labels file into a data set.
pub fn read(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Dataset, DataError> {
    read_with(images, labels, None)
}

/// As [`read`]; with `num_classes` set, a label at or above it is an error
/// naming the labels file and the record.
pub fn read_with(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    num_classes: Option<usize>,
) -> Result<Dataset, DataError> {
    let (images, labels_path) = (images.as_ref(), labels.as_ref());
    let (pixels, rows, cols) = read_images(images)?;
    let labels = read_labels(labels_path)?;
    let n = labels.len();
    let per = rows * cols;
    if pixels.len() != n * per {
        return Err(DataError::CountMismatch {
            images_path: images.to_path_buf(),
            labels_path: labels_path.to_path_buf(),
            images: pixels.len() / per,
            labels: n,
        });
    }
    let origin = Origin {
        path: labels_path.to_path_buf(),
        locations: (0..n)
            .map(|i| Location::Record {
                index: i,
                byte: 8 + i as u64,
            })
            .collect(),
    };
    let features = pixels.iter().map(|&p| p as f32).collect();
    let labels = labels.iter().map(|&l| l as i64).collect();
    let ds = Dataset::from_parts(features, vec![1, rows, cols], labels, Some(origin));
    match num_classes {
        Some(k) => ds.with_num_classes(k),
        None => Ok(ds),
    }
}

/// Reads an images file: the pixels (row-major, `N * rows * cols` bytes),
/// `rows` and `cols`.
pub fn read_images(path: impl AsRef<Path>) -> Result<(Vec<u8>, usize, usize), DataError> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    let dims = header(path, &bytes, IMAGES_MAGIC, 3)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DataError::format(
            path,
            Location::Byte(8),
            FormatKind::BadHeader,
            format!("images of {rows}x{cols} pixels hold nothing"),
        ));
    }
    let data = body(path, &bytes, 16, n, rows * cols)?;
    Ok((data.to_vec(), rows, cols))
}

/// Reads a labels file: one byte per sample.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    let dims = header(path, &bytes, LABELS_MAGIC, 1)?;
    Ok(body(path, &bytes, 8, dims[0], 1)?.to_vec())
}

fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks the magic and returns the `ndims` dimensions that follow it.
fn header(path: &Path, b: &[u8], magic: u32, ndims: usize) -> Result<Vec<usize>, DataError> {
    if b.starts_with(&[0x1f, 0x8b]) {
        return Err(DataError::format(
            path,
            Location::Byte(0),
            FormatKind::Compressed,
            "the file is gzip-compressed; gunzip it first (IDX files are read uncompressed)",
        ));
    }
    if b.len() < 4 {
        return Err(DataError::format(
            path,
            Location::Byte(b.len() as u64),
            FormatKind::Truncated,
            "the file ends inside its 4-byte magic number",
        ));
    }
    let found = be_u32(b, 0);
    if found != magic {
        let hint = match found {
            IMAGES_MAGIC => " (this is an images file; are the paths swapped?)",
            LABELS_MAGIC => " (this is a labels file; are the paths swapped?)",
            _ => "",
        };
        return Err(DataError::format(
            path,
            Location::Byte(0),
            FormatKind::BadMagic,
            format!("magic number 0x{found:08x}, expected 0x{magic:08x}{hint}"),
        ));
    }
    let need = 4 + 4 * ndims;
    if b.len() < need {
        return Err(DataError::format(
            path,
            Location::Byte(b.len() as u64),
            FormatKind::Truncated,
            format!("the file ends inside its {need}-byte header"),
        ));
    }
    Ok((0..ndims).map(|i| be_u32(b, 4 + 4 * i) as usize).collect())
}

/// The `n` records of `size` bytes after the header; the file must hold
/// exactly those.
fn body<'b>(
    path: &Path,
    b: &'b [u8],
    start: usize,
    n: usize,
    size: usize,
) -> Result<&'b [u8], DataError> {
    let have = b.len() - start;
    let want = n
        .checked_mul(size)
        .filter(|w| w.checked_add(start).is_some());
    let Some(want) = want else {
        return Err(DataError::format(
            path,
            Location::Byte(4),
            FormatKind::BadHeader,
            format!("{n} records of {size} bytes is too large"),
        ));
    };
    if have < want {
        let index = have / size;
        return Err(DataError::format(
            path,
            Location::Record {
                index,
                byte: (start + index * size) as u64,
            },
            FormatKind::Truncated,
            format!(
                "the header announces {n} records of {size} byte(s) but the file ends at byte {}",
                b.len()
            ),
        ));
    }
    if have > want {
        return Err(DataError::format(
            path,
            Location::Byte((start + want) as u64),
            FormatKind::TrailingBytes,
            format!(
                "{} byte(s) after the {n} records the header announces",
                have - want
            ),
        ));
    }
    Ok(&b[start..])
}
