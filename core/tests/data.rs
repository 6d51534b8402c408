//! Data sets: IDX and CSV readers (and their typed errors naming file and
//! line), the embedded digits, seeded splits, and the data loader.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sunrise::data::csv::{self, CsvOptions, Header, LabelColumn};
use sunrise::data::{
    self, idx, DataError, DataLoader, Dataset, FormatKind, Location, Normalization,
};
use sunrise::{DType, Device};

/// A fresh directory under the system temp dir for one test.
fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "sunrise-data-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(pixels);
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

fn format_kind(e: &DataError) -> (FormatKind, Location) {
    match e {
        DataError::Format { kind, location, .. } => (*kind, *location),
        other => panic!("expected a format error, got {other:?}"),
    }
}

// ----- IDX -----

#[test]
fn idx_round_trip() {
    let dir = temp_dir("idx-ok");
    let pixels: Vec<u8> = (0..3 * 2 * 3).map(|i| (i * 13) as u8).collect();
    let im = write(&dir, "images-idx3-ubyte", &idx_images(3, 2, 3, &pixels));
    let lb = write(&dir, "labels-idx1-ubyte", &idx_labels(&[7, 0, 255]));
    let ds = idx::read(&im, &lb).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.feature_shape(), &[1, 2, 3]);
    assert_eq!(ds.labels(), &[7, 0, 255]);
    assert_eq!(ds.num_classes(), 256);
    let want: Vec<f32> = pixels.iter().map(|&p| p as f32).collect();
    assert_eq!(ds.features(), &want[..]);
    assert_eq!(ds.source(), Some(lb.as_path()));
}

#[test]
fn idx_wrong_magic_names_the_file() {
    let dir = temp_dir("idx-magic");
    let im = write(&dir, "im", &idx_images(1, 1, 1, &[5]));
    let lb = write(&dir, "lb", &idx_labels(&[1]));
    // Paths swapped: the images reader sees the labels magic.
    let e = idx::read(&lb, &im).unwrap_err();
    assert_eq!(format_kind(&e), (FormatKind::BadMagic, Location::Byte(0)));
    let msg = e.to_string();
    assert!(msg.contains(&lb.display().to_string()), "{msg}");
    assert!(
        msg.contains("0x00000801") && msg.contains("0x00000803"),
        "{msg}"
    );
    assert!(msg.contains("swapped"), "{msg}");
    // Arbitrary bytes.
    let junk = write(&dir, "junk", b"hello world, not idx");
    let e = idx::read(&junk, &lb).unwrap_err();
    assert_eq!(format_kind(&e).0, FormatKind::BadMagic);
}

#[test]
fn idx_truncated_and_trailing_and_gzip() {
    let dir = temp_dir("idx-trunc");
    let lb = write(&dir, "lb", &idx_labels(&[1, 2, 3]));
    // 3 images of 2x2 announced, 2.5 present: record 2 starts at 16 + 8.
    let im = write(&dir, "im", &idx_images(3, 2, 2, &[0; 10]));
    let e = idx::read(&im, &lb).unwrap_err();
    assert_eq!(
        format_kind(&e),
        (
            FormatKind::Truncated,
            Location::Record { index: 2, byte: 24 }
        )
    );
    assert!(e.to_string().contains("record 2 (byte offset 24)"), "{e}");
    // Header cut short.
    let short = write(&dir, "short", &[0, 0, 8, 3, 0, 0]);
    let e = idx::read(&short, &lb).unwrap_err();
    assert_eq!(format_kind(&e), (FormatKind::Truncated, Location::Byte(6)));
    let tiny = write(&dir, "tiny", &[0, 0]);
    let e = idx::read_labels(&tiny).unwrap_err();
    assert_eq!(format_kind(&e), (FormatKind::Truncated, Location::Byte(2)));
    // Labels file one byte short.
    let lb_short = write(&dir, "lb_short", &idx_labels(&[1, 2, 3])[..10]);
    let e = idx::read_labels(&lb_short).unwrap_err();
    assert_eq!(
        format_kind(&e),
        (
            FormatKind::Truncated,
            Location::Record { index: 2, byte: 10 }
        )
    );
    // Trailing bytes.
    let long = write(&dir, "long", &idx_images(1, 2, 2, &[0; 5]));
    let e = idx::read_images(&long).unwrap_err();
    assert_eq!(
        format_kind(&e),
        (FormatKind::TrailingBytes, Location::Byte(20))
    );
    // Zero-sized images.
    let zero = write(&dir, "zero", &idx_images(1, 0, 2, &[]));
    assert_eq!(
        format_kind(&idx::read_images(&zero).unwrap_err()).0,
        FormatKind::BadHeader
    );
    // gzip: told to gunzip.
    let gz = write(&dir, "im.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    let e = idx::read(&gz, &lb).unwrap_err();
    assert_eq!(format_kind(&e).0, FormatKind::Compressed);
    assert!(e.to_string().contains("gunzip"), "{e}");
    // Missing file: an I/O error naming it.
    let e = idx::read(dir.join("absent"), &lb).unwrap_err();
    assert!(matches!(e, DataError::Io { ref path, .. } if path.ends_with("absent")));
}

#[test]
fn idx_count_mismatch_and_label_range() {
    let dir = temp_dir("idx-count");
    let im = write(&dir, "im", &idx_images(2, 1, 2, &[1, 2, 3, 4]));
    let lb = write(&dir, "lb", &idx_labels(&[1, 2, 3]));
    match idx::read(&im, &lb).unwrap_err() {
        DataError::CountMismatch { images, labels, .. } => assert_eq!((images, labels), (2, 3)),
        other => panic!("{other:?}"),
    }
    let lb = write(&dir, "lb2", &idx_labels(&[1, 12]));
    let e = idx::read_with(&im, &lb, Some(10)).unwrap_err();
    match &e {
        DataError::LabelOutOfRange {
            path,
            location,
            label,
            num_classes,
        } => {
            assert_eq!(path, &lb);
            assert_eq!(*location, Location::Record { index: 1, byte: 9 });
            assert_eq!((*label, *num_classes), (12, 10));
        }
        other => panic!("{other:?}"),
    }
    assert!(idx::read_with(&im, &lb, Some(13)).is_ok());
}

// ----- CSV -----

#[test]
fn csv_good_with_header_crlf_and_label_first() {
    let dir = temp_dir("csv-ok");
    let text = "\u{feff}label,a,b,c,d\r\n3, 0.5,1,2,-3\r\n\r\n\"1\",4,5e-1,6,7\r\n";
    let p = write(&dir, "good.csv", text.as_bytes());
    let ds = csv::read(&p, LabelColumn::First, Some(vec![1, 2, 2])).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.feature_shape(), &[1, 2, 2]);
    assert_eq!(ds.labels(), &[3, 1]);
    assert_eq!(ds.features(), &[0.5, 1.0, 2.0, -3.0, 4.0, 0.5, 6.0, 7.0]);
    assert_eq!(ds.num_classes(), 4);
    // Label last, no header, integral float labels accepted.
    let p = write(&dir, "last.csv", b"1,2,0.0\n3,4,2.0\n");
    let ds = csv::read(&p, LabelColumn::Last, None).unwrap();
    assert_eq!(
        (ds.feature_shape(), ds.labels()),
        (&[2usize][..], &[0i64, 2][..])
    );
    // A declared header is skipped even when numeric.
    let p = write(&dir, "numhdr.csv", b"0,1,2\n1,2,0\n");
    let mut opts = CsvOptions::new(LabelColumn::Last);
    opts.header = Header::Present;
    assert_eq!(csv::read_with(&p, &opts).unwrap().len(), 1);
    // Semicolons.
    let p = write(&dir, "semi.csv", b"1;2;1\n");
    let mut opts = CsvOptions::new(LabelColumn::Last);
    opts.delimiter = ';';
    assert_eq!(csv::read_with(&p, &opts).unwrap().features(), &[1.0, 2.0]);
}

#[test]
fn csv_ragged_row_names_file_and_line() {
    let dir = temp_dir("csv-ragged");
    let p = write(&dir, "ragged.csv", b"a,b,y\n1,2,0\n\n3,4,1\n5,6,7,1\n");
    let e = csv::read(&p, LabelColumn::Last, None).unwrap_err();
    assert_eq!(format_kind(&e), (FormatKind::Ragged, Location::Line(5)));
    let msg = e.to_string();
    assert!(msg.contains(&format!("{}: line 5:", p.display())), "{msg}");
    // Ragged against the header.
    let p = write(&dir, "ragged2.csv", b"a,b,y\n1,0\n");
    let e = csv::read(&p, LabelColumn::Last, None).unwrap_err();
    assert_eq!(format_kind(&e), (FormatKind::Ragged, Location::Line(2)));
}

#[test]
fn csv_non_numeric_names_line_and_column() {
    let dir = temp_dir("csv-nan");
    let p = write(&dir, "bad.csv", b"1,2,0\n1,x,0\n");
    let e = csv::read(&p, LabelColumn::Last, None).unwrap_err();
    assert_eq!(
        format_kind(&e),
        (
            FormatKind::NotNumeric,
            Location::Cell { line: 2, column: 2 }
        )
    );
    assert!(e.to_string().contains("line 2, column 2"), "{e}");
    // Label first: feature columns start at 2.
    let p = write(&dir, "bad2.csv", b"0,1,2\n0,1,inf\n");
    let e = csv::read(&p, LabelColumn::First, None).unwrap_err();
    assert_eq!(
        format_kind(&e),
        (
            FormatKind::NotNumeric,
            Location::Cell { line: 2, column: 3 }
        )
    );
    // An empty field.
    let p = write(&dir, "bad3.csv", b"1,,0\n");
    let e = csv::read(&p, LabelColumn::Last, None).unwrap_err();
    assert_eq!(format_kind(&e).0, FormatKind::NotNumeric);
    // A mixed first line is data, not a header.
    let p = write(&dir, "bad4.csv", b"1,b,0\n");
    let e = csv::read(&p, LabelColumn::Last, None).unwrap_err();
    assert_eq!(
        format_kind(&e),
        (
            FormatKind::NotNumeric,
            Location::Cell { line: 1, column: 2 }
        )
    );
}

#[test]
fn csv_bad_labels_and_range() {
    let dir = temp_dir("csv-label");
    for (text, line) in [
        (&b"1,2,0\n1,2,1.5\n"[..], 2),
        (b"1,2,0\n1,2,0\n1,2,-1\n", 3),
        (b"1,2,cat\n", 1),
    ] {
        let p = write(&dir, "lab.csv", text);
        let e = csv::read(&p, LabelColumn::Last, None).unwrap_err();
        assert_eq!(
            format_kind(&e),
            (FormatKind::BadLabel, Location::Cell { line, column: 3 })
        );
    }
    let p = write(&dir, "range.csv", b"x,y,label\n1,2,3\n\n1,2,10\n1,2,11\n");
    let mut opts = CsvOptions::new(LabelColumn::Last);
    opts.num_classes = Some(10);
    let e = csv::read_with(&p, &opts).unwrap_err();
    assert!(matches!(
        e,
        DataError::LabelOutOfRange {
            label: 10,
            num_classes: 10,
            location: Location::Cell { line: 4, column: 3 },
            ..
        }
    ));
    let msg = e.to_string();
    assert!(
        msg.contains(&p.display().to_string()) && msg.contains("line 4"),
        "{msg}"
    );
    // Checked later, after a split, it still names the file and line.
    let ds = csv::read(&p, LabelColumn::Last, None).unwrap();
    let sub = ds.subset(&[2, 0, 1]).unwrap();
    match sub.with_num_classes(11).unwrap_err() {
        DataError::LabelOutOfRange { path, location, .. } => {
            assert_eq!((path, location), (p.clone(), Location::Line(5)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn csv_shape_empty_and_encoding_errors() {
    let dir = temp_dir("csv-misc");
    let p = write(&dir, "shape.csv", b"1,2,3,0\n");
    let e = csv::read(&p, LabelColumn::Last, Some(vec![2, 2])).unwrap_err();
    assert_eq!(format_kind(&e), (FormatKind::Shape, Location::Line(1)));
    let p = write(&dir, "empty.csv", b"a,b\n\n");
    assert_eq!(
        format_kind(&csv::read(&p, LabelColumn::Last, None).unwrap_err()).0,
        FormatKind::Empty
    );
    let p = write(&dir, "one.csv", b"5\n");
    assert_eq!(
        format_kind(&csv::read(&p, LabelColumn::Last, None).unwrap_err()).0,
        FormatKind::Shape
    );
    let p = write(&dir, "latin1.csv", b"1,2,0\n1,\xe9,0\n");
    assert_eq!(
        format_kind(&csv::read(&p, LabelColumn::Last, None).unwrap_err()),
        (FormatKind::Encoding, Location::Line(2))
    );
}

// ----- digits -----

#[test]
fn digits_are_embedded() {
    let ds = data::digits().unwrap();
    assert_eq!(ds.len(), 1797);
    assert_eq!(ds.feature_shape(), &[1, 8, 8]);
    assert_eq!(ds.num_classes(), 10);
    let counts = ds.class_counts();
    assert_eq!(counts.len(), 10);
    assert_eq!(counts.iter().sum::<usize>(), 1797);
    assert!(
        counts.iter().all(|&c| (170..=190).contains(&c)),
        "{counts:?}"
    );
    assert!(ds.features().iter().all(|&x| (0.0..=16.0).contains(&x)));
    let first: Vec<f32> = data::DIGITS_CSV
        .lines()
        .next()
        .unwrap()
        .split(',')
        .map(|f| f.parse().unwrap())
        .collect();
    let (x, y) = ds.sample(0).unwrap();
    assert_eq!(x, &first[..64]);
    assert_eq!(y as f32, first[64]);
    assert!(data::DIGITS_ATTRIBUTION.contains("CC BY 4.0"));
    assert!(data::DIGITS_ATTRIBUTION.contains("Alpaydin"));
    assert!(data::DIGITS_DESCRIPTION.contains("1797"));
}

// ----- splits and normalisation -----

fn toy(n: usize) -> Dataset {
    let features: Vec<f32> = (0..n * 2).map(|i| i as f32).collect();
    let labels: Vec<i64> = (0..n).map(|i| (i % 3) as i64).collect();
    Dataset::new(features, vec![2], labels).unwrap()
}

#[test]
fn split_is_seeded_disjoint_and_complete() {
    let ds = toy(100);
    let (a_tr, a_te) = ds.split(0.2, 7).unwrap();
    let (b_tr, b_te) = ds.split(0.2, 7).unwrap();
    assert_eq!((a_tr.len(), a_te.len()), (80, 20));
    assert_eq!(a_te.features(), b_te.features());
    assert_eq!(a_tr.features(), b_tr.features());
    let (_, c_te) = ds.split(0.2, 8).unwrap();
    assert_ne!(a_te.features(), c_te.features());
    // Sample i has features [2i, 2i+1]: recover ids.
    let ids = |d: &Dataset| -> Vec<usize> {
        d.features()
            .iter()
            .step_by(2)
            .map(|&x| x as usize / 2)
            .collect()
    };
    let (mut tr, te) = (ids(&a_tr), ids(&a_te));
    assert!(tr.windows(2).all(|w| w[0] < w[1]) && te.windows(2).all(|w| w[0] < w[1]));
    assert!(te.iter().all(|i| !tr.contains(i)));
    tr.extend(te);
    tr.sort();
    assert_eq!(tr, (0..100).collect::<Vec<_>>());
    // Labels follow their features.
    assert!(a_te
        .labels()
        .iter()
        .zip(ids(&a_te))
        .all(|(&l, i)| l == (i % 3) as i64));
    // Counts and bad sizes.
    assert_eq!(ds.split(7usize, 1).unwrap().1.len(), 7);
    for bad in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
        assert!(
            matches!(ds.split(bad, 1), Err(DataError::Invalid { .. })),
            "{bad}"
        );
    }
    assert!(ds.split(100usize, 1).is_err());
}

#[test]
fn stratified_split_keeps_class_balance() {
    let ds = data::digits().unwrap();
    let (tr, te) = ds.split_stratified(0.25, 3).unwrap();
    assert_eq!(tr.len() + te.len(), 1797);
    assert_eq!(te.len(), 449);
    let (all, held) = (ds.class_counts(), te.class_counts());
    for c in 0..10 {
        let share = held[c] as f64 / all[c] as f64;
        assert!(
            (share - 0.25).abs() < 0.01,
            "class {c}: {held:?} of {all:?}"
        );
    }
    assert_eq!(tr.num_classes(), 10);
    let (_, te2) = ds.split_stratified(0.25, 3).unwrap();
    assert_eq!(te.features(), te2.features());
}

#[test]
fn normalization_from_train_applies_to_test() {
    let ds = data::digits().unwrap();
    let (mut tr, mut te) = ds.split(0.2, 1).unwrap();
    let n = Normalization::min_max(&tr).unwrap();
    assert_eq!((n.offset, n.scale), (0.0, 16.0));
    tr.normalize(&n);
    te.normalize(&n);
    assert!(tr.features().iter().all(|&x| (0.0..=1.0).contains(&x)));
    let mut tr2 = ds.split(0.2, 1).unwrap().0;
    let z = Normalization::mean_std(&tr2).unwrap();
    tr2.normalize(&z);
    let m = tr2.features().iter().map(|&x| x as f64).sum::<f64>() / tr2.features().len() as f64;
    let v = tr2
        .features()
        .iter()
        .map(|&x| (x as f64 - m).powi(2))
        .sum::<f64>()
        / tr2.features().len() as f64;
    assert!(m.abs() < 1e-5 && (v - 1.0).abs() < 1e-4, "{m} {v}");
    assert!(Normalization::new(f32::NAN, 1.0).is_err());
    assert_eq!(Normalization::new(2.0, 0.0).unwrap().scale, 1.0);
}

#[test]
fn dataset_new_subset_reshape_validate() {
    assert!(Dataset::new(vec![1.0; 5], vec![2], vec![0, 1]).is_err());
    assert!(Dataset::new(vec![1.0; 4], vec![2], vec![0, -1]).is_err());
    assert!(Dataset::new(vec![], vec![0], vec![]).is_err());
    let ds = toy(4);
    assert!(ds.subset(&[0, 4]).is_err());
    assert_eq!(ds.subset(&[3, 3]).unwrap().labels(), &[0, 0]);
    assert!(ds.clone().reshape(&[3]).is_err());
    assert_eq!(
        ds.clone().reshape(&[1, 2, 1]).unwrap().feature_shape(),
        &[1, 2, 1]
    );
    match ds.with_num_classes(2).unwrap_err() {
        DataError::LabelOutOfRange { location, .. } => assert_eq!(location, Location::Row(2)),
        other => panic!("{other:?}"),
    }
}

// ----- loader -----

#[test]
fn loader_batches_shapes_and_last_batch() {
    let ds = toy(10);
    let cpu = Device::cpu();
    let dl = DataLoader::new(&ds, 4, &cpu).unwrap();
    assert_eq!(dl.len(), 3);
    let batches: Vec<_> = dl.epoch(0).map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 3);
    let sizes: Vec<usize> = batches.iter().map(|(x, _)| x.shape()[0]).collect();
    assert_eq!(sizes, [4, 4, 2]);
    let (x, y) = &batches[2];
    assert_eq!((x.shape(), x.dtype()), (&[2usize, 2][..], DType::F32));
    assert_eq!((y.shape(), y.dtype()), (&[2usize][..], DType::I64));
    // Unshuffled: in order.
    assert_eq!(x.to_vec::<f32>().unwrap(), [16.0, 17.0, 18.0, 19.0]);
    assert_eq!(y.to_vec::<i64>().unwrap(), [2, 0]);
    let dl = dl.drop_last(true);
    assert_eq!(dl.len(), 2);
    assert_eq!(dl.epoch(0).len(), 2);
    assert!(dl.epoch(0).all(|b| b.unwrap().0.shape()[0] == 4));
    assert!(DataLoader::new(&ds, 0, &cpu).is_err());
    let dl = DataLoader::new(&ds, 11, &cpu).unwrap().drop_last(true);
    assert!(dl.is_empty() && dl.epoch(0).next().is_none());
}

#[test]
fn loader_shuffle_is_seeded_per_epoch() {
    let ds = data::digits().unwrap();
    let cpu = Device::cpu();
    let a = DataLoader::new(&ds, 64, &cpu).unwrap().shuffle(5);
    let b = DataLoader::new(&ds, 64, &cpu).unwrap().shuffle(5);
    let c = DataLoader::new(&ds, 64, &cpu).unwrap().shuffle(6);
    assert_eq!(a.order(0), b.order(0));
    assert_eq!(a.order(3), b.order(3));
    assert_ne!(a.order(0), a.order(1));
    assert_ne!(a.order(0), c.order(0));
    let mut o = a.order(2);
    assert_ne!(o, (0..1797).collect::<Vec<_>>());
    o.sort();
    assert_eq!(o, (0..1797).collect::<Vec<_>>());
    // Batches follow the order and carry matching labels.
    let order = a.order(1);
    let (x, y) = a.epoch(1).next().unwrap().unwrap();
    assert_eq!(x.shape(), &[64, 1, 8, 8]);
    let xs = x.to_vec::<f32>().unwrap();
    let ys = y.to_vec::<i64>().unwrap();
    for (k, &i) in order[..64].iter().enumerate() {
        let (f, l) = ds.sample(i).unwrap();
        assert_eq!(&xs[k * 64..(k + 1) * 64], f);
        assert_eq!(ys[k], l);
    }
    // Two runs of one epoch give identical tensors.
    let e1: Vec<i64> = a
        .epoch(4)
        .flat_map(|b| b.unwrap().1.to_vec::<i64>().unwrap())
        .collect();
    let e2: Vec<i64> = b
        .epoch(4)
        .flat_map(|b| b.unwrap().1.to_vec::<i64>().unwrap())
        .collect();
    assert_eq!(e1, e2);
    assert_eq!(e1.len(), 1797);
}

#[test]
fn whole_set_as_tensors() {
    let ds = toy(3);
    let (x, y) = ds.to_tensors(&Device::cpu()).unwrap();
    assert_eq!((x.shape(), y.shape()), (&[3usize, 2][..], &[3usize][..]));
    assert_eq!(y.to_vec::<i64>().unwrap(), [0, 1, 2]);
}
