//! TLS material of a cluster in Kubernetes: for `OperatorManaged`, the CA
//! Secret (made once) and the member certificate Secret (issued, reissued
//! when names or CA change or expiry nears; members reload the files
//! without a restart); for `UserSecrets`, the user's two Secrets. Either way
//! it yields the identity the operator uses to reach the members.

use crate::crd::{EtcdCluster, TlsMode};
use crate::membership::ClientTls;
use crate::names::{ClusterNames, MANAGER};
use crate::pki::{self, Ca, Pair};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Pki(#[from] pki::PkiError),
}

/// What the cluster's TLS settings came to in this reconcile.
#[derive(Debug, PartialEq, Eq)]
pub enum TlsState {
    Disabled,
    /// Members have their certificates; the operator dials with this.
    Ready {
        client: ClientTls,
        issued: bool,
    },
    /// Something the user must provide is missing (the reason).
    Missing(String),
}

const OPERATOR_CN: &str = "ferrocd-operator";

fn text(s: &Secret, key: &str) -> Option<String> {
    let bytes = s.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

fn secret(c: &EtcdCluster, names: &ClusterNames, name: String, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(names.namespace.clone()),
            labels: Some(names.labels()),
            owner_references: c.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

/// Makes sure the cluster's certificates exist and are current.
pub async fn ensure(
    client: &Client,
    c: &EtcdCluster,
    names: &ClusterNames,
) -> Result<TlsState, TlsError> {
    let Some(spec) = c.spec.tls.as_ref() else {
        return Ok(TlsState::Disabled);
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    match spec.mode {
        TlsMode::Disabled => Ok(TlsState::Disabled),
        TlsMode::UserSecrets => {
            let Some(given) = spec.secrets.as_ref() else {
                return Ok(TlsState::Missing("tls.secrets is not set".into()));
            };
            if secrets.get_opt(&given.peer).await?.is_none() {
                return Ok(TlsState::Missing(format!(
                    "Secret {} not found",
                    given.peer
                )));
            }
            let Some(s) = secrets.get_opt(&given.client).await? else {
                return Ok(TlsState::Missing(format!(
                    "Secret {} not found",
                    given.client
                )));
            };
            match (text(&s, "ca.crt"), text(&s, "tls.crt"), text(&s, "tls.key")) {
                (Some(ca_pem), Some(cert_pem), Some(key_pem)) => Ok(TlsState::Ready {
                    client: ClientTls {
                        ca_pem,
                        cert_pem,
                        key_pem,
                    },
                    issued: false,
                }),
                _ => Ok(TlsState::Missing(format!(
                    "Secret {} needs tls.crt, tls.key and ca.crt",
                    given.client
                ))),
            }
        }
        TlsMode::OperatorManaged => {
            let ca = ensure_ca(&secrets, c, names).await?;
            let want = names.certificate_names();
            let issued = keep_issued(
                &secrets,
                c,
                names,
                &ca,
                &names.tls_secret(),
                |cert| pki::subject_alt_names(cert).is_ok_and(|n| n == want),
                || ca.issue_member(&names.name, &want),
            )
            .await?;
            for wanted in &spec.client_secrets {
                let cn = wanted.common_name();
                keep_issued(
                    &secrets,
                    c,
                    names,
                    &ca,
                    &wanted.name,
                    |cert| pki::common_name(cert).as_deref() == Some(cn),
                    || ca.issue_user(cn),
                )
                .await?;
            }
            let me = ca.issue_client(OPERATOR_CN)?;
            Ok(TlsState::Ready {
                client: ClientTls {
                    ca_pem: ca.pair.cert_pem.clone(),
                    cert_pem: me.cert_pem,
                    key_pem: me.key_pem,
                },
                issued,
            })
        }
    }
}

/// Keeps Secret `name` holding a certificate from `ca` that `fits` (its
/// names or its CN) and is not near expiry; issues one with `issue` when
/// it is missing, from another CA, for other names, or expiring. Whether
/// it issued.
async fn keep_issued(
    secrets: &Api<Secret>,
    c: &EtcdCluster,
    names: &ClusterNames,
    ca: &Ca,
    name: &str,
    fits: impl Fn(&str) -> bool,
    issue: impl FnOnce() -> Result<Pair, pki::PkiError>,
) -> Result<bool, TlsError> {
    let current = secrets.get_opt(name).await?;
    let valid = current.as_ref().is_some_and(|s| {
        let (Some(cert), Some(_key), Some(ca_pem)) =
            (text(s, "tls.crt"), text(s, "tls.key"), text(s, "ca.crt"))
        else {
            return false;
        };
        ca_pem == ca.pair.cert_pem
            && pki::signed_by(&cert, &ca.pair.cert_pem)
            && fits(&cert)
            && !pki::expires_within(&cert, pki::RENEW_BEFORE)
    });
    if valid {
        return Ok(false);
    }
    let pair = issue()?;
    let s = secret(
        c,
        names,
        name.to_string(),
        &[
            ("tls.crt", &pair.cert_pem),
            ("tls.key", &pair.key_pem),
            ("ca.crt", &ca.pair.cert_pem),
        ],
    );
    secrets
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&s),
        )
        .await?;
    Ok(true)
}

/// The cluster's CA, made and stored on first use.
async fn ensure_ca(
    secrets: &Api<Secret>,
    c: &EtcdCluster,
    names: &ClusterNames,
) -> Result<Ca, TlsError> {
    if let Some(s) = secrets.get_opt(&names.ca_secret()).await? {
        if let (Some(cert_pem), Some(key_pem)) = (text(&s, "tls.crt"), text(&s, "tls.key")) {
            return Ok(Ca::from_pair(Pair { cert_pem, key_pem })?);
        }
    }
    let ca = Ca::generate(&names.name)?;
    let s = secret(
        c,
        names,
        names.ca_secret(),
        &[
            ("tls.crt", &ca.pair.cert_pem),
            ("tls.key", &ca.pair.key_pem),
        ],
    );
    match secrets.create(&PostParams::default(), &s).await {
        Ok(_) => Ok(ca),
        // Another reconcile made it first: use that one.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let s = secrets.get(&names.ca_secret()).await?;
            match (text(&s, "tls.crt"), text(&s, "tls.key")) {
                (Some(cert_pem), Some(key_pem)) => Ok(Ca::from_pair(Pair { cert_pem, key_pem })?),
                _ => Ok(ca),
            }
        }
        Err(e) => Err(e.into()),
    }
}
