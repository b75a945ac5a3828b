//! The parse cache: reusing item parses after an edit gives exactly the tree a fresh parse
//! gives, spans included.

use crate::support::ops_files;
use medic_compiler::FileId;
use medic_compiler::parser::{self, ParseCache};

fn fresh(text: &str) -> String {
    let mut diagnostics = Vec::new();
    format!(
        "{:?}",
        parser::parse(FileId(0), text, &mut diagnostics).items
    )
}

fn cached(text: &str, cache: &mut ParseCache) -> String {
    let mut diagnostics = Vec::new();
    let file = parser::parse_cached(FileId(0), text, &mut diagnostics, cache);
    cache.sweep();
    format!("{:?}", file.items)
}

#[test]
fn cached_parses_equal_fresh_parses_after_edits() {
    for path in ops_files("examples") {
        let original = std::fs::read_to_string(&path).unwrap();
        let mut cache = ParseCache::new();
        assert_eq!(cached(&original, &mut cache), fresh(&original));
        assert!(!cache.is_empty());
        // Text inserted before every item moves all of them.
        let shifted = format!("// a new first line\n\n{original}");
        assert_eq!(
            cached(&shifted, &mut cache),
            fresh(&shifted),
            "{}",
            path.display()
        );
        // An edit inside one item, and a broken item, next to reused ones.
        let edited = shifted.replacen("cooldown", "cooldown 1h per alert.instance\n  priority", 1);
        assert_eq!(
            cached(&edited, &mut cache),
            fresh(&edited),
            "{}",
            path.display()
        );
        let broken = shifted.replacen("rule ", "rule ( ", 1);
        assert_eq!(
            cached(&broken, &mut cache),
            fresh(&broken),
            "{}",
            path.display()
        );
        assert_eq!(cached(&original, &mut cache), fresh(&original));
    }
}

#[test]
fn the_default_cache_stores_nothing() {
    let text = std::fs::read_to_string(crate::support::repo_root().join("examples/order_cpu.ops"))
        .unwrap();
    let mut cache = ParseCache::default();
    cached(&text, &mut cache);
    assert!(cache.is_empty());
}
