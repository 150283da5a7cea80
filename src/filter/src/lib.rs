//! The Portcullis proxy-wasm filter. Every decision lives in plain Rust
//! modules that are unit-tested natively; `plugin` is the only module that
//! talks to the proxy, and it is built for wasm only.

pub mod browser;
pub mod cache;
pub mod config;
pub mod decision;
#[cfg(any(test, feature = "fake-host"))]
pub mod fake_host;
pub mod flow;
pub mod invalid;
pub mod path;
pub mod policy;
pub mod poller;
pub mod request;
pub mod routing;
pub mod stats;

#[cfg(target_arch = "wasm32")]
mod plugin;
