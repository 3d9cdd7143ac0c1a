//! `snapshot status`: etcdutl's hash, revision, key count and size of a
//! snapshot file, and its three output formats.

use super::layout;
use super::SnapshotError;
use ferrocd_bolt::Reader;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// CRC-32C over every bucket's name, keys and values, in order.
    pub hash: u32,
    /// The main revision of the last entry of the `key` bucket.
    pub revision: i64,
    /// Entries in all buckets.
    #[serde(rename = "totalKey")]
    pub total_key: u64,
    /// bbolt's database size (pages in use times the page size).
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

/// Reads a snapshot (or backend) file as etcdutl does, after bbolt's
/// integrity check.
pub fn status(path: &Path) -> Result<Status, SnapshotError> {
    std::fs::metadata(path).map_err(|e| SnapshotError::io(path, e))?;
    let db = Reader::open(path)?;
    if let Err(e) = db.check() {
        return Err(SnapshotError::Refused(format!(
            "snapshot file integrity check failed. {e}"
        )));
    }
    let mut hash = 0u32;
    let mut revision = 0i64;
    let mut total_key = 0u64;
    for bucket in db.buckets()? {
        hash = crc32c::crc32c_append(hash, &bucket);
        let is_key = bucket == layout::KEY;
        db.for_each(&bucket, |k, v| {
            hash = crc32c::crc32c_append(hash, k);
            hash = crc32c::crc32c_append(hash, v);
            if is_key {
                // etcd reads the first 8 bytes whatever the key is.
                if let Some(main) = k.get(..8).and_then(layout::parse_u64) {
                    revision = main as i64;
                }
            }
            total_key += 1;
            Ok::<_, SnapshotError>(())
        })?;
    }
    Ok(Status {
        hash,
        revision,
        total_key,
        total_size: db.size(),
    })
}

/// etcdutl's `-w` formats for `snapshot status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Table,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "simple" => Some(Format::Simple),
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// The status as etcdutl prints it, newline included.
pub fn render(s: &Status, format: Format) -> String {
    let row = [
        format!("{:x}", s.hash),
        s.revision.to_string(),
        s.total_key.to_string(),
        human_bytes(s.total_size),
    ];
    match format {
        Format::Simple => format!("{}\n", row.join(", ")),
        Format::Json => format!("{}\n", serde_json::to_string(s).unwrap_or_default()),
        Format::Table => table(&["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], &row),
    }
}

/// One-row table as etcdutl's table writer draws it: headers centred,
/// cells right-aligned.
fn table(headers: &[&str], row: &[String]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .zip(row)
        .map(|(h, c)| h.len().max(c.len()))
        .collect();
    let rule = {
        let parts: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        format!("+{}+\n", parts.join("+"))
    };
    let line = |cells: Vec<String>| format!("|{}|\n", cells.join("|"));
    let head = line(
        headers
            .iter()
            .zip(&widths)
            .map(|(h, w)| {
                let gap = w - h.len();
                let left = gap / 2;
                format!(" {}{h}{} ", " ".repeat(left), " ".repeat(gap - left))
            })
            .collect(),
    );
    let body = line(
        row.iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:>w$} "))
            .collect(),
    );
    format!("{rule}{head}{rule}{body}{rule}")
}

/// go-humanize's `Bytes` (SI units), which etcdutl prints sizes with.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_go_humanize_prints_them() {
        for (n, want) in [
            (0, "0 B"),
            (9, "9 B"),
            (10, "10 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (20480, "20 kB"),
            (2_125_824, "2.1 MB"),
            (1_073_741_824, "1.1 GB"),
        ] {
            assert_eq!(human_bytes(n), want, "{n}");
        }
    }

    #[test]
    fn formats() {
        let s = Status {
            hash: 0xfe01cf57,
            revision: 10,
            total_key: 7,
            total_size: 2_125_824,
        };
        assert_eq!(render(&s, Format::Simple), "fe01cf57, 10, 7, 2.1 MB\n");
        assert_eq!(
            render(&s, Format::Json),
            "{\"hash\":4261531479,\"revision\":10,\"totalKey\":7,\"totalSize\":2125824}\n"
        );
        assert_eq!(
            render(&s, Format::Table),
            "+----------+----------+------------+------------+\n\
             |   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n\
             +----------+----------+------------+------------+\n\
             | fe01cf57 |       10 |          7 |     2.1 MB |\n\
             +----------+----------+------------+------------+\n"
        );
    }
}
