//! `medic check`'s cache of whole-tree results, so that re-checking a tree that did not
//! change (a CI job's second step, a pre-commit hook, `watch medic check`) costs a hash of
//! the sources instead of a check (note 024).
//!
//! The check is cross-file (a rule names a playbook in another file), so what is cached is
//! the result for the whole set of files: its key is a SHA-256 of the binary's identity
//! (path, size and modification time of the running executable, so a rebuilt `medic` never
//! reads its predecessor's answers), the output format, and every file's name and text. An
//! entry holds the rendered output and the error and warning counts. Human output with
//! diagnostics is not stored: miette renders it for the terminal it finds, which a later run
//! may not share; such a tree is checked again (it is the one being edited).
//!
//! The cache is best-effort: a folder that cannot be written, an entry that cannot be read
//! or does not parse, all mean a miss and a full check, never a different answer. Entries
//! are one small file each under `<dir>/check/`; beyond [`KEEP`] the oldest go.

use medic_compiler::Source;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// How many trees' results are kept.
const KEEP: usize = 64;

/// What a check of one tree printed and found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cached {
    pub output: String,
    pub errors: usize,
    pub warnings: usize,
}

pub struct CheckCache {
    folder: PathBuf,
    identity: String,
}

impl CheckCache {
    /// The cache in `MEDIC_CACHE_DIR`, else `$XDG_CACHE_HOME/medic`, else `~/.cache/medic`;
    /// `None` when none of them is set or the running binary cannot be identified.
    pub fn open() -> Option<CheckCache> {
        let base = std::env::var_os("MEDIC_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|dir| Path::new(&dir).join("medic")))
            .or_else(|| {
                std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache").join("medic"))
            })?;
        let executable = std::env::current_exe().ok()?;
        let metadata = std::fs::metadata(&executable).ok()?;
        let modified = metadata
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        let identity = format!(
            "{} {} {} {}",
            env!("CARGO_PKG_VERSION"),
            executable.display(),
            metadata.len(),
            modified.as_nanos()
        );
        Some(CheckCache {
            folder: base.join("check"),
            identity,
        })
    }

    /// The key of a tree's result in one output format.
    pub fn key(&self, format: &str, sources: &[Source]) -> String {
        let mut hasher = Sha256::new();
        // Every part is length-prefixed, so no two different trees hash the same text.
        let mut part = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        part(self.identity.as_bytes());
        part(format.as_bytes());
        for source in sources {
            part(source.name.as_bytes());
            part(source.text.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    pub fn get(&self, key: &str) -> Option<Cached> {
        let text = std::fs::read(self.folder.join(format!("{key}.json"))).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Stores a result (written to a temporary file and renamed, so a reader never sees half
    /// of one), then trims the folder to [`KEEP`] entries. Failures are ignored: the next
    /// check misses.
    pub fn put(&self, key: &str, cached: &Cached) {
        let Ok(text) = serde_json::to_vec(cached) else {
            return;
        };
        if std::fs::create_dir_all(&self.folder).is_err() {
            return;
        }
        let temporary = self
            .folder
            .join(format!(".{key}.{}.tmp", std::process::id()));
        if std::fs::write(&temporary, text).is_err()
            || std::fs::rename(&temporary, self.folder.join(format!("{key}.json"))).is_err()
        {
            let _ = std::fs::remove_file(&temporary);
            return;
        }
        self.trim();
    }

    fn trim(&self) {
        let Ok(entries) = std::fs::read_dir(&self.folder) else {
            return;
        };
        let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json"))
            .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
            .collect();
        if found.len() <= KEEP {
            return;
        }
        found.sort();
        for (_, path) in found.iter().take(found.len() - KEEP) {
            let _ = std::fs::remove_file(path);
        }
    }
}
