//! The one Kestra API client (`kestra-api.md`): nothing else speaks HTTP to Kestra.

mod client;
mod error;
mod types;

pub use client::{Auth, ClientConfig, KestraClient, Secret};
pub use error::{KestraError, error_message};
pub use types::{FileStat, Flow, FlowSummary, KvEntry, KvRead, KvSummary};
