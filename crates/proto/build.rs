//! Compiles the etcd v3 API protos and ferrocd's peer protocol (written in
//! this project) with a vendored protoc, so a plain `cargo build` needs
//! nothing installed. The `client` and `server` features choose the stubs.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let protos = [
        "proto/etcd/api/mvccpb/kv.proto",
        "proto/etcd/api/authpb/auth.proto",
        "proto/etcd/api/etcdserverpb/rpc.proto",
        "proto/ferrocd/internal.proto",
        "proto/ferrocd/peer.proto",
    ];
    let feature = |name: &str| std::env::var_os(format!("CARGO_FEATURE_{name}")).is_some();
    tonic_prost_build::configure()
        .build_server(feature("SERVER"))
        .build_client(feature("CLIENT"))
        .compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
