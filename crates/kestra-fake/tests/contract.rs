//! Contract tests: the double against `shared/kestra-api.md`, one test per table row, plus the
//! cross-cutting behaviour (auth, roots, error formats, tenants, persistence) and the hooks.
//! Each test starts its own double in-process on 127.0.0.1:0.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

#[path = "contract/common.rs"]
mod common;
#[path = "contract/cross.rs"]
mod cross;
#[path = "contract/files.rs"]
mod files;
#[path = "contract/flows.rs"]
mod flows;
#[path = "contract/hooks.rs"]
mod hooks;
#[path = "contract/kv.rs"]
mod kv;
#[path = "contract/replay.rs"]
mod replay;
#[path = "contract/replay_all.rs"]
mod replay_all;
#[path = "contract/transcripts.rs"]
mod transcripts;
