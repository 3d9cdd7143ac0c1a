//! Prints a CRD as YAML: `crdgen` the EtcdCluster CRD, `crdgen etcdbackup`
//! the EtcdBackup CRD (CI compares them with crds/*.yaml).
use kube::CustomResourceExt;

fn main() {
    let which = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "etcdcluster".into());
    let crd = match which.as_str() {
        "etcdcluster" => ferrocd_operator::crd::EtcdCluster::crd(),
        "etcdbackup" => ferrocd_operator::crd::EtcdBackup::crd(),
        other => {
            eprintln!("crdgen: unknown resource {other:?} (etcdcluster or etcdbackup)");
            std::process::exit(2);
        }
    };
    match serde_yaml::to_string(&crd) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("crdgen: {e}");
            std::process::exit(1);
        }
    }
}
