//! The embedded stack: a local chain, orchestrators, transcoders and a broadcaster, each a child
//! process of `lpt`, on loopback ports of their own choosing.

pub mod embedded;
pub mod link;
pub mod storage;
pub mod supervisor;

pub use embedded::{EmbeddedStack, Endpoints, StackOptions};
pub use supervisor::Child;
