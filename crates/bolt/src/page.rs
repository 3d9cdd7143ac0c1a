//! bbolt's on-disk structures: the page header, meta, bucket header and
//! branch/leaf elements, encoded and decoded with bounds checks.

use crate::{Error, Result};

pub const MAGIC: u32 = 0xED0C_DAED;
pub const VERSION: u32 = 2;
pub const DEFAULT_PAGE_SIZE: usize = 4096;

pub const HEADER: usize = 16;
pub const ELEMENT: usize = 16;
pub const BUCKET_HEADER: usize = 16;
/// Size of the meta struct after the page header (its checksum is the last 8 bytes).
pub const META: usize = 64;

pub const BRANCH: u16 = 0x01;
pub const LEAF: u16 = 0x02;
pub const META_PAGE: u16 = 0x04;
pub const FREELIST: u16 = 0x10;

/// A leaf element holding a nested bucket rather than a value.
pub const BUCKET_LEAF: u32 = 0x01;
/// The meta's freelist when the writer did not persist one (NoFreelistSync).
pub const NO_FREELIST: u64 = u64::MAX;

pub fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

impl Header {
    /// Needs `b.len() >= HEADER`.
    pub fn decode(b: &[u8]) -> Header {
        Header {
            id: u64_at(b, 0),
            flags: u16_at(b, 8),
            count: u16_at(b, 10),
            overflow: u32_at(b, 12),
        }
    }

    pub fn encode(&self, b: &mut [u8]) {
        put_u64(b, 0, self.id);
        put_u16(b, 8, self.flags);
        put_u16(b, 10, self.count);
        put_u32(b, 12, self.overflow);
    }
}

/// The database's root: where the root bucket and freelist are, how many
/// pages there are, which transaction wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub flags: u32,
    pub root: u64,
    pub sequence: u64,
    pub freelist: u64,
    /// The high-water mark: pages `0..pgid` are in use or free.
    pub pgid: u64,
    pub txid: u64,
}

/// FNV-1a, 64 bits: bbolt's meta checksum.
fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Meta {
    /// Decodes the meta struct of a meta page (`page` starts at its header).
    pub fn decode(page: &[u8]) -> Result<Meta> {
        if page.len() < HEADER + META {
            return Err(Error::NotBolt);
        }
        let m = &page[HEADER..HEADER + META];
        if u32_at(m, 0) != MAGIC {
            return Err(Error::NotBolt);
        }
        let version = u32_at(m, 4);
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let checksum = u64_at(m, 56);
        // bbolt accepts a zero checksum (files from before checksums).
        if checksum != 0 && checksum != fnv1a64(&m[..56]) {
            return Err(Error::Checksum);
        }
        Ok(Meta {
            page_size: u32_at(m, 8),
            flags: u32_at(m, 12),
            root: u64_at(m, 16),
            sequence: u64_at(m, 24),
            freelist: u64_at(m, 32),
            pgid: u64_at(m, 40),
            txid: u64_at(m, 48),
        })
    }

    /// Writes meta page `id` (header and meta struct) into `page`.
    pub fn encode(&self, id: u64, page: &mut [u8]) {
        Header {
            id,
            flags: META_PAGE,
            count: 0,
            overflow: 0,
        }
        .encode(page);
        let m = &mut page[HEADER..HEADER + META];
        put_u32(m, 0, MAGIC);
        put_u32(m, 4, VERSION);
        put_u32(m, 8, self.page_size);
        put_u32(m, 12, self.flags);
        put_u64(m, 16, self.root);
        put_u64(m, 24, self.sequence);
        put_u64(m, 32, self.freelist);
        put_u64(m, 40, self.pgid);
        put_u64(m, 48, self.txid);
        let sum = fnv1a64(&m[..56]);
        put_u64(m, 56, sum);
    }
}

/// One element of a leaf page: a key and a value (or a nested bucket).
#[derive(Debug, Clone, Copy)]
pub struct LeafElement<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// The byte range an element points at, relative to the element itself, or
/// an error naming the page when it leaves the page.
fn span(page: &[u8], elem: usize, pos: u32, len: u64, id: u64) -> Result<(usize, usize)> {
    let start = elem as u64 + u64::from(pos);
    let end = start + len;
    if end > page.len() as u64 {
        return Err(Error::BadPage {
            id,
            what: format!("element points past the page end ({end} > {})", page.len()),
        });
    }
    Ok((start as usize, end as usize))
}

fn element_offset(page: &[u8], i: usize, id: u64) -> Result<usize> {
    let at = HEADER + i * ELEMENT;
    if at + ELEMENT > page.len() {
        return Err(Error::BadPage {
            id,
            what: "more elements than fit in the page".into(),
        });
    }
    Ok(at)
}

/// Element `i` of a leaf page (`page` is the whole page, overflow included).
pub fn leaf_element(page: &[u8], i: usize, id: u64) -> Result<LeafElement<'_>> {
    let at = element_offset(page, i, id)?;
    let flags = u32_at(page, at);
    let pos = u32_at(page, at + 4);
    let ksize = u64::from(u32_at(page, at + 8));
    let vsize = u64::from(u32_at(page, at + 12));
    let (k0, k1) = span(page, at, pos, ksize, id)?;
    let (_, v1) = span(page, at, pos, ksize + vsize, id)?;
    Ok(LeafElement {
        flags,
        key: &page[k0..k1],
        value: &page[k1..v1],
    })
}

/// The child page of element `i` of a branch page. Its key (the child's
/// first key) is only bounds-checked: readers check order on the leaves.
pub fn branch_child(page: &[u8], i: usize, id: u64) -> Result<u64> {
    let at = element_offset(page, i, id)?;
    let pos = u32_at(page, at);
    let ksize = u64::from(u32_at(page, at + 4));
    span(page, at, pos, ksize, id)?;
    Ok(u64_at(page, at + 8))
}

/// Bytes a page with these leaf elements needs.
pub fn leaf_size(items: usize, data: usize) -> usize {
    HEADER + items * ELEMENT + data
}

/// Encodes a leaf page holding `items` (flags, key, value) into a buffer of
/// whole pages; returns the buffer (its length is a multiple of `page_size`).
pub fn encode_leaf(id: u64, page_size: usize, items: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    let data: usize = items.iter().map(|(_, k, v)| k.len() + v.len()).sum();
    let mut buf = new_page(id, page_size, LEAF, items.len(), data);
    let mut off = HEADER + items.len() * ELEMENT;
    for (i, (flags, k, v)) in items.iter().enumerate() {
        let at = HEADER + i * ELEMENT;
        put_u32(&mut buf, at, *flags);
        put_u32(&mut buf, at + 4, (off - at) as u32);
        put_u32(&mut buf, at + 8, k.len() as u32);
        put_u32(&mut buf, at + 12, v.len() as u32);
        buf[off..off + k.len()].copy_from_slice(k);
        off += k.len();
        buf[off..off + v.len()].copy_from_slice(v);
        off += v.len();
    }
    buf
}

/// A zeroed page (with overflow pages) for `count` elements and `data`
/// bytes of keys and values, its header written.
fn new_page(id: u64, page_size: usize, flags: u16, count: usize, data: usize) -> Vec<u8> {
    let size = leaf_size(count, data);
    let mut buf = vec![0u8; size.div_ceil(page_size).max(1) * page_size];
    Header {
        id,
        flags,
        count: count as u16,
        overflow: (buf.len() / page_size - 1) as u32,
    }
    .encode(&mut buf);
    buf
}

/// Encodes a branch page over `children` (first key, page id).
pub fn encode_branch(id: u64, page_size: usize, children: &[(Vec<u8>, u64)]) -> Vec<u8> {
    let data: usize = children.iter().map(|(k, _)| k.len()).sum();
    let mut buf = new_page(id, page_size, BRANCH, children.len(), data);
    let mut off = HEADER + children.len() * ELEMENT;
    for (i, (k, child)) in children.iter().enumerate() {
        let at = HEADER + i * ELEMENT;
        put_u32(&mut buf, at, (off - at) as u32);
        put_u32(&mut buf, at + 4, k.len() as u32);
        put_u64(&mut buf, at + 8, *child);
        buf[off..off + k.len()].copy_from_slice(k);
        off += k.len();
    }
    buf
}

/// A bucket's header as stored in its parent's leaf: root page (0 for an
/// inline bucket, whose page follows the header) and sequence.
pub fn encode_bucket_header(root: u64, sequence: u64) -> [u8; BUCKET_HEADER] {
    let mut b = [0u8; BUCKET_HEADER];
    put_u64(&mut b, 0, root);
    put_u64(&mut b, 8, sequence);
    b
}

/// An empty freelist page.
pub fn encode_freelist(id: u64, page_size: usize) -> Vec<u8> {
    let mut buf = vec![0u8; page_size];
    Header {
        id,
        flags: FREELIST,
        count: 0,
        overflow: 0,
    }
    .encode(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_detects_damage() {
        let m = Meta {
            page_size: 4096,
            flags: 0,
            root: 3,
            sequence: 0,
            freelist: 2,
            pgid: 4,
            txid: 1,
        };
        let mut page = vec![0u8; 4096];
        m.encode(1, &mut page);
        assert_eq!(Meta::decode(&page).unwrap(), m);
        page[HEADER + 40] ^= 1;
        assert!(matches!(Meta::decode(&page), Err(Error::Checksum)));
        page[HEADER] ^= 1;
        assert!(matches!(Meta::decode(&page), Err(Error::NotBolt)));
    }

    #[test]
    fn leaf_elements_round_trip_and_stay_inside_the_page() {
        let items: Vec<(u32, &[u8], &[u8])> = vec![(0, b"a", b"1"), (0, b"bb", b"")];
        let mut page = encode_leaf(7, 4096, &items);
        assert_eq!(Header::decode(&page).count, 2);
        let e = leaf_element(&page, 1, 7).unwrap();
        assert_eq!((e.key, e.value), (&b"bb"[..], &b""[..]));
        // A value size pointing past the page is refused.
        page[HEADER + ELEMENT + 12..HEADER + ELEMENT + 16].copy_from_slice(&9999u32.to_le_bytes());
        assert!(matches!(
            leaf_element(&page, 1, 7),
            Err(Error::BadPage { id: 7, .. })
        ));
    }

    #[test]
    fn a_large_value_spills_into_overflow_pages() {
        let big = vec![9u8; 10_000];
        let items: Vec<(u32, &[u8], &[u8])> = vec![(0, b"k", &big)];
        let page = encode_leaf(5, 4096, &items);
        assert_eq!(page.len(), 3 * 4096);
        assert_eq!(Header::decode(&page).overflow, 2);
        assert_eq!(leaf_element(&page, 0, 5).unwrap().value, &big[..]);
    }

    #[test]
    fn fnv_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }
}
