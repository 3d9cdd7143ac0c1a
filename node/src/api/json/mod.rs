//! etcd's JSON gateway on the client URLs: `/v3/kv/range` and the other
//! paths etcd 3.5's grpc-gateway serves, each a call of the gRPC service
//! behind it (made in-process through [`Upstream`]), with grpc-gateway's
//! JSON mapping, streams and errors.

mod body;
mod stream;

use super::upstream::Upstream;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{any, post, MethodRouter};
use axum::Router;
use ferrocd_proto::etcdserverpb as pb;
use ferrocd_proto::{v3electionpb as el, v3lockpb as lk};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Request;

pub use body::CORS;

/// Bodies up to this size are always read (and answered as etcd does).
const MIN_BODY_LIMIT: usize = 64 << 20;

/// What every gateway handler holds: the gRPC services, and how large a
/// body may be.
#[derive(Clone)]
pub struct Gateway {
    up: Upstream,
    /// Larger than any body of a message the gRPC limit lets through
    /// (base64 grows bytes by a third), so the gRPC answer decides, as in
    /// etcd; a body past it is refused unread (413) instead of filling
    /// memory.
    max_body: usize,
}

/// The gateway's routes; `upstream` is the member's gRPC router, which
/// takes messages up to `max_message` bytes.
pub fn router(upstream: Upstream, max_message: usize) -> Router {
    let gateway = Gateway {
        up: upstream,
        max_body: max_message.saturating_mul(2).max(MIN_BODY_LIMIT),
    };
    Router::new()
        .route(
            "/v3/kv/range",
            unary::<pb::RangeRequest, pb::RangeResponse>("/etcdserverpb.KV/Range"),
        )
        .route(
            "/v3/kv/put",
            unary::<pb::PutRequest, pb::PutResponse>("/etcdserverpb.KV/Put"),
        )
        .route(
            "/v3/kv/deleterange",
            unary::<pb::DeleteRangeRequest, pb::DeleteRangeResponse>(
                "/etcdserverpb.KV/DeleteRange",
            ),
        )
        .route(
            "/v3/kv/txn",
            unary::<pb::TxnRequest, pb::TxnResponse>("/etcdserverpb.KV/Txn"),
        )
        .route(
            "/v3/kv/compaction",
            unary::<pb::CompactionRequest, pb::CompactionResponse>("/etcdserverpb.KV/Compact"),
        )
        .route("/v3/watch", gateway_route(post(stream::watch)))
        .merge(lease_routes())
        .merge(cluster_routes())
        .merge(maintenance_routes())
        .merge(auth_routes())
        .route(
            "/v3/lock/lock",
            unary::<lk::LockRequest, lk::LockResponse>("/v3lockpb.Lock/Lock"),
        )
        .route(
            "/v3/lock/unlock",
            unary::<lk::UnlockRequest, lk::UnlockResponse>("/v3lockpb.Lock/Unlock"),
        )
        .merge(election_routes())
        .route(
            "/v3/{*rest}",
            any(|| async { body::text(StatusCode::NOT_FOUND) }),
        )
        .layer(DefaultBodyLimit::max(gateway.max_body))
        .with_state(gateway)
}

fn lease_routes() -> Router<Gateway> {
    let grant =
        || unary::<pb::LeaseGrantRequest, pb::LeaseGrantResponse>("/etcdserverpb.Lease/LeaseGrant");
    let revoke = || {
        unary::<pb::LeaseRevokeRequest, pb::LeaseRevokeResponse>("/etcdserverpb.Lease/LeaseRevoke")
    };
    let ttl = || {
        unary::<pb::LeaseTimeToLiveRequest, pb::LeaseTimeToLiveResponse>(
            "/etcdserverpb.Lease/LeaseTimeToLive",
        )
    };
    let leases = || {
        unary::<pb::LeaseLeasesRequest, pb::LeaseLeasesResponse>("/etcdserverpb.Lease/LeaseLeases")
    };
    Router::new()
        .route("/v3/lease/grant", grant())
        .route("/v3/lease/revoke", revoke())
        .route("/v3/kv/lease/revoke", revoke())
        .route(
            "/v3/lease/keepalive",
            gateway_route(post(stream::keep_alive)),
        )
        .route("/v3/lease/timetolive", ttl())
        .route("/v3/kv/lease/timetolive", ttl())
        .route("/v3/lease/leases", leases())
        .route("/v3/kv/lease/leases", leases())
}

fn cluster_routes() -> Router<Gateway> {
    Router::new()
        .route(
            "/v3/cluster/member/add",
            unary::<pb::MemberAddRequest, pb::MemberAddResponse>("/etcdserverpb.Cluster/MemberAdd"),
        )
        .route(
            "/v3/cluster/member/remove",
            unary::<pb::MemberRemoveRequest, pb::MemberRemoveResponse>(
                "/etcdserverpb.Cluster/MemberRemove",
            ),
        )
        .route(
            "/v3/cluster/member/update",
            unary::<pb::MemberUpdateRequest, pb::MemberUpdateResponse>(
                "/etcdserverpb.Cluster/MemberUpdate",
            ),
        )
        .route(
            "/v3/cluster/member/list",
            unary::<pb::MemberListRequest, pb::MemberListResponse>(
                "/etcdserverpb.Cluster/MemberList",
            ),
        )
        .route(
            "/v3/cluster/member/promote",
            unary::<pb::MemberPromoteRequest, pb::MemberPromoteResponse>(
                "/etcdserverpb.Cluster/MemberPromote",
            ),
        )
}

fn maintenance_routes() -> Router<Gateway> {
    Router::new()
        .route(
            "/v3/maintenance/alarm",
            unary::<pb::AlarmRequest, pb::AlarmResponse>("/etcdserverpb.Maintenance/Alarm"),
        )
        .route(
            "/v3/maintenance/status",
            unary::<pb::StatusRequest, pb::StatusResponse>("/etcdserverpb.Maintenance/Status"),
        )
        .route(
            "/v3/maintenance/defragment",
            unary::<pb::DefragmentRequest, pb::DefragmentResponse>(
                "/etcdserverpb.Maintenance/Defragment",
            ),
        )
        // etcd maps Hash and HashKV to one path; the first, Hash, wins.
        .route(
            "/v3/maintenance/hash",
            unary::<pb::HashRequest, pb::HashResponse>("/etcdserverpb.Maintenance/Hash"),
        )
        .route(
            "/v3/maintenance/snapshot",
            gateway_route(post(stream::snapshot)),
        )
        .route(
            "/v3/maintenance/transfer-leadership",
            unary::<pb::MoveLeaderRequest, pb::MoveLeaderResponse>(
                "/etcdserverpb.Maintenance/MoveLeader",
            ),
        )
        .route(
            "/v3/maintenance/downgrade",
            unary::<pb::DowngradeRequest, pb::DowngradeResponse>(
                "/etcdserverpb.Maintenance/Downgrade",
            ),
        )
}

fn auth_routes() -> Router<Gateway> {
    macro_rules! auth {
        ($router:expr, $($path:literal => $method:literal, $req:ident, $resp:ident;)*) => {
            $router$(.route(
                concat!("/v3/auth/", $path),
                unary::<pb::$req, pb::$resp>(concat!("/etcdserverpb.Auth/", $method)),
            ))*
        };
    }
    auth!(Router::new(),
        "enable" => "AuthEnable", AuthEnableRequest, AuthEnableResponse;
        "disable" => "AuthDisable", AuthDisableRequest, AuthDisableResponse;
        "status" => "AuthStatus", AuthStatusRequest, AuthStatusResponse;
        "authenticate" => "Authenticate", AuthenticateRequest, AuthenticateResponse;
        "user/add" => "UserAdd", AuthUserAddRequest, AuthUserAddResponse;
        "user/get" => "UserGet", AuthUserGetRequest, AuthUserGetResponse;
        "user/list" => "UserList", AuthUserListRequest, AuthUserListResponse;
        "user/delete" => "UserDelete", AuthUserDeleteRequest, AuthUserDeleteResponse;
        "user/changepw" => "UserChangePassword", AuthUserChangePasswordRequest, AuthUserChangePasswordResponse;
        "user/grant" => "UserGrantRole", AuthUserGrantRoleRequest, AuthUserGrantRoleResponse;
        "user/revoke" => "UserRevokeRole", AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse;
        "role/add" => "RoleAdd", AuthRoleAddRequest, AuthRoleAddResponse;
        "role/get" => "RoleGet", AuthRoleGetRequest, AuthRoleGetResponse;
        "role/list" => "RoleList", AuthRoleListRequest, AuthRoleListResponse;
        "role/delete" => "RoleDelete", AuthRoleDeleteRequest, AuthRoleDeleteResponse;
        "role/grant" => "RoleGrantPermission", AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse;
        "role/revoke" => "RoleRevokePermission", AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse;
    )
}

fn election_routes() -> Router<Gateway> {
    Router::new()
        .route(
            "/v3/election/campaign",
            unary::<el::CampaignRequest, el::CampaignResponse>("/v3electionpb.Election/Campaign"),
        )
        .route(
            "/v3/election/proclaim",
            unary::<el::ProclaimRequest, el::ProclaimResponse>("/v3electionpb.Election/Proclaim"),
        )
        .route(
            "/v3/election/leader",
            unary::<el::LeaderRequest, el::LeaderResponse>("/v3electionpb.Election/Leader"),
        )
        .route("/v3/election/observe", gateway_route(post(stream::observe)))
        .route(
            "/v3/election/resign",
            unary::<el::ResignRequest, el::ResignResponse>("/v3electionpb.Election/Resign"),
        )
}

/// POST only, as grpc-gateway registers them; OPTIONS gets etcd's CORS
/// answer, other methods "Method Not Allowed".
fn gateway_route(route: MethodRouter<Gateway>) -> MethodRouter<Gateway> {
    route
        .options(|| async { body::text(StatusCode::OK) })
        .fallback(|| async { body::text(StatusCode::METHOD_NOT_ALLOWED) })
}

fn unary<Req, Resp>(grpc_path: &'static str) -> MethodRouter<Gateway>
where
    Req: prost::Message + Default + DeserializeOwned + Send + Sync + 'static,
    Resp: prost::Message + Default + Serialize + Send + Sync + 'static,
{
    gateway_route(post(
        move |State(g): State<Gateway>, headers: HeaderMap, raw: Bytes| async move {
            let msg: Req = match body::decode(&raw) {
                Ok(m) => m,
                Err(text) => return body::error(&tonic::Status::invalid_argument(text)),
            };
            match g
                .up
                .unary::<Req, Resp>(grpc_path, request(msg, &headers))
                .await
            {
                Ok(resp) => body::ok(&resp),
                Err(status) => body::error(&status),
            }
        },
    ))
}

/// A gRPC request with the metadata grpc-gateway forwards: the
/// `Authorization` header and `Grpc-Metadata-*` headers.
fn request<T>(msg: T, headers: &HeaderMap) -> Request<T> {
    let mut req = Request::new(msg);
    for (name, value) in headers {
        let key = if name == http::header::AUTHORIZATION {
            "authorization"
        } else if let Some(k) = name.as_str().strip_prefix("grpc-metadata-") {
            k
        } else {
            continue;
        };
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_bytes()),
        ) {
            req.metadata_mut().insert(k, v);
        }
    }
    req
}

/// For the health and version endpoints: the same CORS headers as etcd.
pub async fn add_cors(mut resp: Response) -> Response {
    for (k, v) in CORS {
        resp.headers_mut()
            .entry(k)
            .or_insert(http::HeaderValue::from_static(v));
    }
    resp
}
