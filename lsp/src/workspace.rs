//! The documents of a workspace and their analyses.
//!
//! Every `.ops` file under the workspace root is read at start; open documents replace the
//! disk text. An analysis ([`Snapshot`]) checks all files together, which is how a change in
//! one file reaches the diagnostics of the files that use its playbooks. The standard
//! library is written once to a cache directory so that "go to definition" on `k8s.scale`
//! opens a real file.
//!
//! Documents and analysed files carry a `LineIndex` built with their text, so that position
//! conversions never rescan a text (see `position.rs`).

use crate::position::Lines;
use medic_compiler::parser::ParseCache;
use medic_compiler::{Analysis, FileId, LineIndex, Source};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower_lsp::lsp_types::Url;

/// What an analysis is made of, taken from the workspace under its lock.
#[derive(Debug)]
pub struct Inputs {
    pub sources: Vec<Source>,
    /// The URI of every file the analysis will hold, in `FileId` order.
    pub uris: Vec<Url>,
    /// The editor's version of each open document, as the sources hold it.
    pub versions: BTreeMap<Url, i32>,
}

/// One analysis of the whole workspace, with the URI of every file it holds.
#[derive(Debug)]
pub struct Snapshot {
    pub analysis: Analysis,
    /// Indexed by `FileId`: the standard library files first, then the documents.
    pub uris: Vec<Url>,
    /// The editor's version of each open document in this analysis; diagnostics are
    /// published with it so that a client (and a test) can tell them from stale ones.
    versions: BTreeMap<Url, i32>,
    /// Indexed by `FileId`, built from the texts `analysis` holds.
    line_indexes: Vec<LineIndex>,
}

impl Snapshot {
    /// Checks all sources together, reusing unchanged item parses from `cache`.
    pub fn build(inputs: Inputs, cache: &mut ParseCache) -> Snapshot {
        let Inputs {
            sources,
            uris,
            versions,
        } = inputs;
        let analysis = medic_compiler::check_cached(sources, cache);
        let line_indexes = analysis
            .files
            .iter()
            .map(|file| LineIndex::new(&file.text))
            .collect();
        Snapshot {
            analysis,
            uris,
            versions,
            line_indexes,
        }
    }
    pub fn file_id(&self, uri: &Url) -> Option<FileId> {
        self.uris
            .iter()
            .position(|candidate| candidate == uri)
            .map(|index| FileId(index as u32))
    }

    pub fn uri(&self, file: FileId) -> Option<&Url> {
        self.uris.get(file.0 as usize)
    }

    pub fn text(&self, file: FileId) -> &str {
        self.analysis
            .file(file)
            .map_or("", |file| file.text.as_str())
    }

    /// The text of a file with its line index, for position conversions.
    pub fn lines(&self, file: FileId) -> Option<Lines<'_>> {
        let text = self.analysis.file(file)?.text.as_str();
        let index = self.line_indexes.get(file.0 as usize)?;
        Some(Lines::new(text, index))
    }

    /// The version of an open document as this analysis saw it; `None` for files read from
    /// disk.
    pub fn version(&self, uri: &Url) -> Option<i32> {
        self.versions.get(uri).copied()
    }

    /// Whether the file parsed without syntax errors in this analysis.
    pub fn parsed_cleanly(&self, file: FileId) -> bool {
        self.analysis
            .file(file)
            .is_some_and(|file| !file.ast.has_syntax_errors)
    }
}

/// The text of a document and its line index; built only through [`Document::new`], so
/// that the two always agree.
#[derive(Debug, Clone)]
pub struct Document {
    text: String,
    index: LineIndex,
    /// The editor's version for open documents; `None` for files read from disk.
    pub version: Option<i32>,
}

impl Document {
    pub fn new(text: String, version: Option<i32>) -> Document {
        let index = LineIndex::new(&text);
        Document {
            text,
            index,
            version,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn lines(&self) -> Lines<'_> {
        Lines::new(&self.text, &self.index)
    }
}

/// All documents of the workspace, and the analyses made of them.
#[derive(Debug, Default)]
pub struct Workspace {
    pub documents: BTreeMap<Url, Document>,
    /// URIs of the standard library files, in `medic_compiler::STDLIB` order.
    pub std_uris: Vec<Url>,
    pub current: Option<Arc<Snapshot>>,
    /// Per document, the latest analysis in which it had no syntax errors.
    pub last_good: BTreeMap<Url, Arc<Snapshot>>,
}

impl Workspace {
    pub fn new(std_uris: Vec<Url>) -> Workspace {
        Workspace {
            std_uris,
            ..Workspace::default()
        }
    }

    /// Reads every `.ops` file under `root` that is not already open.
    pub fn load_directory(&mut self, root: &Path) {
        let walker = walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|entry| {
                let name = entry.file_name().to_string_lossy();
                entry.depth() == 0
                    || !(entry.file_type().is_dir()
                        && (name.starts_with('.') || name == "target" || name == "node_modules"))
            });
        for entry in walker.flatten() {
            if !entry.file_type().is_file()
                || entry.path().extension().is_none_or(|ext| ext != "ops")
            {
                continue;
            }
            let Ok(uri) = Url::from_file_path(entry.path()) else {
                continue;
            };
            if self.documents.contains_key(&uri) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                self.documents.insert(uri, Document::new(text, None));
            }
        }
    }

    /// What an analysis needs: the sources, the URI of every file it will hold, and the
    /// versions of the open documents. Taken under the lock; the analysis itself runs
    /// without it.
    pub fn inputs(&self) -> Inputs {
        let sources = self
            .documents
            .iter()
            .map(|(uri, document)| Source::new(display_name(uri), document.text.clone()))
            .collect();
        let mut uris = self.std_uris.clone();
        uris.extend(self.documents.keys().cloned());
        let versions = self
            .documents
            .iter()
            .filter_map(|(uri, document)| Some((uri.clone(), document.version?)))
            .collect();
        Inputs {
            sources,
            uris,
            versions,
        }
    }

    /// Checks all documents together (without a parse cache; for tests and tools).
    pub fn analyze(&self) -> Snapshot {
        Snapshot::build(self.inputs(), &mut ParseCache::default())
    }

    /// Installs a new analysis and remembers it for the documents that parsed cleanly.
    pub fn install(&mut self, snapshot: Snapshot) -> Arc<Snapshot> {
        let snapshot = Arc::new(snapshot);
        for uri in self.documents.keys() {
            if let Some(file) = snapshot.file_id(uri)
                && snapshot.parsed_cleanly(file)
            {
                self.last_good.insert(uri.clone(), Arc::clone(&snapshot));
            }
        }
        self.current = Some(Arc::clone(&snapshot));
        snapshot
    }

    /// The analysis to navigate `uri` with: the current one if the file parses, otherwise
    /// the last one in which it did.
    pub fn navigation_snapshot(&self, uri: &Url) -> Option<Arc<Snapshot>> {
        let current = self.current.as_ref()?;
        let clean = current
            .file_id(uri)
            .is_some_and(|file| current.parsed_cleanly(file));
        if clean {
            return Some(Arc::clone(current));
        }
        self.last_good
            .get(uri)
            .cloned()
            .or_else(|| Some(Arc::clone(current)))
    }
}

/// How a document is named in diagnostics: its path when it has one.
pub fn display_name(uri: &Url) -> String {
    uri.to_file_path()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| uri.to_string())
}

/// Writes the standard library to a cache directory (once per version) and returns the
/// URIs of its files, in `STDLIB` order. Falls back to `medic-std:` URIs when no directory is
/// writable; the server still works, only "go to definition" into the standard library does
/// not open a file then.
pub fn materialize_stdlib() -> Vec<Url> {
    let directory = cache_directory().join(format!("std-{}", env!("CARGO_PKG_VERSION")));
    let writable = std::fs::create_dir_all(&directory).is_ok();
    medic_compiler::STDLIB
        .iter()
        .filter_map(|(name, text)| {
            let file_name = name.rsplit('/').next().unwrap_or(name);
            let path = directory.join(file_name);
            let on_disk = writable
                && (std::fs::read_to_string(&path).is_ok_and(|existing| existing == *text)
                    || std::fs::write(&path, text).is_ok());
            let file_uri = if on_disk {
                Url::from_file_path(&path).ok()
            } else {
                None
            };
            // `medic-std:///name.ops` is always a valid URL.
            file_uri.or_else(|| Url::parse(&format!("medic-std:///{file_name}")).ok())
        })
        .collect()
}

fn cache_directory() -> PathBuf {
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(cache).join("medic");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".cache").join("medic");
    }
    std::env::temp_dir().join("medic")
}
