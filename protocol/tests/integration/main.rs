//! Integration tests of the `protocol` crate: wire bytes, signatures and tickets off chain, and
//! settlement on a real anvil chain with the committed contracts.

mod abi;
mod artifacts;
mod chain;
mod go_livepeer;
mod grpc;
mod registry;
mod tickets;
mod wire;
