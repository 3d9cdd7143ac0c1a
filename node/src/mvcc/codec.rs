//! How versions are encoded in the `events` table.

use ferrocd_proto::mvccpb::KeyValue;
use prost::Message;

const PUT: u8 = 0;
const TOMBSTONE: u8 = 1;

/// One version of a key: a put, or a delete (tombstone) carrying only the key
/// and its mod_revision, as etcd's delete events do.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub tombstone: bool,
    pub kv: KeyValue,
}

pub fn encode_record(tombstone: bool, kv: &KeyValue) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + kv.encoded_len());
    buf.push(if tombstone { TOMBSTONE } else { PUT });
    // Encoding into a Vec cannot fail: it grows as needed.
    kv.encode(&mut buf).ok();
    buf
}

pub fn decode_record(bytes: &[u8]) -> Result<Record, super::MvccError> {
    let (kind, rest) = bytes
        .split_first()
        .ok_or_else(|| super::MvccError::Storage("corrupt record: empty".into()))?;
    Ok(Record {
        tombstone: *kind == TOMBSTONE,
        kv: KeyValue::decode(rest)?,
    })
}

impl From<prost::DecodeError> for super::MvccError {
    fn from(e: prost::DecodeError) -> Self {
        super::MvccError::Storage(format!("corrupt record: {e}"))
    }
}
