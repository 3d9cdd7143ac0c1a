//! The shipped manifests agree with the code and with Kubernetes' schemas:
//! crds/*.yaml are what `crdgen` prints, and deploy/manifests.py
//! check passes (helm lint, chart CRD, deploy/operator.yaml fresh,
//! kubernetes-validate --strict for 1.33, examples against the CRD schema).
// Tests fail by panicking: unwrap and expect are how they say what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kube::CustomResourceExt;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn crd_files_are_what_crdgen_prints() {
    for (file, crd, arg) in [
        (
            "crds/etcdcluster.yaml",
            ferrocd_operator::crd::EtcdCluster::crd(),
            "",
        ),
        (
            "crds/etcdbackup.yaml",
            ferrocd_operator::crd::EtcdBackup::crd(),
            " etcdbackup",
        ),
    ] {
        let generated = serde_yaml::to_string(&crd).expect("yaml");
        let text = std::fs::read_to_string(root().join(file)).expect(file);
        assert!(
            generated == text,
            "{file} is stale: cargo run -p ferrocd-operator --bin crdgen --{arg} > {file} \
             && cp {file} charts/ferrocd-operator/crds/ && python3 deploy/manifests.py render"
        );
    }
}

#[test]
fn manifests_lint_render_and_validate() {
    let out = Command::new("python3")
        .arg(root().join("deploy/manifests.py"))
        .arg("check")
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "deploy/manifests.py check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"problems\": 0"));
}
