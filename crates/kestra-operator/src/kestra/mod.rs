//! The one Kestra API client (`kestra-api.md`): nothing else speaks HTTP to Kestra.

mod error;
mod files;
mod flows;
mod kv;
mod server;
mod transport;
mod types;

pub use error::{KestraError, Unavailability, error_message};
pub use kv::KvWrite;
pub use server::{Dialect, ServerInfo};
pub use transport::{Auth, CaBundle, ClientConfig, KestraClient};
pub use types::{FileStat, Flow, FlowSummary, FlowValidation, KvEntry, KvRead, KvSummary};
