//! kestra-operator: Kestra flows, key-value entries and namespace files as Kubernetes resources.

#![forbid(unsafe_code)]

pub mod adapters;
pub mod config;
pub mod crd;
pub mod engine;
pub mod instances;
pub mod kestra;
pub mod metrics;
pub mod operator;
pub mod server;
pub mod webhook;
