//! Thousands of mutated programs (tokens of the examples cut, duplicated, swapped and
//! dropped) go through the parser, the checker and the formatter; none may panic, and the
//! formatter must stay idempotent on whatever it accepts.

use crate::support::ops_files;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for character in text.chars() {
        let boundary = character.is_whitespace() || "(){}[],.:=\"".contains(character);
        if boundary {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            out.push(character.to_string());
        } else {
            current.push(character);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[test]
fn mutated_programs_never_panic() {
    let sources: Vec<Vec<String>> = ops_files("examples")
        .iter()
        .map(|path| tokens(&std::fs::read_to_string(path).unwrap()))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for round in 0..3_000 {
        let mut toks = sources[round % sources.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let len = toks.len();
            if len == 0 {
                break;
            }
            match rng.below(5) {
                0 => {
                    let at = rng.below(len);
                    toks.truncate(at);
                }
                1 => {
                    let at = rng.below(len);
                    let token = toks[at].clone();
                    toks.insert(at, token);
                }
                2 => {
                    let (a, b) = (rng.below(len), rng.below(len));
                    toks.swap(a, b);
                }
                3 => {
                    let at = rng.below(len);
                    if at < toks.len() {
                        toks.remove(at);
                    }
                }
                _ => {
                    let start = rng.below(len);
                    let end = (start + rng.below(30)).min(toks.len());
                    let slice: Vec<String> = toks[start..end].to_vec();
                    let at = rng.below(toks.len());
                    for (offset, token) in slice.into_iter().enumerate() {
                        toks.insert(at + offset, token);
                    }
                }
            }
        }
        let text: String = toks.concat();
        let _ = crate::support::check_text("mutant.ops", &text);
        if let Ok(once) = medic_compiler::format(&text) {
            accepted += 1;
            assert_eq!(
                medic_compiler::format(&once).ok(),
                Some(once.clone()),
                "formatter not idempotent on:\n{text}"
            );
        }
    }
    assert!(
        accepted > 100,
        "too few mutants parsed ({accepted}); the mutation is too aggressive to test the checker"
    );
}
