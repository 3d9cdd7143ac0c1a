//! Compiles the etcd v3 API protos and ferrocd's peer protocol (written in
//! this project) with a vendored protoc, so a plain `cargo build` needs
//! nothing installed. The `client` and `server` features choose the stubs;
//! `json` adds serde impls for etcd's messages in grpc-gateway's mapping.
use std::path::PathBuf;

/// The packages etcd's JSON gateway speaks.
const JSON_PACKAGES: [&str; 5] = [
    ".mvccpb",
    ".authpb",
    ".etcdserverpb",
    ".v3lockpb",
    ".v3electionpb",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let protos = [
        "proto/etcd/api/mvccpb/kv.proto",
        "proto/etcd/api/authpb/auth.proto",
        "proto/etcd/api/etcdserverpb/rpc.proto",
        "proto/etcd/api/v3lockpb/v3lock.proto",
        "proto/etcd/api/v3electionpb/v3election.proto",
        "proto/ferrocd/internal.proto",
        "proto/ferrocd/peer.proto",
    ];
    let feature = |name: &str| std::env::var_os(format!("CARGO_FEATURE_{name}")).is_some();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out.join("descriptors.bin");
    tonic_prost_build::configure()
        .build_server(feature("SERVER"))
        .build_client(feature("CLIENT"))
        .file_descriptor_set_path(&descriptors)
        .compile_protos(&protos, &["proto"])?;
    if feature("JSON") {
        // grpc-gateway v1 as etcd 3.5 runs it: proto field names, unknown
        // fields ignored, defaults omitted, 64-bit integers as strings.
        pbjson_build::Builder::new()
            .register_descriptors(&std::fs::read(&descriptors)?)?
            .preserve_proto_field_names()
            .ignore_unknown_fields()
            .build(&JSON_PACKAGES)?;
    }
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
