//! Finding and reading `.ops` files named on the command line.

use anyhow::{Context, bail};
use medic_compiler::Source;
use std::path::{Path, PathBuf};

/// Reads the files named, and every `*.ops` file under the directories named (sorted,
/// skipping hidden directories and `target/`). No path means the current directory.
pub fn read(paths: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    let default = [PathBuf::from(".")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        let metadata =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if metadata.is_dir() {
            let walker = walkdir::WalkDir::new(path)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|entry| {
                    entry.depth() == 0 || !is_skipped_dir(entry.path(), entry.file_type().is_dir())
                });
            for entry in walker {
                let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
                if entry.file_type().is_file()
                    && entry.path().extension().is_some_and(|ext| ext == "ops")
                {
                    files.push(entry.into_path());
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    if files.is_empty() {
        bail!("no .ops files found in {}", describe(paths));
    }
    files.dedup();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(Source::new(display_name(&path), text))
        })
        .collect()
}

fn is_skipped_dir(path: &Path, is_dir: bool) -> bool {
    if !is_dir {
        return false;
    }
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("");
    name.starts_with('.') || name == "target" || name == "node_modules"
}

fn display_name(path: &Path) -> String {
    let text = path.display().to_string();
    text.strip_prefix("./").map(str::to_string).unwrap_or(text)
}

fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
