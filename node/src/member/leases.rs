//! Leases as clients see them: new lease IDs, and keep-alives and
//! time-to-live answered by the leader (which alone runs expiry); grants
//! and revocations are writes and go through the proposer.

use super::leadership::Leadership;
use super::RequestError;
use crate::lease::Lessor;
use crate::peer::Forwarder;
use crate::watch::WatchHub;
use ferrocd_proto::etcdserverpb::{
    LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct Leases {
    lessor: Arc<Lessor>,
    leadership: Arc<Leadership>,
    forwarder: Arc<Forwarder>,
    hub: Arc<WatchHub>,
    lease_ids: AtomicU64,
}

impl Leases {
    pub(super) fn new(
        lessor: Arc<Lessor>,
        leadership: Arc<Leadership>,
        forwarder: Arc<Forwarder>,
        hub: Arc<WatchHub>,
    ) -> Leases {
        Leases {
            lessor,
            leadership,
            forwarder,
            hub,
            lease_ids: AtomicU64::new(super::id_seed()),
        }
    }

    /// A new lease ID: etcd's generator (member ID's low 16 bits, then a
    /// time-seeded counter), skipping IDs in use.
    pub fn next_lease_id(&self) -> i64 {
        let prefix = (self.leadership.member_id() & 0xffff) << 48;
        loop {
            let suffix = self.lease_ids.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1);
            let id = ((prefix | suffix) & (i64::MAX as u64)) as i64;
            if id != 0 && !self.lessor.exists(id) {
                return id;
            }
        }
    }

    /// Every lease this member knows.
    /// The keys attached to a lease (auth checks them).
    pub fn keys(&self, id: i64) -> Vec<Vec<u8>> {
        self.lessor.keys(id)
    }

    pub fn ids(&self) -> Vec<i64> {
        self.lessor.ids()
    }

    /// A keep-alive: the leader restarts the lease's deadline (TTL 0: no such lease).
    pub async fn renew(&self, id: i64) -> Result<LeaseKeepAliveResponse, RequestError> {
        if self.leadership.is_leader() {
            return Ok(self.renew_here(id));
        }
        self.leadership
            .on_leader(|url| async move { self.forwarder.lease_renew(&url, id).await })
            .await
    }

    pub fn renew_here(&self, id: i64) -> LeaseKeepAliveResponse {
        LeaseKeepAliveResponse {
            header: Some(self.leadership.header(self.hub.rev())),
            id,
            ttl: self.lessor.keep_alive(id).unwrap_or(0),
        }
    }

    /// A lease's remaining TTL, as the leader (which runs expiry) sees it.
    pub async fn time_to_live(
        &self,
        r: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, RequestError> {
        if self.leadership.is_leader() {
            return Ok(self.time_to_live_here(&r));
        }
        self.leadership
            .on_leader(|url| async move { self.forwarder.lease_time_to_live(&url, r).await })
            .await
    }

    pub fn time_to_live_here(&self, r: &LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse {
        let header = Some(self.leadership.header(self.hub.rev()));
        match self.lessor.time_to_live(r.id) {
            Some(info) => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: info.remaining_ttl,
                granted_ttl: info.granted_ttl,
                keys: if r.keys { info.keys } else { Vec::new() },
            },
            // etcd answers an unknown lease with TTL -1, not an error.
            None => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                ..Default::default()
            },
        }
    }
}
