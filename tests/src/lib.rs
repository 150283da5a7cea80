//! The end-to-end harness: starts the companion, the echo upstream and the
//! real Envoy loading the freshly built `.wasm`, each on a free port, and
//! stops them all when dropped, failed test or not.

pub mod artifacts;
pub mod bench;
pub mod companion;
pub mod engines;
pub mod envoy;
pub mod node;
pub mod pki;
pub mod process;
pub mod raw;
pub mod severable;
pub mod stack;
pub mod tools;

pub use artifacts::Artifacts;
pub use companion::Companion;
pub use engines::ScratchEngines;
pub use envoy::Envoy;
pub use severable::Severable;
pub use stack::{Ports, Stack};
