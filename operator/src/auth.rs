//! `spec.auth` in Kubernetes: root's password in a Secret, the one the
//! spec names or one the operator generates (owned by the cluster, so it
//! goes with it). Turning auth on and off is the controller's step.

use crate::crd::EtcdCluster;
use crate::names::ClusterNames;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use rand::distr::{Alphanumeric, SampleString};
use std::collections::BTreeMap;

const KEY: &str = "password";

/// What `spec.auth` came to in this reconcile.
#[derive(Debug, PartialEq, Eq)]
pub enum RootPassword {
    /// Auth not asked for: the operator leaves it as it is.
    NotManaged,
    /// Auth asked on (`true`) or off, with root's password.
    Ready { enabled: bool, password: String },
    /// The named Secret is missing or has no password (why).
    Missing(String),
}

/// The Secret with root's password, for a cluster with `spec.auth`.
pub fn root_secret(c: &EtcdCluster) -> Option<String> {
    let spec = c.spec.auth.as_ref()?;
    Some(
        spec.root_password_secret
            .clone()
            .unwrap_or_else(|| ClusterNames::of(c).root_secret()),
    )
}

pub async fn root_password(
    client: &Client,
    c: &EtcdCluster,
    names: &ClusterNames,
) -> Result<RootPassword, kube::Error> {
    let Some(spec) = &c.spec.auth else {
        return Ok(RootPassword::NotManaged);
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let password_in = |s: &Secret| -> Option<String> {
        let bytes = s.data.as_ref()?.get(KEY)?;
        let text = String::from_utf8(bytes.0.clone()).ok()?;
        (!text.is_empty()).then_some(text)
    };
    let ready = |password| RootPassword::Ready {
        enabled: spec.enabled,
        password,
    };
    if let Some(name) = &spec.root_password_secret {
        return Ok(match secrets.get_opt(name).await? {
            None => RootPassword::Missing(format!("Secret {name} not found")),
            Some(s) => match password_in(&s) {
                Some(p) => ready(p),
                None => RootPassword::Missing(format!("Secret {name} has no {KEY}")),
            },
        });
    }
    let name = names.root_secret();
    if let Some(p) = secrets.get_opt(&name).await?.as_ref().and_then(password_in) {
        return Ok(ready(p));
    }
    let password = Alphanumeric.sample_string(&mut rand::rng(), 32);
    let s = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(names.namespace.clone()),
            labels: Some(names.labels()),
            owner_references: c.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            KEY.to_string(),
            ByteString(password.clone().into_bytes()),
        )])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &s).await {
        Ok(_) => Ok(ready(password)),
        // Made by a reconcile that ran first: that one holds.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let s = secrets.get(&name).await?;
            Ok(password_in(&s).map_or_else(
                || RootPassword::Missing(format!("Secret {name} has no {KEY}")),
                ready,
            ))
        }
        Err(e) => Err(e),
    }
}
