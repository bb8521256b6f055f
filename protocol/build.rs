//! Compiles `proto/net.proto` with the pure-Rust `protox` compiler, so building needs no `protoc`
//! and downloads nothing; `tonic-prost-build` turns the descriptors into prost messages and tonic
//! client/server stubs in OUT_DIR.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/net.proto");
    println!("cargo:rerun-if-changed=build.rs");
    let descriptors = protox::compile(["net.proto"], ["proto"])?;
    tonic_prost_build::configure()
        // Ordered maps encode in key order, as go-livepeer's deterministic marshalling does, so
        // the same message is the same bytes on both sides.
        .btree_map(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
