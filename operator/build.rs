//! Generates the operator's etcd v3 API client from the same `.proto` files
//! the member serves (node/proto), with a vendored protoc: a plain
//! `cargo build` needs nothing installed, and the operator does not link the
//! whole member.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let protos = [
        "../node/proto/etcd/api/mvccpb/kv.proto",
        "../node/proto/etcd/api/authpb/auth.proto",
        "../node/proto/etcd/api/etcdserverpb/rpc.proto",
    ];
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_protos(&protos, &["../node/proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
