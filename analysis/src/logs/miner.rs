//! The template miner, after Drain (He et al., "Drain: An Online Log Parsing Approach with
//! Fixed Depth Tree", ICWS 2017): a masked message goes to the group of templates with its
//! token count and first token, and joins the most similar template there when enough of its
//! constant words agree, or starts a new template.
//!
//! One change to Drain: where the message differs from that template at a constant word,
//! the position becomes `<*>` only once [`DISTINCT_VALUES`] different words have been seen
//! there (or the message has a masked value there); before that the message starts a sibling
//! template that keeps its word. Two words at a position are usually two events ("stored as
//! bytes" / "stored as values", "HTTPS" / "SOCKS5"); a third makes it a value (user names).
//! When siblings then turn out to be one template, the younger ones are merged into the
//! oldest: their ids stay valid and [`Miner::canonical`] answers the survivor.
//!
//! Guarantees: ids are given in order of first appearance; a template generalises in place;
//! the same messages in the same order give the same ids and patterns; memory grows with the
//! number of templates, not of messages (the cache of masked lines is bounded and cleared
//! when full).

use super::mask::{self, WILDCARD};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A template's id: its index in order of first appearance, stable for the miner's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct TemplateId(pub u32);

/// The one generic setting: a message joins a template when at least this share of its tokens
/// are constant words equal to the template's (Drain's similarity threshold; drain3's default).
const SIMILARITY: f64 = 0.4;

/// The words a family has seen at a position before that position becomes `<*>`: two words
/// are an alternative (two event types), a third makes it a value.
const DISTINCT_VALUES: usize = 3;

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
    /// Empty once merged into another template.
    tokens: Vec<Token>,
    family: usize,
    /// The template it was merged into (itself while it stands alone).
    canonical: u32,
}

/// Templates split from one another, and the words they have seen per position.
#[derive(Debug, Clone)]
struct Family {
    values: Vec<Vec<Box<str>>>,
}

/// Drain-style online template miner.
#[derive(Debug, Clone, Default)]
pub struct Miner {
    templates: Vec<Template>,
    families: Vec<Family>,
    /// Templates not merged into another.
    live: usize,
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
            Some(id) => self.canonical(TemplateId(*id)).0,
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
        let id = self.canonical(id);
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

    /// The number of templates (merged ones count once).
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no message was mined yet.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The template `id` belongs to now: itself, or the older template it was merged into
    /// when a position it kept as a word turned out to be a value. Ids that [`Miner::add`]
    /// answered stay valid: [`Miner::pattern`] and [`super::compare`] follow merges.
    pub fn canonical(&self, id: TemplateId) -> TemplateId {
        usize::try_from(id.0)
            .ok()
            .and_then(|index| self.templates.get(index))
            .map_or(id, |template| TemplateId(template.canonical))
    }

    /// Every template id (not merged into another), in order of first appearance.
    pub fn ids(&self) -> impl Iterator<Item = TemplateId> + '_ {
        self.templates
            .iter()
            .enumerate()
            .filter(|(index, template)| usize::try_from(template.canonical).ok() == Some(*index))
            .filter_map(|(index, _)| u32::try_from(index).ok().map(TemplateId))
    }

    fn remember(&mut self, masked: &str, id: u32) {
        if self.cache.len() >= CACHE_ENTRIES || self.cache_bytes + masked.len() > CACHE_BYTES {
            self.cache.clear();
            self.cache_bytes = 0;
        }
        self.cache_bytes += masked.len();
        self.cache.insert(masked.into(), id);
    }

    /// The search of Drain: the most similar template of the message's group. When the message
    /// differs from it only where the template is already `<*>`, it joins; where it differs at
    /// constant words, those positions become `<*>` once the template's family (the templates
    /// split from one another) has seen [`DISTINCT_VALUES`] different words there; before
    /// that, the message starts a sibling template that keeps its own words ("HTTPS" and
    /// "SOCKS5" stay apart, user names merge at the third).
    fn place(&mut self, masked: &str) -> u32 {
        let tokens: Vec<&str> = masked
            .split(' ')
            .filter(|token| !token.is_empty())
            .collect();
        let key = group_key(&tokens);
        let mut best: Option<(Score, u32)> = None;
        if let Some(group) = self.groups.get(&key) {
            for id in group {
                let Some(template) = self.templates.get(*id as usize) else {
                    continue;
                };
                let Some(score) = similarity(&template.tokens, &tokens) else {
                    continue;
                };
                // Strictly better only: ties go to the older template (groups keep id order).
                if best.is_none_or(|(best_score, _)| score > best_score) {
                    best = Some((score, *id));
                }
            }
        }
        if let Some((score, id)) = best
            && score.similar as f64 >= SIMILARITY * tokens.len() as f64
            && let Some(placed) = self.join(id, &tokens, key)
        {
            return placed;
        }
        let template_tokens = tokens
            .iter()
            .map(|token| {
                if *token == WILDCARD {
                    Token::Wildcard
                } else {
                    Token::Word((*token).into())
                }
            })
            .collect();
        let family = self.families.len();
        self.families.push(Family {
            values: vec![Vec::new(); tokens.len()],
        });
        self.push_template(template_tokens, family, key)
    }

    /// Joins `id` (the most similar template), generalising it or starting a sibling.
    fn join(&mut self, id: u32, tokens: &[&str], key: u64) -> Option<u32> {
        let template = self.templates.get(id as usize)?;
        let family_index = template.family;
        let differing: Vec<usize> = template
            .tokens
            .iter()
            .zip(tokens)
            .enumerate()
            .filter(|(_, (slot, token))| matches!(slot, Token::Word(word) if &**word != **token))
            .map(|(index, _)| index)
            .collect();
        if differing.is_empty() {
            return Some(id);
        }
        let family = self.families.get_mut(family_index)?;
        let mut variable = true;
        for index in &differing {
            let (Some(Token::Word(word)), Some(token), Some(seen)) = (
                template.tokens.get(*index),
                tokens.get(*index),
                family.values.get_mut(*index),
            ) else {
                continue;
            };
            for value in [&**word, *token] {
                if seen.len() < DISTINCT_VALUES && !seen.iter().any(|known| &**known == value) {
                    seen.push(value.into());
                }
            }
            // A masked value where the template has a word: the masks already know.
            if *token == WILDCARD {
                while seen.len() < DISTINCT_VALUES {
                    seen.push(WILDCARD.into());
                }
            }
            if seen.len() < DISTINCT_VALUES {
                variable = false;
            }
        }
        let mut generalised = template.tokens.clone();
        for index in &differing {
            if let Some(slot) = generalised.get_mut(*index) {
                *slot = if variable {
                    Token::Wildcard
                } else {
                    tokens
                        .get(*index)
                        .map_or(Token::Wildcard, |token| Token::Word((*token).into()))
                };
            }
        }
        if !variable {
            return Some(self.push_template(generalised, family_index, key));
        }
        // The generalised template may now cover siblings: they become one template, under
        // the oldest id.
        let group = self.groups.get(&key)?;
        let covered: Vec<u32> = group
            .iter()
            .copied()
            .filter(|member| {
                *member == id
                    || self.templates.get(*member as usize).is_some_and(|sibling| {
                        sibling.family == family_index && covers(&generalised, &sibling.tokens)
                    })
            })
            .collect();
        let survivor = covered.iter().copied().min().unwrap_or(id);
        for member in &covered {
            if let Some(template) = self.templates.get_mut(*member as usize) {
                if *member == survivor {
                    template.tokens = generalised.clone();
                } else {
                    template.canonical = survivor;
                    template.tokens.clear();
                }
            }
        }
        for template in &mut self.templates {
            if covered.contains(&template.canonical) {
                template.canonical = survivor;
            }
        }
        self.live = self.live.saturating_sub(covered.len().saturating_sub(1));
        if let Some(group) = self.groups.get_mut(&key) {
            group.retain(|member| *member == survivor || !covered.contains(member));
        }
        Some(survivor)
    }

    fn push_template(&mut self, tokens: Vec<Token>, family: usize, key: u64) -> u32 {
        let Ok(id) = u32::try_from(self.templates.len()) else {
            // Four billion templates: everything else shares the last one.
            return u32::MAX - 1;
        };
        self.templates.push(Template {
            tokens,
            family,
            canonical: id,
        });
        self.live += 1;
        self.groups.entry(key).or_default().push(id);
        id
    }
}

/// Whether `general` matches every message `specific` matches.
fn covers(general: &[Token], specific: &[Token]) -> bool {
    general.len() == specific.len()
        && general
            .iter()
            .zip(specific)
            .all(|(general, specific)| match general {
                Token::Wildcard => true,
                Token::Word(_) => general == specific,
            })
}

/// Drain's similarity: how many positions hold the same constant word (words carrying a mask
/// are values and do not count as agreement); then, to break ties, how many positions are
/// equal at all (the template that needs the fewest changes), then how many are wildcards in
/// the template (the more general one). `None` when the lengths differ.
fn similarity(template: &[Token], tokens: &[&str]) -> Option<Score> {
    if template.len() != tokens.len() {
        return None;
    }
    let mut score = Score::default();
    for (slot, token) in template.iter().zip(tokens) {
        match slot {
            Token::Wildcard => score.wildcards += 1,
            Token::Word(word) => {
                if &**word == *token {
                    score.equal += 1;
                    if !token.contains(WILDCARD) {
                        score.similar += 1;
                    }
                }
            }
        }
    }
    Some(score)
}

/// Compared field by field, in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Score {
    similar: usize,
    equal: usize,
    wildcards: usize,
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
