//! Pods' volumes: claim directories that outlive the pod, Secrets written
//! as files (and refreshed when they change), emptyDirs.

use super::*;

impl Agent {
    /// Claim directories whose claim was deleted go too (a lost volume).
    pub(super) async fn collect_claims(&self) -> Result<(), kube::Error> {
        let claims: Api<PersistentVolumeClaim> = Api::all(self.client.clone());
        let list = claims.list(&ListParams::default()).await?.items;
        let live: Vec<PathBuf> = list.iter().filter_map(|c| self.dir_of(c)).collect();
        let Ok(namespaces) = std::fs::read_dir(self.config.root.join("claims")) else {
            return Ok(());
        };
        for ns in namespaces.flatten() {
            for claim in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                if !live.contains(&claim.path()) {
                    let _ = std::fs::remove_dir_all(claim.path());
                }
            }
        }
        Ok(())
    }

    /// The directory of a pod's claim, made when first mounted. A claim
    /// that does not exist yet keeps the pod waiting, as in a real cluster.
    pub(super) async fn claim_dir(&self, ns: &str, claim: &str) -> Result<PathBuf, String> {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let c = claims
            .get(claim)
            .await
            .map_err(|e| format!("PersistentVolumeClaim {claim}: {e}"))?;
        self.dir_of(&c)
            .ok_or_else(|| format!("PersistentVolumeClaim {claim} has no UID"))
    }

    /// Keyed by the claim's UID: a claim deleted and created again under the
    /// same name gets an empty volume, as a new PersistentVolume would be,
    /// even when the old directory has not been collected yet.
    fn dir_of(&self, c: &PersistentVolumeClaim) -> Option<PathBuf> {
        Some(
            self.config
                .root
                .join("claims")
                .join(c.metadata.namespace.as_deref()?)
                .join(format!(
                    "{}-{}",
                    c.metadata.name.as_deref()?,
                    c.metadata.uid.as_deref()?
                )),
        )
    }

    pub(super) async fn write_secret(
        &self,
        ns: &str,
        secret: &str,
        dir: &Path,
    ) -> Result<(), String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let s = api
            .get(secret)
            .await
            .map_err(|e| format!("Secret {secret}: {e}"))?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        for (k, v) in s.data.unwrap_or_default() {
            let path = dir.join(&k);
            if std::fs::read(&path).ok().as_deref() == Some(&v.0[..]) {
                continue;
            }
            // Replace atomically, as the kubelet's symlink swap does.
            let tmp = dir.join(format!(".{k}.tmp"));
            std::fs::write(&tmp, &v.0).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Rewrites a pod's Secret volumes from the API (certificate renewal).
    pub(super) async fn refresh_secrets(&self, uid: &str, pod: &Pod) {
        let dir = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.pods.get(uid).map(|p| p.dir.clone()));
        let Some(dir) = dir else { return };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        for v in pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default()
        {
            if let Some(secret) = v.secret.and_then(|s| s.secret_name) {
                let _ = self
                    .write_secret(&ns, &secret, &dir.join("secrets").join(&v.name))
                    .await;
            }
        }
    }
}
