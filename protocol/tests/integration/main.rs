//! Integration tests of the `protocol` crate: wire bytes, signatures and tickets off chain, and
//! settlement on a real anvil chain with the committed contracts; L1 block reading against a fake
//! two-layer (Arbitrum-like) node.

mod abi;
mod artifacts;
mod chain;
mod go_livepeer;
mod grpc;
mod l1_blocks;
mod registry;
mod tickets;
mod wire;
mod wire_inputs;
