//! Any bytes a client sends as a Range, Put, DeleteRange or Txn request
//! are decoded and validated without a panic, and a transaction accepted
//! by validation holds no more operations than the limit.
#![no_main]

use ferrocd_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};
use ferrocd_proto::validate;
use prost::Message;

/// etcd's default `--max-txn-ops`.
const MAX_OPS: usize = 128;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(r) = RangeRequest::decode(data) {
        let _ = validate::range(&r);
    }
    if let Ok(r) = PutRequest::decode(data) {
        let _ = validate::put(&r);
    }
    if let Ok(r) = DeleteRangeRequest::decode(data) {
        let _ = validate::delete_range(&r);
    }
    if let Ok(t) = TxnRequest::decode(data) {
        if validate::txn(&t, MAX_OPS).is_ok() {
            assert!(t.success.len() <= MAX_OPS && t.failure.len() <= MAX_OPS);
        }
    }
});
