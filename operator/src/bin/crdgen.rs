//! Prints the EtcdCluster CRD as YAML (CI compares it with crds/etcdcluster.yaml).
use kube::CustomResourceExt;

fn main() -> Result<(), serde_yaml::Error> {
    let crd = ferrocd_operator::crd::EtcdCluster::crd();
    print!("{}", serde_yaml::to_string(&crd)?);
    Ok(())
}
