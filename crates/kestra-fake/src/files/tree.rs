//! A namespace's files as a tree of directories and revisioned files, without I/O.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("Forbidden path: {0}")]
    Forbidden(String),
    #[error("Invalid path: {0}")]
    InvalidPath(String),
    #[error("File should be accessed with their full path and not using relative '..' path.")]
    RelativePath,
    #[error("File not found: {0}")]
    NotFound(String),
    #[error("Directory not found: {0}")]
    DirectoryNotFound(String),
    #[error("Path is a directory: {0}")]
    IsDirectory(String),
    #[error("Path is a file, not a directory: {0}")]
    NotADirectory(String),
    #[error("File already exists: {0}")]
    AlreadyExists(String),
    #[error("Cannot move {0} into itself")]
    IntoItself(String),
}

/// Normalises a decoded path: leading `/`, no empty or `.` segments, no trailing `/`.
/// `..` is refused rather than resolved, and `/_flows` is forbidden on every route.
pub fn normalize(raw: &str) -> Result<String, FileError> {
    let mut segments = Vec::new();
    for segment in raw.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(FileError::RelativePath),
            s => segments.push(s),
        }
    }
    let path = format!("/{}", segments.join("/"));
    if path == "/_flows" || path.starts_with("/_flows/") {
        return Err(FileError::Forbidden(path));
    }
    Ok(path)
}

/// The parent of a normalised path (`/` has none).
fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// The stored bytes, as base64 in the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text)
            .map(Blob)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeKind {
    Directory,
    /// Every revision, oldest first; revision N is `revisions[N - 1]`.
    File {
        revisions: Vec<Blob>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    pub kind: NodeKind,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

/// The files of one namespace, keyed by normalised path. The root `/` is implicit.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct FileTree {
    nodes: BTreeMap<String, Node>,
}

impl FileTree {
    /// Direct and indirect descendants of `dir`, in path order.
    fn descendants<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a Node)> {
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
    }

    fn is_dir(&self, path: &str) -> bool {
        path == "/"
            || matches!(self.nodes.get(path), Some(n) if matches!(n.kind, NodeKind::Directory))
    }

    /// Creates the missing ancestors of `path` (not `path` itself).
    fn ensure_parents(&mut self, path: &str, now: DateTime<Utc>) -> Result<(), FileError> {
        let mut ancestors = Vec::new();
        let mut current = parent(path);
        while let Some(dir) = current.filter(|d| *d != "/") {
            ancestors.push(dir.to_owned());
            current = parent(dir);
        }
        for dir in ancestors.into_iter().rev() {
            match self.nodes.get(&dir) {
                Some(Node {
                    kind: NodeKind::File { .. },
                    ..
                }) => return Err(FileError::NotADirectory(dir)),
                Some(_) => {}
                None => {
                    self.nodes.insert(
                        dir,
                        Node {
                            kind: NodeKind::Directory,
                            created: now,
                            modified: now,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Writes a file, creating its parents; an existing file gets a new revision.
    pub fn put_file(
        &mut self,
        path: &str,
        bytes: Vec<u8>,
        now: DateTime<Utc>,
    ) -> Result<(), FileError> {
        if path == "/" || self.is_dir(path) {
            return Err(FileError::IsDirectory(path.to_owned()));
        }
        self.ensure_parents(path, now)?;
        match self.nodes.get_mut(path) {
            Some(Node {
                kind: NodeKind::File { revisions },
                modified,
                ..
            }) => {
                revisions.push(Blob(bytes));
                *modified = now;
            }
            _ => {
                self.nodes.insert(
                    path.to_owned(),
                    Node {
                        kind: NodeKind::File {
                            revisions: vec![Blob(bytes)],
                        },
                        created: now,
                        modified: now,
                    },
                );
            }
        }
        Ok(())
    }

    pub fn make_dir(&mut self, path: &str, now: DateTime<Utc>) -> Result<(), FileError> {
        if path == "/" || self.is_dir(path) {
            return Ok(());
        }
        if self.nodes.contains_key(path) {
            return Err(FileError::NotADirectory(path.to_owned()));
        }
        self.ensure_parents(path, now)?;
        self.nodes.insert(
            path.to_owned(),
            Node {
                kind: NodeKind::Directory,
                created: now,
                modified: now,
            },
        );
        Ok(())
    }

    /// Kestra 1.3's mkdir: over a file it leaves a new, empty directory in the file's place,
    /// and under a missing parent it creates nothing that can be listed.
    pub fn make_dir_1_3(&mut self, path: &str, now: DateTime<Utc>) -> Result<(), FileError> {
        if path == "/" || self.is_dir(path) {
            return Ok(());
        }
        if parent(path).is_some_and(|p| !self.is_dir(p)) {
            return Ok(());
        }
        self.nodes.insert(
            path.to_owned(),
            Node {
                kind: NodeKind::Directory,
                created: now,
                modified: now,
            },
        );
        Ok(())
    }

    /// The content of a file at a revision (the latest when `None`).
    pub fn content(&self, path: &str, revision: Option<usize>) -> Result<&[u8], FileError> {
        let not_found = || FileError::NotFound(path.to_owned());
        match self.nodes.get(path) {
            Some(Node {
                kind: NodeKind::File { revisions },
                ..
            }) => {
                let blob = match revision {
                    None => revisions.last(),
                    Some(n) => n.checked_sub(1).and_then(|i| revisions.get(i)),
                };
                blob.map(|b| b.0.as_slice()).ok_or_else(not_found)
            }
            Some(_) => Err(FileError::IsDirectory(path.to_owned())),
            None => Err(not_found()),
        }
    }

    /// How many revisions a file has.
    pub fn revision_count(&self, path: &str) -> Result<usize, FileError> {
        match self.nodes.get(path) {
            Some(Node {
                kind: NodeKind::File { revisions },
                ..
            }) => Ok(revisions.len()),
            Some(_) => Err(FileError::IsDirectory(path.to_owned())),
            None => Err(FileError::NotFound(path.to_owned())),
        }
    }

    /// Every file with its latest content, in path order.
    pub fn files(&self) -> Vec<(&str, &[u8])> {
        self.nodes
            .iter()
            .filter_map(|(path, node)| match &node.kind {
                NodeKind::File { revisions } => revisions
                    .last()
                    .map(|blob| (path.as_str(), blob.0.as_slice())),
                NodeKind::Directory => None,
            })
            .collect()
    }

    pub fn stat(&self, path: &str, now: DateTime<Utc>) -> Result<Value, FileError> {
        if path == "/" {
            // The root always exists; Kestra creates it on first look.
            let created = self.nodes.values().map(|n| n.created).min().unwrap_or(now);
            let modified = self.nodes.values().map(|n| n.modified).max().unwrap_or(now);
            // Kestra names the root after its storage folder.
            return Ok(stat_json("_files", "Directory", 0, created, modified));
        }
        let node = self
            .nodes
            .get(path)
            .ok_or_else(|| FileError::NotFound(path.to_owned()))?;
        Ok(node_stat(path, node))
    }

    /// The direct children of a directory in creation order, as Kestra lists them; a file has
    /// none.
    pub fn children(&self, dir: &str) -> Result<Vec<Value>, FileError> {
        if self.nodes.contains_key(dir) && !self.is_dir(dir) {
            return Ok(Vec::new());
        }
        if !self.is_dir(dir) {
            return Err(FileError::DirectoryNotFound(dir.to_owned()));
        }
        let depth = if dir == "/" {
            1
        } else {
            dir.matches('/').count() + 1
        };
        let mut children: Vec<(&String, &Node)> = self
            .descendants(dir)
            .filter(|(k, _)| k.matches('/').count() == depth)
            .collect();
        children.sort_by(|(ka, a), (kb, b)| (a.created, ka).cmp(&(b.created, kb)));
        Ok(children.into_iter().map(|(k, n)| node_stat(k, n)).collect())
    }

    /// Deletes a file or a directory with its content, then the parents left empty.
    /// Returns whether anything was there.
    pub fn delete(&mut self, path: &str) -> bool {
        let doomed: Vec<String> = self
            .descendants(path)
            .map(|(k, _)| k.clone())
            .chain(self.nodes.contains_key(path).then(|| path.to_owned()))
            .collect();
        if doomed.is_empty() {
            return false;
        }
        for key in doomed {
            self.nodes.remove(&key);
        }
        let mut current = parent(path);
        while let Some(dir) = current.filter(|d| *d != "/") {
            if self.descendants(dir).next().is_some() {
                break;
            }
            self.nodes.remove(dir);
            current = parent(dir);
        }
        true
    }

    /// Moves a file or a directory (with its content and revisions), creating the parents of
    /// the destination.
    pub fn move_path(&mut self, from: &str, to: &str, now: DateTime<Utc>) -> Result<(), FileError> {
        if from == "/" || !self.nodes.contains_key(from) {
            return Err(FileError::NotFound(from.to_owned()));
        }
        if to == from || to.starts_with(&format!("{from}/")) {
            return Err(FileError::IntoItself(from.to_owned()));
        }
        if to == "/" || self.nodes.contains_key(to) {
            return Err(FileError::AlreadyExists(to.to_owned()));
        }
        self.ensure_parents(to, now)?;
        let moved: Vec<String> = std::iter::once(from.to_owned())
            .chain(self.descendants(from).map(|(k, _)| k.clone()))
            .collect();
        for old in moved {
            if let Some(mut node) = self.nodes.remove(&old) {
                node.modified = now;
                let new = format!("{to}{}", &old[from.len()..]);
                self.nodes.insert(new, node);
            }
        }
        Ok(())
    }
}

fn node_stat(path: &str, node: &Node) -> Value {
    match &node.kind {
        NodeKind::Directory => {
            stat_json(file_name(path), "Directory", 0, node.created, node.modified)
        }
        NodeKind::File { revisions } => {
            let size = revisions.last().map_or(0, |b| b.0.len());
            stat_json(file_name(path), "File", size, node.created, node.modified)
        }
    }
}

fn stat_json(
    name: &str,
    kind: &str,
    size: usize,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
) -> Value {
    json!({
        "fileName": name,
        "type": kind,
        "size": size,
        "creationTime": created.timestamp_millis(),
        "lastModifiedTime": modified.timestamp_millis(),
        "metadata": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalize("a/b.txt").unwrap(), "/a/b.txt");
        assert_eq!(normalize("//a/./b/").unwrap(), "/a/b");
        assert_eq!(normalize("").unwrap(), "/");
        assert_eq!(normalize("/a b+c.txt").unwrap(), "/a b+c.txt");
        assert!(matches!(normalize("/a/../b"), Err(FileError::RelativePath)));
        assert_eq!(
            normalize("/_flows/x.yml"),
            Err(FileError::Forbidden("/_flows/x.yml".into()))
        );
        assert!(normalize("/_flows").is_err());
        assert_eq!(normalize("/_flowsx").unwrap(), "/_flowsx");
    }

    #[test]
    fn upload_creates_parents_and_revisions() {
        let mut tree = FileTree::default();
        tree.put_file("/a/b/c.txt", b"one".to_vec(), now()).unwrap();
        tree.put_file("/a/b/c.txt", b"two".to_vec(), now()).unwrap();
        assert!(tree.is_dir("/a") && tree.is_dir("/a/b"));
        assert_eq!(tree.content("/a/b/c.txt", None).unwrap(), b"two");
        assert_eq!(tree.content("/a/b/c.txt", Some(1)).unwrap(), b"one");
        assert!(tree.content("/a/b/c.txt", Some(3)).is_err());
        assert_eq!(
            tree.put_file("/a/b/c.txt/d", vec![], now()),
            Err(FileError::NotADirectory("/a/b/c.txt".into()))
        );
        assert_eq!(
            tree.put_file("/a", vec![], now()),
            Err(FileError::IsDirectory("/a".into()))
        );
    }

    #[test]
    fn children_are_direct_only() {
        let mut tree = FileTree::default();
        tree.put_file("/a/b/c.txt", vec![1], now()).unwrap();
        tree.put_file("/a/d.txt", vec![1, 2], now()).unwrap();
        tree.put_file("/ab.txt", vec![], now()).unwrap();
        let names = |dir| -> Vec<String> {
            tree.children(dir)
                .unwrap()
                .iter()
                .map(|v| v["fileName"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(names("/"), vec!["a", "ab.txt"]);
        assert_eq!(names("/a"), vec!["b", "d.txt"]);
        assert!(tree.children("/zz").is_err());
        assert!(
            tree.children("/a/d.txt").unwrap().is_empty(),
            "a file has no children"
        );
    }

    #[test]
    fn delete_is_recursive_and_cascades_upward() {
        let mut tree = FileTree::default();
        tree.put_file("/a/b/c.txt", vec![], now()).unwrap();
        tree.put_file("/x/keep.txt", vec![], now()).unwrap();
        tree.put_file("/x/y/z.txt", vec![], now()).unwrap();
        assert!(tree.delete("/a/b/c.txt"));
        assert!(!tree.is_dir("/a"), "empty parents are deleted");
        assert!(tree.delete("/x/y"));
        assert!(tree.is_dir("/x"), "a parent with other content stays");
        assert!(!tree.delete("/missing"));
        assert!(tree.delete("/"), "the root empties the namespace");
        assert!(tree.children("/").unwrap().is_empty());
    }

    #[test]
    fn move_carries_content() {
        let mut tree = FileTree::default();
        tree.put_file("/a/f.txt", b"1".to_vec(), now()).unwrap();
        tree.move_path("/a", "/b/c", now()).unwrap();
        assert_eq!(tree.content("/b/c/f.txt", None).unwrap(), b"1");
        assert!(tree.content("/a/f.txt", None).is_err());
        assert!(tree.move_path("/b", "/b/c/d", now()).is_err());
        assert!(tree.move_path("/nope", "/x", now()).is_err());
    }
}
