//! The cluster's members as etcd reports them: raft membership (voters and
//! learners with their peer URLs) plus the attributes each member published
//! through the log (name, client URLs).

use super::Server;
use crate::apply::member_attributes_key;
use crate::proto::ferrocdpb::MemberAttributes;
use prost::Message;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl Server {
    /// Every member, by ID.
    pub fn members(&self) -> Vec<MemberView> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let view = self.store.read().ok();
        let mut out: Vec<MemberView> = membership
            .nodes()
            .map(|(id, node)| {
                let attrs = view
                    .as_ref()
                    .and_then(|v| v.state(&member_attributes_key(*id)).ok().flatten())
                    .and_then(|b| MemberAttributes::decode(b.as_slice()).ok());
                let (name, client_urls) = match attrs {
                    Some(a) => (a.name, a.client_urls),
                    None => (String::new(), Vec::new()),
                };
                MemberView {
                    id: *id,
                    name,
                    peer_urls: node.peer_urls.clone(),
                    client_urls,
                    is_learner: !voters.contains(id),
                }
            })
            .collect();
        out.sort_by_key(|m| m.id);
        out
    }

    pub fn is_learner(&self) -> bool {
        self.members()
            .iter()
            .any(|m| m.id == self.identity.member_id && m.is_learner)
    }
}
