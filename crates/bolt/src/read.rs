//! Reading a bbolt file without trusting it: pages are read on demand (a
//! snapshot may be larger than memory), and every page id, header and
//! element is checked before use.

use crate::page::{self, Header, Meta, BRANCH, BUCKET_HEADER, BUCKET_LEAF, FREELIST, HEADER, LEAF};
use crate::write::lossy;
use crate::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// bbolt trees are a few levels deep; deeper means a damaged file.
const MAX_DEPTH: usize = 32;

/// An open bbolt file.
pub struct Reader {
    file: File,
    meta: Meta,
}

/// Called for every leaf element of a walk: flags, key, value.
type OnLeaf<'a, E> = dyn FnMut(u32, &[u8], &[u8]) -> std::result::Result<(), E> + 'a;

/// Where a bucket's tree starts.
enum Node {
    Page(u64),
    /// An inline bucket's page, stored inside its parent's value.
    Inline(Vec<u8>),
}

impl Reader {
    /// Opens `path` and picks its newest valid meta page.
    pub fn open(path: &Path) -> Result<Reader> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut first = vec![0u8; HEADER + page::META];
        if len < first.len() as u64 {
            return Err(Error::NotBolt);
        }
        file.read_exact_at(&mut first, 0)?;
        let meta0 = Meta::decode(&first);
        // The second meta sits one page in; the first tells the page size,
        // or when it is damaged, try the common ones.
        let sizes = match &meta0 {
            Ok(m) => vec![u64::from(m.page_size)],
            Err(_) => vec![4096, 8192, 16384, 32768, 65536],
        };
        let mut meta1 = Err(Error::NotBolt);
        for size in sizes {
            if len >= size + first.len() as u64 {
                file.read_exact_at(&mut first, size)?;
                meta1 = Meta::decode(&first);
                if meta1.is_ok() {
                    break;
                }
            }
        }
        let meta = match (meta0, meta1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
            (Err(e), Err(_)) => return Err(e),
        };
        let ps = meta.page_size;
        if !(1024..=1 << 20).contains(&ps) || !ps.is_power_of_two() {
            return Err(Error::PageSize(ps));
        }
        let need = meta.pgid.saturating_mul(u64::from(ps));
        if len < need {
            return Err(Error::Truncated { have: len, need });
        }
        let r = Reader { file, meta };
        r.check_id(r.meta.root, 0)?;
        Ok(r)
    }

    /// The database size as bbolt reports it (`Tx.Size`): pages in use
    /// times the page size. The file may be longer (a snapshot's trailer).
    pub fn size(&self) -> u64 {
        self.meta.pgid * u64::from(self.meta.page_size)
    }

    pub fn page_size(&self) -> u32 {
        self.meta.page_size
    }

    fn check_id(&self, id: u64, overflow: u32) -> Result<()> {
        if id < 2 || id.saturating_add(u64::from(overflow)) >= self.meta.pgid {
            return Err(Error::PageOutOfRange {
                id,
                max: self.meta.pgid,
            });
        }
        Ok(())
    }

    /// Page `id` with its overflow pages, after checking its header.
    fn page(&self, id: u64) -> Result<Vec<u8>> {
        self.check_id(id, 0)?;
        let ps = u64::from(self.meta.page_size);
        let mut buf = vec![0u8; ps as usize];
        self.file.read_exact_at(&mut buf, id * ps)?;
        let h = Header::decode(&buf);
        if h.id != id {
            return Err(Error::BadPage {
                id,
                what: format!("header says page {}", h.id),
            });
        }
        if h.overflow > 0 {
            self.check_id(id, h.overflow)?;
            buf.resize(((1 + u64::from(h.overflow)) * ps) as usize, 0);
            self.file
                .read_exact_at(&mut buf[ps as usize..], (id + 1) * ps)?;
        }
        Ok(buf)
    }

    /// The names of the top-level buckets, in order.
    pub fn buckets(&self) -> Result<Vec<Vec<u8>>> {
        let mut names = Vec::new();
        self.walk::<Error>(
            &Node::Page(self.meta.root),
            0,
            &mut |_, _| Ok(()),
            &mut |flags, k, _| {
                if flags & BUCKET_LEAF != 0 {
                    names.push(k.to_vec());
                }
                Ok(())
            },
        )?;
        Ok(names)
    }

    /// Calls `f` for every key of a top-level bucket, in key order (a
    /// nested bucket's entry comes with an empty value, as bbolt's ForEach).
    pub fn for_each<E: From<Error>>(
        &self,
        bucket: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let node = self
            .find_bucket(bucket)?
            .ok_or(Error::NoBucket(lossy(bucket)))?;
        self.walk(&node, 0, &mut |_, _| Ok(()), &mut |flags, k, v| {
            f(k, if flags & BUCKET_LEAF != 0 { &[] } else { v })
        })
    }

    /// Whether a top-level bucket exists.
    pub fn has_bucket(&self, bucket: &[u8]) -> Result<bool> {
        Ok(self.find_bucket(bucket)?.is_some())
    }

    fn find_bucket(&self, name: &[u8]) -> Result<Option<Node>> {
        let mut found = None;
        self.walk::<Error>(
            &Node::Page(self.meta.root),
            0,
            &mut |_, _| Ok(()),
            &mut |flags, k, v| {
                if k == name && flags & BUCKET_LEAF != 0 {
                    found = Some(bucket_node(v)?);
                }
                Ok(())
            },
        )?;
        Ok(found)
    }

    /// Depth-first walk of a tree in key order: `on_page` for every page
    /// (id, overflow), `on_leaf` for every element (flags, key, value).
    /// Keys must rise strictly within the tree.
    fn walk<E: From<Error>>(
        &self,
        node: &Node,
        depth: usize,
        on_page: &mut dyn FnMut(u64, u32) -> std::result::Result<(), E>,
        on_leaf: &mut OnLeaf<'_, E>,
    ) -> std::result::Result<(), E> {
        let mut last: Option<Vec<u8>> = None;
        self.walk_inner(node, depth, &mut last, on_page, on_leaf)
    }

    fn walk_inner<E: From<Error>>(
        &self,
        node: &Node,
        depth: usize,
        last: &mut Option<Vec<u8>>,
        on_page: &mut dyn FnMut(u64, u32) -> std::result::Result<(), E>,
        on_leaf: &mut OnLeaf<'_, E>,
    ) -> std::result::Result<(), E> {
        let (buf, id) = match node {
            Node::Page(id) => (self.page(*id)?, *id),
            Node::Inline(b) => (b.clone(), 0),
        };
        if depth > MAX_DEPTH {
            return Err(bad(id, "tree too deep").into());
        }
        if buf.len() < HEADER {
            return Err(bad(id, "inline bucket shorter than a page header").into());
        }
        let h = Header::decode(&buf);
        if let Node::Page(id) = node {
            on_page(*id, h.overflow)?;
        }
        if h.flags & LEAF != 0 {
            for i in 0..usize::from(h.count) {
                let e = page::leaf_element(&buf, i, id)?;
                ascending(last, e.key, id)?;
                on_leaf(e.flags, e.key, e.value)?;
            }
        } else if h.flags & BRANCH != 0 && matches!(node, Node::Page(_)) {
            for i in 0..usize::from(h.count) {
                // The child checks its own keys against what came before.
                let child = page::branch_child(&buf, i, id)?;
                self.walk_inner(&Node::Page(child), depth + 1, last, on_page, on_leaf)?;
            }
        } else {
            return Err(bad(
                id,
                &format!("not a branch or leaf page (flags {:#x})", h.flags),
            )
            .into());
        }
        Ok(())
    }

    /// bbolt's `Tx.Check`: every page below the high-water mark is a meta,
    /// the freelist, reachable from exactly one place, or free.
    pub fn check(&self) -> Result<()> {
        let pgid = self.meta.pgid as usize;
        let mut seen = vec![false; pgid];
        let mut errors = Vec::new();
        seen[0] = true;
        seen[1] = true;
        let mut freed = vec![false; pgid];
        let synced_freelist = self.meta.freelist != page::NO_FREELIST;
        if synced_freelist {
            let id = self.meta.freelist;
            let buf = self.page(id)?;
            let h = Header::decode(&buf);
            if h.flags & FREELIST == 0 {
                return Err(bad(id, "the meta's freelist is not a freelist page"));
            }
            for i in 0..=u64::from(h.overflow) {
                seen[(id + i) as usize] = true;
            }
            for free in freelist_ids(&buf, h, id)? {
                if free >= self.meta.pgid {
                    errors.push(format!("page {free}: freed but out of bounds"));
                } else if std::mem::replace(&mut freed[free as usize], true) {
                    errors.push(format!("page {free}: already freed"));
                }
            }
        }
        self.check_tree(&Node::Page(self.meta.root), &mut seen, &freed, &mut errors)?;
        if synced_freelist {
            for (i, s) in seen.iter().enumerate() {
                if !s && !freed[i] {
                    errors.push(format!("page {i}: unreachable unfreed"));
                }
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        let n = errors.len();
        errors.truncate(10);
        Err(Error::Check(format!(
            "{n} integrity errors found: {}",
            errors.join("; ")
        )))
    }

    fn check_tree(
        &self,
        node: &Node,
        seen: &mut [bool],
        freed: &[bool],
        errors: &mut Vec<String>,
    ) -> Result<()> {
        let mut nested = Vec::new();
        self.walk::<Error>(
            node,
            0,
            &mut |id, overflow| {
                for p in id..=id + u64::from(overflow) {
                    let p = p as usize;
                    if std::mem::replace(&mut seen[p], true) {
                        errors.push(format!("page {p}: multiple references"));
                    }
                    if freed[p] {
                        errors.push(format!("page {p}: reachable freed"));
                    }
                }
                Ok(())
            },
            &mut |flags, _, v| {
                if flags & BUCKET_LEAF != 0 {
                    nested.push(bucket_node(v)?);
                }
                Ok(())
            },
        )?;
        for child in nested {
            self.check_tree(&child, seen, freed, errors)?;
        }
        Ok(())
    }
}

/// Records `key` as the last one seen, refusing it unless it is larger.
fn ascending(last: &mut Option<Vec<u8>>, key: &[u8], id: u64) -> Result<()> {
    match last {
        Some(l) if l.as_slice() >= key => Err(bad(id, "keys out of order")),
        Some(l) => {
            l.clear();
            l.extend_from_slice(key);
            Ok(())
        }
        None => {
            *last = Some(key.to_vec());
            Ok(())
        }
    }
}

fn bad(id: u64, what: &str) -> Error {
    Error::BadPage {
        id,
        what: what.to_string(),
    }
}

/// A bucket entry's value: its header and, for an inline bucket, its page.
fn bucket_node(v: &[u8]) -> Result<Node> {
    if v.len() < BUCKET_HEADER {
        return Err(bad(0, "bucket header shorter than 16 bytes"));
    }
    let root = page::u64_at(v, 0);
    if root == 0 {
        Ok(Node::Inline(v[BUCKET_HEADER..].to_vec()))
    } else {
        Ok(Node::Page(root))
    }
}

/// The page ids a freelist page lists (a count of 0xFFFF means the real
/// count is the first element).
fn freelist_ids(buf: &[u8], h: Header, id: u64) -> Result<Vec<u64>> {
    let (start, count) = if h.count == 0xFFFF {
        if buf.len() < HEADER + 8 {
            return Err(bad(id, "freelist count missing"));
        }
        (HEADER + 8, page::u64_at(buf, HEADER))
    } else {
        (HEADER, u64::from(h.count))
    };
    let end = (start as u64).saturating_add(count.saturating_mul(8));
    if end > buf.len() as u64 {
        return Err(bad(id, "freelist longer than its page"));
    }
    Ok((0..count as usize)
        .map(|i| page::u64_at(buf, start + i * 8))
        .collect())
}
