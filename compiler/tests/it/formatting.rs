//! The formatter is idempotent on every `.ops` file of the repository, keeps comments, and
//! the examples and the standard library are already formatted.

use crate::support::ops_files;

fn comments(text: &str) -> Vec<String> {
    let mut diagnostics = Vec::new();
    let file = medic_compiler::parser::parse(medic_compiler::FileId(0), text, &mut diagnostics);
    file.comments
        .into_iter()
        .map(|comment| comment.text)
        .collect()
}

#[test]
fn formatting_is_idempotent_on_every_file() {
    let mut files = ops_files("examples");
    files.extend(ops_files("stdlib"));
    files.extend(ops_files("tests"));
    let mut formatted_count = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let Ok(once) = medic_compiler::format(&text) else {
            continue; // files with syntax errors are not formatted
        };
        formatted_count += 1;
        let twice = medic_compiler::format(&once).unwrap();
        assert_eq!(
            once,
            twice,
            "formatting {} twice changes it",
            path.display()
        );
        let mut before = comments(&text);
        let mut after = comments(&once);
        before.sort();
        after.sort();
        assert_eq!(
            before,
            after,
            "formatting {} lost or changed comments",
            path.display()
        );
    }
    assert!(formatted_count >= 12);
}

#[test]
fn examples_and_stdlib_are_formatted() {
    let mut files = ops_files("examples");
    files.extend(ops_files("stdlib"));
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            medic_compiler::format(&text).unwrap(),
            text,
            "{} is not formatted",
            path.display()
        );
    }
}

#[test]
fn formatting_normalizes_layout() {
    let messy = "import std.{k8s}\nrule r{on alert \"A\" when alert.value>90%  and alert.service==\"x\" // hot\nrun p(d:alert.service) cooldown 5m per alert.service}\nplaybook p(d:String){task s=k8s.scale(deployment:d,by:1,max:3){revert after 10m;on failure continue}}\n";
    let formatted = medic_compiler::format(messy).unwrap();
    insta::assert_snapshot!(formatted);
}
