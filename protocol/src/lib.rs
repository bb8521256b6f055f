//! Livepeer's language for lpt: wire messages, signatures, probabilistic-micropayment tickets, a
//! TicketBroker chain client and the broadcaster's bounded wire client ([`client`]).
//!
//! The crate is the single place where protocol facts (PROTOCOL.md) become code, so the node stack
//! and the probes cannot drift apart: both encode the same [`net`] messages, sign with the same
//! [`sig`] functions and settle through the same [`ticket`] and [`chain`] types. Everything that
//! parses a peer's bytes returns a typed error naming the offending field instead of panicking.

pub mod capabilities;
pub mod chain;
pub mod client;
pub mod fields;
pub mod headers;
pub mod key;
pub mod sig;
pub mod ticket;
pub mod tls;

/// Protobuf messages and gRPC stubs generated from `proto/net.proto` (package `net`).
///
/// Generated at build time by `protox` + `tonic-prost-build`; field numbers match go-livepeer so
/// the bytes interoperate.
#[allow(clippy::all, missing_docs)]
pub mod net {
    tonic::include_proto!("net");
}

pub use alloy::primitives::{Address, B256, U256};
