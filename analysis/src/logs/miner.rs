//! The template miner, after Drain (He et al., "Drain: An Online Log Parsing Approach with
//! Fixed Depth Tree", ICWS 2017): a masked message goes to the group of templates with its
//! token count and first token, joins the most similar template there when enough of its
//! constant tokens agree (the differing positions become `<*>`), or starts a new template.
//!
//! Guarantees: ids are given in order of first appearance and never change (a template
//! generalises in place); the same messages in the same order give the same ids and patterns;
//! memory grows with the number of templates, not of messages (the cache of masked lines is
//! bounded and cleared when full).

use super::mask::{self, WILDCARD};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A template's id: its index in order of first appearance, stable for the miner's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct TemplateId(pub u32);

/// The one generic setting: a message joins a template when at least this share of its tokens
/// are constant words equal to the template's (Drain's similarity threshold; drain3's default).
const SIMILARITY: f64 = 0.4;

/// Distinct masked lines remembered (each maps to its template without a search).
const CACHE_ENTRIES: usize = 1 << 16;
/// Bytes of masked lines remembered.
const CACHE_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Wildcard,
    Word(Box<str>),
}

#[derive(Debug, Clone)]
struct Template {
    tokens: Vec<Token>,
}

/// Drain-style online template miner.
#[derive(Debug, Clone, Default)]
pub struct Miner {
    templates: Vec<Template>,
    /// Templates by (token count, routing token), as the first levels of Drain's tree.
    groups: HashMap<u64, Vec<u32>, FxBuild>,
    /// Masked line → its template.
    cache: HashMap<Box<str>, u32, FxBuild>,
    cache_bytes: usize,
    masked: String,
}

impl Miner {
    /// A miner with the one generic setting.
    pub fn new() -> Miner {
        Miner::default()
    }

    /// Mines one message; answers the id of the template it belongs to now (and for the rest
    /// of the run).
    pub fn add(&mut self, message: &str) -> TemplateId {
        let mut masked = std::mem::take(&mut self.masked);
        mask::mask_into(message, &mut masked);
        let id = match self.cache.get(masked.as_str()) {
            Some(id) => *id,
            None => {
                let id = self.place(&masked);
                self.remember(&masked, id);
                id
            }
        };
        self.masked = masked;
        TemplateId(id)
    }

    /// The template's pattern now, variable parts as `<*>`.
    pub fn pattern(&self, id: TemplateId) -> Option<String> {
        let template = self.templates.get(usize::try_from(id.0).ok()?)?;
        let mut pattern = String::new();
        for (index, token) in template.tokens.iter().enumerate() {
            if index > 0 {
                pattern.push(' ');
            }
            match token {
                Token::Wildcard => pattern.push_str(WILDCARD),
                Token::Word(word) => pattern.push_str(word),
            }
        }
        Some(pattern)
    }

    /// The number of templates.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Whether no message was mined yet.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Every template id, in order of first appearance.
    pub fn ids(&self) -> impl Iterator<Item = TemplateId> + '_ {
        (0..self.templates.len()).filter_map(|index| u32::try_from(index).ok().map(TemplateId))
    }

    fn remember(&mut self, masked: &str, id: u32) {
        if self.cache.len() >= CACHE_ENTRIES || self.cache_bytes + masked.len() > CACHE_BYTES {
            self.cache.clear();
            self.cache_bytes = 0;
        }
        self.cache_bytes += masked.len();
        self.cache.insert(masked.into(), id);
    }

    /// The search of Drain: the most similar template of the message's group, generalised to
    /// cover it, or a new template.
    fn place(&mut self, masked: &str) -> u32 {
        let tokens: Vec<&str> = masked
            .split(' ')
            .filter(|token| !token.is_empty())
            .collect();
        let key = group_key(&tokens);
        let mut best: Option<(usize, usize, u32)> = None;
        if let Some(group) = self.groups.get(&key) {
            for id in group {
                let Some(template) = self.templates.get(*id as usize) else {
                    continue;
                };
                let Some((similar, wildcards)) = similarity(&template.tokens, &tokens) else {
                    continue;
                };
                let better = match best {
                    None => true,
                    Some((best_similar, best_wildcards, _)) => {
                        similar > best_similar
                            || (similar == best_similar && wildcards > best_wildcards)
                    }
                };
                if better {
                    best = Some((similar, wildcards, *id));
                }
            }
        }
        if let Some((similar, _, id)) = best
            && similar as f64 >= SIMILARITY * tokens.len() as f64
            && let Some(template) = self.templates.get_mut(id as usize)
        {
            for (slot, token) in template.tokens.iter_mut().zip(&tokens) {
                if let Token::Word(word) = slot
                    && &**word != *token
                {
                    *slot = Token::Wildcard;
                }
            }
            return id;
        }
        let Ok(id) = u32::try_from(self.templates.len()) else {
            // Four billion templates: everything else shares the last one.
            return u32::MAX;
        };
        self.templates.push(Template {
            tokens: tokens
                .iter()
                .map(|token| {
                    if *token == WILDCARD {
                        Token::Wildcard
                    } else {
                        Token::Word((*token).into())
                    }
                })
                .collect(),
        });
        self.groups.entry(key).or_default().push(id);
        id
    }
}

/// Drain's similarity: how many positions hold the same constant word (words carrying a mask
/// are values and do not count as agreement), and how many are wildcards in the template (the
/// tie-break: the more general template wins). `None` when the lengths differ.
fn similarity(template: &[Token], tokens: &[&str]) -> Option<(usize, usize)> {
    if template.len() != tokens.len() {
        return None;
    }
    let mut similar = 0;
    let mut wildcards = 0;
    for (slot, token) in template.iter().zip(tokens) {
        match slot {
            Token::Wildcard => wildcards += 1,
            Token::Word(word) => {
                if &**word == *token && !token.contains(WILDCARD) {
                    similar += 1;
                }
            }
        }
    }
    Some((similar, wildcards))
}

/// The group of a message: its token count and its first token, unless that token carries a
/// digit or a mask (then it is likely a value, and routes to the wildcard branch as in Drain).
fn group_key(tokens: &[&str]) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write_usize(tokens.len());
    match tokens.first() {
        Some(first)
            if !first.bytes().any(|byte| byte.is_ascii_digit()) && !first.contains(WILDCARD) =>
        {
            hasher.write(first.as_bytes());
        }
        _ => hasher.write_u8(0xff),
    }
    hasher.finish()
}

type FxBuild = BuildHasherDefault<FxHasher>;

/// The Fx hash of rustc (Firefox's): fast on short keys, not DoS-resistant, which does not
/// matter here (a collision only lengthens a search; it never changes a result's correctness
/// beyond which template a tie goes to, and that stays deterministic).
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        for (slot, byte) in word.iter_mut().zip(rest) {
            *slot = *byte;
        }
        self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}
