//! The integrity trailer of a snapshot stream: the database padded with
//! zeros to a multiple of 512 bytes, followed by the SHA-256 of all of that
//! (what `etcdctl snapshot save` receives and `etcdutl snapshot restore`
//! checks).

use super::SnapshotError;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const ALIGN: u64 = 512;
const SUM: u64 = 32;

/// Reads a database file as a sealed stream, chunk by chunk, so a large
/// snapshot never sits in memory whole.
pub struct Sealed {
    file: File,
    hasher: Sha256,
    /// Database bytes not yet read, then zero padding still to send.
    left: u64,
    padding: u64,
    done: bool,
}

impl Sealed {
    pub fn open(path: &Path) -> std::io::Result<Sealed> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Sealed {
            file,
            hasher: Sha256::new(),
            left: len,
            padding: len.div_ceil(ALIGN) * ALIGN - len,
            done: false,
        })
    }

    /// Bytes the whole stream has.
    pub fn total_len(&self) -> u64 {
        self.left + self.padding + SUM
    }

    /// The next chunk of at most `max` bytes; `None` at the end.
    pub fn next_chunk(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        if self.left > 0 {
            let n = self.left.min(max as u64) as usize;
            let mut buf = vec![0u8; n];
            self.file.read_exact(&mut buf)?;
            self.left -= n as u64;
            self.hasher.update(&buf);
            return Ok(Some(buf));
        }
        if self.padding > 0 {
            let buf = vec![0u8; self.padding as usize];
            self.padding = 0;
            self.hasher.update(&buf);
            return Ok(Some(buf));
        }
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(self.hasher.clone().finalize().to_vec()))
    }
}

/// Whether a file of `len` bytes ends in a trailer (etcdutl's test).
pub fn has_trailer(len: u64) -> bool {
    len % ALIGN == SUM
}

/// Checks a snapshot file's trailer as etcdutl does; returns how many bytes
/// of the file are the database (without the trailer).
pub fn verify(path: &Path, skip_hash_check: bool) -> Result<u64, SnapshotError> {
    let mut file = File::open(path).map_err(|e| SnapshotError::io(path, e))?;
    let len = file
        .metadata()
        .map_err(|e| SnapshotError::io(path, e))?
        .len();
    if !has_trailer(len) {
        if !skip_hash_check {
            return Err(SnapshotError::Refused(
                "snapshot missing hash but --skip-hash-check=false".into(),
            ));
        }
        return Ok(len);
    }
    let body = len - SUM;
    if skip_hash_check {
        return Ok(body);
    }
    let mut want = [0u8; SUM as usize];
    let read = |file: &mut File, want: &mut [u8]| -> std::io::Result<[u8; 32]> {
        file.seek(SeekFrom::Start(body))?;
        file.read_exact(want)?;
        file.seek(SeekFrom::Start(0))?;
        let mut h = Sha256::new();
        std::io::copy(&mut file.take(body), &mut h)?;
        Ok(h.finalize().into())
    };
    let got = read(&mut file, &mut want).map_err(|e| SnapshotError::io(path, e))?;
    if got != want {
        return Err(SnapshotError::Refused(format!(
            "expected sha256 {}, got {}",
            go_bytes(&want),
            go_bytes(&got)
        )));
    }
    Ok(body)
}

/// A byte slice as Go's `%v` prints it: `[1 2 3]`.
fn go_bytes(b: &[u8]) -> String {
    let parts: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(body: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, body).unwrap();
        let mut s = Sealed::open(&path).unwrap();
        let total = s.total_len();
        let mut out = Vec::new();
        while let Some(c) = s.next_chunk(1000).unwrap() {
            out.extend(c);
        }
        assert_eq!(out.len() as u64, total);
        out
    }

    #[test]
    fn a_sealed_stream_has_the_shape_etcdutl_checks() {
        for n in [0usize, 1, 511, 512, 513, 100_000] {
            let s = sealed(&vec![7u8; n]);
            assert!(has_trailer(s.len() as u64), "n={n}");
            let (data, sum) = s.split_at(s.len() - 32);
            assert_eq!(Sha256::digest(data).as_slice(), sum);
            assert_eq!(&data[..n], &vec![7u8; n][..]);
        }
    }

    #[test]
    fn verify_refuses_a_wrong_or_missing_hash_and_skips_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        let mut s = sealed(&[1u8; 5000]);
        std::fs::write(&path, &s).unwrap();
        assert_eq!(verify(&path, false).unwrap(), 5120);
        let last = s.len() - 1;
        s[last] ^= 1;
        std::fs::write(&path, &s).unwrap();
        let e = verify(&path, false).unwrap_err().to_string();
        assert!(e.starts_with("expected sha256 ["), "{e}");
        assert_eq!(verify(&path, true).unwrap(), 5120);
        std::fs::write(&path, [0u8; 4096]).unwrap();
        assert_eq!(
            verify(&path, false).unwrap_err().to_string(),
            "snapshot missing hash but --skip-hash-check=false"
        );
        assert_eq!(verify(&path, true).unwrap(), 4096);
    }
}
