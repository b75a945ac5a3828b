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

/// Raw strings are printed back exactly as written (hashes, quotes, braces, backslashes and
/// `//` inside), wherever a string literal may stand, and `r` alone is still a name.
#[test]
fn raw_strings_are_printed_back_unchanged() {
    let source = r###"import std.{notify, prom}

rule r {
  on alert r"Disk_Full", r#"Say "hi""#
  when alert.service =~ r"^pay\d+$"
  run p(r: alert.service)
  cooldown 5m
}

playbook p(r: String) {
  task q = prom.query(r#"max(disk_used_ratio{path=~"C:\\.*", x="a//b"})"#, where: { r: r })
  task empty = prom.query(r"up", where: { r"odd key": r"" })
  task tell = notify.slack(channel: r##"#a"#b"##, text: "{q.value} {empty.value} {r}") {
    approval by r"on-call"
  }
}
"###;
    let formatted = medic_compiler::format(source).unwrap();
    assert_eq!(formatted, source);
    let analysis = crate::support::check_text("raw.ops", source);
    let codes: Vec<String> = analysis
        .diagnostics
        .iter()
        .map(|diagnostic| diagnostic.code())
        .collect();
    // The odd key is refused as a label name; nothing else is wrong.
    assert_eq!(codes, ["ops::promql::label_name"], "{codes:?}");
    // The value of a raw string is its text: no escape is decoded.
    let mut diagnostics = Vec::new();
    let file = medic_compiler::parser::parse(medic_compiler::FileId(0), source, &mut diagnostics);
    let texts = string_texts(&file);
    assert!(
        texts.contains(&r#"max(disk_used_ratio{path=~"C:\\.*", x="a//b"})"#.to_string()),
        "{texts:?}"
    );
    assert!(texts.contains(&r##"#a"#b"##.to_string()), "{texts:?}");
    assert!(texts.contains(&r"^pay\d+$".to_string()), "{texts:?}");
}

/// The text parts of every string literal in a file's task calls and rule conditions.
fn string_texts(file: &medic_compiler::ast::File) -> Vec<String> {
    use medic_compiler::ast::{self, ExprKind, StrPart};
    fn walk(expr: &ast::Expr, out: &mut Vec<String>) {
        match &expr.kind {
            ExprKind::Str(parts, _) => {
                for part in parts {
                    if let StrPart::Text(text, _) = part {
                        out.push(text.clone());
                    }
                }
            }
            ExprKind::Call(_, args) => {
                for arg in args {
                    walk(&arg.value, out);
                }
            }
            ExprKind::Binary(_, _, left, right) => {
                walk(left, out);
                walk(right, out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for item in &file.items {
        match item {
            ast::Item::Playbook(playbook) => {
                for item in &playbook.body {
                    if let ast::PlaybookItem::Task(task) = item {
                        walk(&task.call, &mut out);
                    }
                }
            }
            ast::Item::Rule(rule) => {
                for clause in &rule.clauses {
                    if let ast::RuleClause::When(expr, _) = clause {
                        walk(expr, &mut out);
                    }
                }
            }
            _ => {}
        }
    }
    out
}
