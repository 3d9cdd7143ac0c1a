//! Deterministic apply: each log entry (an `InternalRequest`) runs against the
//! MVCC store and the lease table, producing a response and watch events.
//! Given the same entries in the same order, every member ends in the same
//! state. A batch of entries is applied in one redb transaction and committed
//! with one fsync.

pub mod auth;
pub mod kv;
pub mod machine;

use crate::auth::{AuthState, AuthStore};
use crate::lease::{Lessor, MAX_LEASE_TTL};
use crate::mvcc::store::{META_APPLIED_INDEX, META_COMPACT_REV, META_REV};
use crate::mvcc::{KeyRange, MvccError, Store, TxnWrite, WriteTables};
use ferrocd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType,
    CompactionRequest, CompactionResponse, DeleteRangeResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutResponse, TxnResponse,
};
use ferrocd_proto::ferrocdpb::{
    apply_result, internal_request::Request, ApplyResult, AuthResult, InternalRequest, LeaseRecord,
    MemberAttributes,
};
use ferrocd_proto::mvccpb::Event;
use kv::header;
use prost::Message;
use std::sync::Arc;

/// A client-visible reason a request was refused during apply.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ApplyError {
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    #[error("requested lease not found")]
    LeaseNotFound,
    #[error("lease already exists")]
    LeaseExists,
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("key not found")]
    KeyNotFound,
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// A CORRUPT alarm is raised: etcd refuses writes, compactions and
    /// lease changes until it is disarmed.
    #[error("corrupt cluster")]
    Corrupt,
    /// An auth rule refused the request.
    #[error(transparent)]
    Refused(#[from] ferrocd_proto::errors::EtcdError),
}

/// The state-table key of the auth store's record.
pub const AUTH_STATE_KEY: &str = "auth";

/// The response to one applied entry.
#[derive(Debug, Clone)]
pub enum EntryResponse {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Alarm(AlarmResponse),
    MemberAttributes(MemberAttributes),
    Auth(AuthResult),
}

impl From<EntryResponse> for ApplyResult {
    fn from(r: EntryResponse) -> Self {
        use apply_result::Result as R;
        let result = match r {
            EntryResponse::Put(x) => R::Put(x),
            EntryResponse::DeleteRange(x) => R::DeleteRange(x),
            EntryResponse::Txn(x) => R::Txn(x),
            EntryResponse::Compaction(x) => R::Compaction(x),
            EntryResponse::LeaseGrant(x) => R::LeaseGrant(x),
            EntryResponse::LeaseRevoke(x) => R::LeaseRevoke(x),
            EntryResponse::Alarm(x) => R::Alarm(x),
            EntryResponse::MemberAttributes(x) => R::MemberAttributes(x),
            EntryResponse::Auth(x) => R::Auth(x),
        };
        ApplyResult {
            result: Some(result),
            applied_index: 0,
        }
    }
}

impl EntryResponse {
    /// The response a forwarded proposal's result stands for.
    pub fn from_wire(r: ApplyResult) -> Option<EntryResponse> {
        use apply_result::Result as R;
        Some(match r.result? {
            R::Put(x) => EntryResponse::Put(x),
            R::DeleteRange(x) => EntryResponse::DeleteRange(x),
            R::Txn(x) => EntryResponse::Txn(x),
            R::Compaction(x) => EntryResponse::Compaction(x),
            R::LeaseGrant(x) => EntryResponse::LeaseGrant(x),
            R::LeaseRevoke(x) => EntryResponse::LeaseRevoke(x),
            R::Alarm(x) => EntryResponse::Alarm(x),
            R::MemberAttributes(x) => EntryResponse::MemberAttributes(x),
            R::Auth(x) => EntryResponse::Auth(x),
        })
    }
}

/// The key under which a member's published attributes are stored.
pub fn member_attributes_key(id: u64) -> String {
    format!("member.{id:016x}")
}

/// One log entry to apply: its index, and the request (none for entries
/// that only the log layer interprets, such as membership changes).
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub index: u64,
    pub request: Option<InternalRequest>,
}

/// What a batch produced: one result per entry (none where the entry held
/// no request), and the events of each new revision in order.
#[derive(Debug, Default)]
pub struct AppliedBatch {
    pub results: Vec<Option<Result<EntryResponse, ApplyError>>>,
    pub events: Vec<(i64, Vec<Event>)>,
}

/// The state machine.
pub struct Applier {
    store: Store,
    lessor: Arc<Lessor>,
    auth: Arc<AuthStore>,
    rev: i64,
    compact_rev: i64,
    applied_index: u64,
    alarms: Raised,
}

/// The alarms that change what apply accepts, as raised in the store.
#[derive(Debug, Clone, Copy, Default)]
struct Raised {
    /// NOSPACE: puts, txns with puts and lease grants are refused.
    nospace: bool,
    /// CORRUPT: every write, compaction and lease change is refused.
    corrupt: bool,
}

impl Raised {
    fn or(self, other: Raised) -> Raised {
        Raised {
            nospace: self.nospace || other.nospace,
            corrupt: self.corrupt || other.corrupt,
        }
    }

    fn from(alarms: &[(u64, i32)]) -> Raised {
        let raised = |alarm: AlarmType| alarms.iter().any(|(_, a)| *a == alarm as i32);
        Raised {
            nospace: raised(AlarmType::Nospace),
            corrupt: raised(AlarmType::Corrupt),
        }
    }
}

impl Applier {
    /// Loads the applied state from the store and rebuilds the lease table
    /// and the auth store.
    pub fn open(
        store: Store,
        lessor: Arc<Lessor>,
        auth: Arc<AuthStore>,
    ) -> Result<Applier, MvccError> {
        let view = store.read()?;
        let auth_state = match view.state(AUTH_STATE_KEY)? {
            Some(bytes) => AuthState::decode(&bytes)?,
            None => AuthState::default(),
        };
        auth.publish(auth_state);
        for (id, bytes) in view.leases()? {
            let rec = LeaseRecord::decode(bytes.as_slice())?;
            lessor.grant(id, rec.ttl);
        }
        for (key, lease) in view.keys_with_leases()? {
            lessor.attach(lease, &key);
        }
        let alarms = Raised::from(&view.alarms()?);
        Ok(Applier {
            rev: view.rev,
            compact_rev: view.compact_rev,
            applied_index: view.applied_index,
            alarms,
            store,
            lessor,
            auth,
        })
    }

    pub fn rev(&self) -> i64 {
        self.rev
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Applies `entries` in order in one transaction, together with whatever
    /// `also` writes (the raft layer records its applied state there). The
    /// commit is lazy (no fsync): the raft log is the durable record, and
    /// after a crash openraft replays what the store lost. An `Err` means
    /// storage failed and nothing was applied.
    pub fn apply_batch(
        &mut self,
        entries: &[LogEntry],
        also: impl FnOnce(&mut WriteTables<'_>) -> Result<(), MvccError>,
    ) -> Result<AppliedBatch, MvccError> {
        let store = self.store.clone();
        let saved = (self.rev, self.compact_rev, self.applied_index, self.alarms);
        let result = store.write_lazy(|t| {
            let mut out = AppliedBatch::default();
            for entry in entries {
                self.applied_index = entry.index;
                let Some(request) = &entry.request else {
                    out.results.push(None);
                    continue;
                };
                let r = self.apply_one(t, entry.index, request, &mut out.events);
                if let Err(ApplyError::Mvcc(MvccError::Storage(e))) = r {
                    return Err(MvccError::Storage(e));
                }
                out.results.push(Some(r));
            }
            t.set_meta(META_REV, self.rev as u64)?;
            t.set_meta(META_COMPACT_REV, self.compact_rev as u64)?;
            t.set_meta(META_APPLIED_INDEX, self.applied_index)?;
            also(t)?;
            Ok(out)
        });
        if result.is_err() {
            (self.rev, self.compact_rev, self.applied_index, self.alarms) = saved;
        }
        result
    }

    fn apply_one(
        &mut self,
        t: &mut WriteTables<'_>,
        index: u64,
        entry: &InternalRequest,
        events: &mut Vec<(i64, Vec<Event>)>,
    ) -> Result<EntryResponse, ApplyError> {
        let Some(req) = &entry.request else {
            return Err(MvccError::Storage("empty log entry".into()).into());
        };
        let who = auth::sender(entry.header.as_ref());
        if self.auth.enabled() {
            if let Some(who) = &who {
                let lessor = &self.lessor;
                auth::check_write(&self.auth.state(), &|id| lessor.keys(id), who, req)?;
            }
        }
        let refused_when_corrupt = matches!(
            req,
            Request::Put(_)
                | Request::DeleteRange(_)
                | Request::Txn(_)
                | Request::Compaction(_)
                | Request::LeaseGrant(_)
                | Request::LeaseRevoke(_)
        );
        if self.alarms.corrupt && refused_when_corrupt {
            return Err(ApplyError::Corrupt);
        }
        match req {
            Request::Put(p) => {
                if self.alarms.nospace {
                    return Err(ApplyError::NoSpace);
                }
                self.write(t, events, |w, l| kv::put_top(w, l, p))
                    .map(EntryResponse::Put)
            }
            Request::DeleteRange(d) => self
                .write(t, events, |w, l| kv::delete_range(w, l, d))
                .map(EntryResponse::DeleteRange),
            Request::Txn(x) => {
                if self.alarms.nospace && kv::quota_cost_txn(x) > 0 {
                    return Err(ApplyError::NoSpace);
                }
                self.write(t, events, |w, l| kv::txn_write(w, l, x))
                    .map(EntryResponse::Txn)
            }
            Request::Compaction(c) => self.compact(t, c).map(EntryResponse::Compaction),
            Request::LeaseGrant(g) => self.lease_grant(t, g).map(EntryResponse::LeaseGrant),
            Request::LeaseRevoke(r) => self
                .lease_revoke(t, r, events)
                .map(EntryResponse::LeaseRevoke),
            Request::Alarm(a) => self.alarm(t, a).map(EntryResponse::Alarm),
            Request::MemberAttributes(m) => {
                t.set_state(&member_attributes_key(m.id), &m.encode_to_vec())?;
                Ok(EntryResponse::MemberAttributes(m.clone()))
            }
            Request::Auth(a) => {
                let state = self.auth.state();
                let applied = auth::apply(&state, self.auth.tokens(), who.as_ref(), a, index)?;
                if let Some(new) = applied.new_state {
                    t.set_state(AUTH_STATE_KEY, &new.encode())?;
                    self.auth.publish(new);
                }
                Ok(EntryResponse::Auth(applied.result))
            }
        }
    }

    /// Runs `f` as one write transaction; on success its changes become the
    /// next revision.
    fn write<T>(
        &mut self,
        t: &mut WriteTables<'_>,
        events: &mut Vec<(i64, Vec<Event>)>,
        f: impl FnOnce(&mut TxnWrite, &Lessor) -> Result<T, ApplyError>,
    ) -> Result<T, ApplyError> {
        let mut w = TxnWrite::new(t, self.rev, self.compact_rev);
        let out = f(&mut w, &self.lessor)?;
        let (rev, evs) = w.finish();
        if !evs.is_empty() {
            self.rev = rev;
            events.push((rev, evs));
        }
        Ok(out)
    }

    fn compact(
        &mut self,
        t: &mut WriteTables<'_>,
        c: &CompactionRequest,
    ) -> Result<CompactionResponse, ApplyError> {
        if c.revision <= self.compact_rev {
            return Err(MvccError::Compacted.into());
        }
        if c.revision > self.rev {
            return Err(MvccError::FutureRev.into());
        }
        crate::mvcc::write::compact(t, c.revision)?;
        self.compact_rev = c.revision;
        Ok(CompactionResponse {
            header: header(self.rev),
        })
    }

    fn lease_grant(
        &mut self,
        t: &mut WriteTables<'_>,
        g: &LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, ApplyError> {
        if self.alarms.nospace {
            return Err(ApplyError::NoSpace);
        }
        if g.ttl > MAX_LEASE_TTL {
            return Err(ApplyError::LeaseTtlTooLarge);
        }
        if self.lessor.exists(g.id) {
            return Err(ApplyError::LeaseExists);
        }
        let ttl = self.lessor.effective_ttl(g.ttl);
        let rec = LeaseRecord {
            id: g.id,
            ttl,
            remaining_ttl: 0,
        };
        t.put_lease(g.id, &rec.encode_to_vec())?;
        self.lessor.grant(g.id, ttl);
        Ok(LeaseGrantResponse {
            header: header(self.rev),
            id: g.id,
            ttl,
            error: String::new(),
        })
    }

    fn lease_revoke(
        &mut self,
        t: &mut WriteTables<'_>,
        r: &LeaseRevokeRequest,
        events: &mut Vec<(i64, Vec<Event>)>,
    ) -> Result<LeaseRevokeResponse, ApplyError> {
        if !self.lessor.exists(r.id) {
            return Err(ApplyError::LeaseNotFound);
        }
        t.delete_lease(r.id)?;
        let keys = self.lessor.revoke(r.id).unwrap_or_default();
        // All attached keys go in one revision, in key order.
        self.write(t, events, |w, _| {
            for k in &keys {
                w.delete_range(&KeyRange::Single(k.clone()))?;
            }
            Ok(())
        })?;
        Ok(LeaseRevokeResponse {
            header: header(self.rev),
        })
    }

    fn alarm(
        &mut self,
        t: &mut WriteTables<'_>,
        a: &AlarmRequest,
    ) -> Result<AlarmResponse, ApplyError> {
        let member = AlarmMember {
            member_id: a.member_id,
            alarm: a.alarm,
        };
        let mut alarms = Vec::new();
        match AlarmAction::try_from(a.action) {
            Ok(AlarmAction::Activate) if a.alarm != AlarmType::None as i32 => {
                t.raise_alarm(a.member_id, a.alarm)?;
                let was_corrupt = self.alarms.corrupt;
                self.alarms = Raised::from(&[(a.member_id, a.alarm)]).or(self.alarms);
                if self.alarms.corrupt && !was_corrupt {
                    tracing::warn!(
                        alarm = "CORRUPT",
                        from = %format!("{:x}", a.member_id),
                        "alarm raised"
                    );
                }
                alarms.push(member);
            }
            Ok(AlarmAction::Deactivate) => {
                if t.clear_alarm(a.member_id, a.alarm)? {
                    alarms.push(member);
                }
                // Writes stay refused while any member still has one raised.
                self.alarms = Raised {
                    nospace: t.has_alarm(AlarmType::Nospace as i32)?,
                    corrupt: t.has_alarm(AlarmType::Corrupt as i32)?,
                };
            }
            _ => {}
        }
        Ok(AlarmResponse {
            header: header(self.rev),
            alarms,
        })
    }
}
