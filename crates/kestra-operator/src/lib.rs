//! kestra-operator: Kestra flows, key-value entries and namespace files as Kubernetes resources.

// No unsafe code but `memory`'s one call into glibc (`forbid` could not be lifted for it).
#![deny(unsafe_code)]

pub mod adapters;
pub mod config;
pub mod crd;
pub mod engine;
pub mod kestra;
#[allow(unsafe_code)]
pub mod memory;
pub mod metrics;
pub mod operator;
pub mod server;
