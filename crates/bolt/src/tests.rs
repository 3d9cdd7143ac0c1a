//! Round trips through [`Writer`] and [`Reader`], and damaged files.

use super::*;
use std::path::Path;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn write(path: &Path, buckets: &[(&str, Pairs)]) -> u64 {
    let mut w = Writer::create(path).unwrap();
    for (name, items) in buckets {
        let mut b = w.bucket(name.as_bytes()).unwrap();
        for (k, v) in items {
            b.put(k, v).unwrap();
        }
        b.finish().unwrap();
    }
    w.finish().unwrap().1
}

fn read_all(r: &Reader, bucket: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    r.for_each::<Error>(bucket.as_bytes(), |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

fn many(n: usize, value_len: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                format!("key-{i:08}").into_bytes(),
                vec![(i % 251) as u8; value_len + i % 7],
            )
        })
        .collect()
}

#[test]
fn buckets_round_trip_through_leaves_branches_and_overflow_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let big: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"a".to_vec(), vec![1; 9000]),
        (b"b".to_vec(), vec![2; 10]),
        (b"c".to_vec(), vec![3; 70_000]),
    ];
    // 200k entries need three levels of branch pages.
    let data = [
        ("meta", vec![(b"x".to_vec(), b"1".to_vec())]),
        ("key", many(200_000, 20)),
        ("empty", vec![]),
        ("big", big.clone()),
    ];
    let size = write(&path, &data);
    assert_eq!(size, std::fs::metadata(&path).unwrap().len());
    let r = Reader::open(&path).unwrap();
    assert_eq!(r.size(), size);
    assert_eq!(
        r.buckets().unwrap(),
        vec![
            b"big".to_vec(),
            b"empty".to_vec(),
            b"key".to_vec(),
            b"meta".to_vec()
        ]
    );
    for (name, items) in &data {
        assert_eq!(&read_all(&r, name), items, "bucket {name}");
    }
    r.check().unwrap();
    assert!(matches!(
        r.for_each::<Error>(b"nope", |_, _| Ok(())),
        Err(Error::NoBucket(_))
    ));
}

#[test]
fn the_writer_refuses_keys_out_of_order_and_twice_the_same_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::create(&dir.path().join("db")).unwrap();
    let mut b = w.bucket(b"k").unwrap();
    b.put(b"b", b"").unwrap();
    assert!(matches!(b.put(b"b", b""), Err(Error::Unordered { .. })));
    assert!(matches!(b.put(b"a", b""), Err(Error::Unordered { .. })));
    b.finish().unwrap();
    assert!(matches!(w.bucket(b"k"), Err(Error::DuplicateBucket(_))));
}

/// A written file with `damage` applied, opened and fully read.
fn read_damaged(damage: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    write(&path, &[("key", many(5_000, 100)), ("meta", many(3, 3))]);
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let r = Reader::open(&path)?;
    for name in r.buckets()? {
        r.for_each::<Error>(&name, |_, _| Ok(()))?;
    }
    r.check()
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let ps = 4096;
    let truncated = read_damaged(|b| b.truncate(b.len() - ps));
    assert!(
        matches!(truncated, Err(Error::Truncated { .. })),
        "{truncated:?}"
    );
    let magic = read_damaged(|b| {
        b[16] ^= 0xff;
        b[ps + 16] ^= 0xff;
    });
    assert!(matches!(magic, Err(Error::NotBolt)), "{magic:?}");
    let not_bolt = read_damaged(|b| b.iter_mut().for_each(|x| *x = b'x'));
    assert!(matches!(not_bolt, Err(Error::NotBolt)), "{not_bolt:?}");
    let empty = read_damaged(|b| b.clear());
    assert!(matches!(empty, Err(Error::NotBolt)), "{empty:?}");
    // One damaged meta: the other one is used, as bbolt does.
    read_damaged(|b| b[ps + 16 + 40] ^= 1).unwrap();
    let both = read_damaged(|b| {
        b[16 + 40] ^= 1;
        b[ps + 16 + 40] ^= 1;
    });
    assert!(matches!(both, Err(Error::Checksum)), "{both:?}");
    // A page header naming another page, a branch pointing past the end,
    // element sizes past the page: every byte of the first pages flipped in
    // turn must give an error or the same data, never a panic.
    for page in 2..6 {
        for at in 0..64 {
            let _ = read_damaged(|b| b[page * ps + at] ^= 0x5a);
        }
    }
    let id = read_damaged(|b| b[2 * ps] ^= 1);
    assert!(matches!(id, Err(Error::BadPage { id: 2, .. })), "{id:?}");
}

#[test]
fn a_page_out_of_range_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    write(&path, &[("key", many(5_000, 100))]);
    let r = Reader::open(&path).unwrap();
    let max = r.size() / 4096;
    let mut bytes = std::fs::read(&path).unwrap();
    // The root bucket's leaf is the page before the freelist (the last).
    let root = (max - 2) as usize * 4096;
    let elem = root + 16;
    let pos = u32::from_le_bytes(bytes[elem + 4..elem + 8].try_into().unwrap()) as usize;
    let ksize = u32::from_le_bytes(bytes[elem + 8..elem + 12].try_into().unwrap()) as usize;
    let value = elem + pos + ksize;
    bytes[value..value + 8].copy_from_slice(&(max + 100).to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let r = Reader::open(&path).unwrap();
    let err = r.for_each::<Error>(b"key", |_, _| Ok(())).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "page {}: out of range (the database has {max} pages)",
            max + 100
        )
    );
}

#[test]
fn check_finds_unreachable_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    write(&path, &[("key", many(5_000, 100))]);
    let mut bytes = std::fs::read(&path).unwrap();
    let pages = bytes.len() / 4096;
    // Raise both metas' high-water mark by one page and append it.
    for meta in [0usize, 1] {
        let m = meta * 4096 + 16;
        let pgid = u64::from_le_bytes(bytes[m + 40..m + 48].try_into().unwrap()) + 1;
        bytes[m + 40..m + 48].copy_from_slice(&pgid.to_le_bytes());
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in &bytes[m..m + 56] {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        bytes[m + 56..m + 64].copy_from_slice(&h.to_le_bytes());
    }
    bytes.extend(vec![0u8; 4096]);
    std::fs::write(&path, &bytes).unwrap();
    let err = Reader::open(&path).unwrap().check().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("1 integrity errors found: page {pages}: unreachable unfreed")
    );
}
