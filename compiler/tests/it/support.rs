//! Helpers shared by the test modules.

use medic_compiler::diagnostic::WithSource;
use medic_compiler::{Analysis, Source};
use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every `.ops` file under a directory of the repository, sorted.
pub fn ops_files(dir: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![repo_root().join(dir)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "ops") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

pub fn check_text(name: &str, text: &str) -> Analysis {
    medic_compiler::check(vec![Source::new(name, text)])
}

/// Renders every diagnostic the way `medic check` does, without colour, at a fixed width.
pub fn render(analysis: &Analysis) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100)
            .with_links(false);
    let mut out = String::new();
    for diagnostic in &analysis.diagnostics {
        let file = analysis.file(diagnostic.file).unwrap();
        let with_source = WithSource::new(diagnostic, &file.name, &file.text);
        handler.render_report(&mut out, &with_source).unwrap();
        if let Some(suggestion) = &diagnostic.suggestion {
            out.push_str(&format!(
                "  fix: replace with `{}`\n",
                suggestion.replacement
            ));
        }
        out.push('\n');
    }
    out
}
