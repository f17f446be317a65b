//! `--state-file`: the whole store as JSON, loaded at start and replaced after each write.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::store::Store;

/// Loads the store; a missing file is an empty store (the first run).
pub fn load(path: &Path) -> anyhow::Result<Store> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("state file {} is not valid", path.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Store::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read state file {}", path.display())),
    }
}

/// Writes a sibling temporary file and renames it over the state file, so a crash or a
/// concurrent reader never sees half a state.
pub fn save(path: &Path, store: &Store) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(store).context("cannot serialize the state")?;
    let tmp = temp_path(path);
    let mut file =
        fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_a_missing_file() {
        let dir = std::env::temp_dir().join(format!("kestra-fake-persist-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let _ = fs::remove_file(&path);
        assert!(load(&path).unwrap().tenants.is_empty());

        let mut store = Store::default();
        store.tenant_mut("main");
        save(&path, &store).unwrap();
        assert!(load(&path).unwrap().tenants.contains_key("main"));
        assert!(!temp_path(&path).exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
