//! The three kind adapters: each builds, observes, compares, writes and deletes one kind.

pub mod flow;
pub mod flow_source;
pub mod kv;
pub mod kv_encoding;
mod listing;
pub mod nsfile;
pub mod paths;
#[cfg(test)]
pub(crate) mod test_support;

pub use flow::FlowAdapter;
pub use kv::KeyValueAdapter;
pub use nsfile::NamespaceFileAdapter;
