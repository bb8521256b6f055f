//! Compiles `proto/net.proto` with the pure-Rust `protox` compiler, so building needs no `protoc`
//! and downloads nothing; `tonic-prost-build` turns the descriptors into prost messages and tonic
//! client/server stubs in OUT_DIR.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/net.proto");
    let descriptors = protox::compile(["net.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
