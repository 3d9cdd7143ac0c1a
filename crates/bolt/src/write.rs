//! Bulk-loading a new bbolt file: each bucket's keys arrive in ascending
//! order and fill leaf pages as they come (written at once, so memory holds
//! one leaf plus the first key of each page); branch pages, the root bucket,
//! an empty freelist and finally both meta pages follow.

use crate::page::{self, Meta, BUCKET_LEAF, DEFAULT_PAGE_SIZE};
use crate::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

/// A bbolt file being written.
pub struct Writer {
    out: BufWriter<File>,
    page_size: usize,
    /// The next page id to allocate; pages 0 and 1 are the metas.
    next: u64,
    /// Finished buckets: name and root page.
    buckets: Vec<(Vec<u8>, u64)>,
}

impl Writer {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Writer> {
        let file = File::create(path)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        // The metas are written last, once the root is known.
        out.write_all(&vec![0u8; 2 * DEFAULT_PAGE_SIZE])?;
        Ok(Writer {
            out,
            page_size: DEFAULT_PAGE_SIZE,
            next: 2,
            buckets: Vec::new(),
        })
    }

    /// Starts a top-level bucket; its keys must then come in ascending order.
    pub fn bucket(&mut self, name: &[u8]) -> Result<BucketWriter<'_>> {
        if self.buckets.iter().any(|(n, _)| n == name) {
            return Err(Error::DuplicateBucket(lossy(name)));
        }
        Ok(BucketWriter {
            name: name.to_vec(),
            writer: self,
            leaf: Vec::new(),
            leaf_bytes: 0,
            children: Vec::new(),
        })
    }

    /// Writes `buf` (whole pages) at the next page id, returns that id.
    fn append(&mut self, encode: impl FnOnce(u64, usize) -> Vec<u8>) -> Result<u64> {
        let id = self.next;
        let buf = encode(id, self.page_size);
        self.out.write_all(&buf)?;
        self.next += (buf.len() / self.page_size) as u64;
        Ok(id)
    }

    /// Writes the root bucket, freelist and metas; returns the file (not
    /// synced) and the database size in bytes.
    pub fn finish(mut self) -> Result<(File, u64)> {
        let mut buckets = std::mem::take(&mut self.buckets);
        buckets.sort();
        let headers: Vec<_> = buckets
            .iter()
            .map(|(_, root)| page::encode_bucket_header(*root, 0))
            .collect();
        let items: Vec<(u32, &[u8], &[u8])> = buckets
            .iter()
            .zip(&headers)
            .map(|((name, _), h)| (BUCKET_LEAF, name.as_slice(), &h[..]))
            .collect();
        let root = self.append(|id, ps| page::encode_leaf(id, ps, &items))?;
        let freelist = self.append(page::encode_freelist)?;
        let pgid = self.next;
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        for id in 0..2u64 {
            let mut p = vec![0u8; self.page_size];
            Meta {
                page_size: self.page_size as u32,
                flags: 0,
                root,
                sequence: 0,
                freelist,
                pgid,
                txid: id,
            }
            .encode(id, &mut p);
            file.write_all(&p)?;
        }
        file.flush()?;
        Ok((file, pgid * self.page_size as u64))
    }
}

/// One bucket being filled.
pub struct BucketWriter<'w> {
    writer: &'w mut Writer,
    name: Vec<u8>,
    /// The leaf page being filled.
    leaf: Vec<(Vec<u8>, Vec<u8>)>,
    leaf_bytes: usize,
    /// First key and page id of every page written at the level below.
    children: Vec<(Vec<u8>, u64)>,
}

impl BucketWriter<'_> {
    /// Adds a key; keys must be strictly ascending.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let last = self
            .leaf
            .last()
            .map(|(k, _)| k.as_slice())
            .or_else(|| self.children.last().map(|(k, _)| k.as_slice()));
        if last.is_some_and(|l| l >= key) {
            return Err(Error::Unordered {
                bucket: lossy(&self.name),
            });
        }
        let grown = page::leaf_size(
            self.leaf.len() + 1,
            self.leaf_bytes + key.len() + value.len(),
        );
        if !self.leaf.is_empty() && grown > self.writer.page_size {
            self.flush_leaf()?;
        }
        self.leaf_bytes += key.len() + value.len();
        self.leaf.push((key.to_vec(), value.to_vec()));
        Ok(())
    }

    fn flush_leaf(&mut self) -> Result<()> {
        let items: Vec<(u32, &[u8], &[u8])> = self
            .leaf
            .iter()
            .map(|(k, v)| (0, k.as_slice(), v.as_slice()))
            .collect();
        let id = self
            .writer
            .append(|id, ps| page::encode_leaf(id, ps, &items))?;
        let first = self
            .leaf
            .first()
            .map(|(k, _)| k.clone())
            .unwrap_or_default();
        self.children.push((first, id));
        self.leaf.clear();
        self.leaf_bytes = 0;
        Ok(())
    }

    /// Writes what is pending and the branch pages above it.
    pub fn finish(mut self) -> Result<()> {
        if !self.leaf.is_empty() || self.children.is_empty() {
            self.flush_leaf()?;
        }
        let mut level = std::mem::take(&mut self.children);
        while level.len() > 1 {
            level = self.branch_level(&level)?;
        }
        let root = level[0].1;
        self.writer
            .buckets
            .push((std::mem::take(&mut self.name), root));
        Ok(())
    }

    /// Groups `children` into branch pages; returns the pages written.
    fn branch_level(&mut self, children: &[(Vec<u8>, u64)]) -> Result<Vec<(Vec<u8>, u64)>> {
        let mut parents = Vec::new();
        let mut start = 0;
        while start < children.len() {
            let mut end = start + 1;
            let mut bytes = children[start].0.len();
            while end < children.len() {
                let grown = page::leaf_size(end + 1 - start, bytes + children[end].0.len());
                // At least two children per page, so every level shrinks.
                if grown > self.writer.page_size && end - start >= 2 {
                    break;
                }
                bytes += children[end].0.len();
                end += 1;
            }
            let group = &children[start..end];
            let id = self
                .writer
                .append(|id, ps| page::encode_branch(id, ps, group))?;
            parents.push((group[0].0.clone(), id));
            start = end;
        }
        Ok(parents)
    }
}

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
