//! Plans: what a checked program compiles into, and what the runtime executes.
//!
//! A [`Plan`] holds the rules in matching order with their compiled conditions, a
//! [`MatchIndex`] that narrows the rules to evaluate for an alert, and every playbook as a
//! DAG of tasks in a deterministic topological order. Plans serialize to versioned JSON
//! (`docs/plan-format.md`) that is byte-identical for the same sources on every machine:
//! only ordered maps, no timestamps, no absolute paths beyond what the caller named, and a
//! content hash over the rest.

pub mod diff;
pub mod explain;
pub mod ir;
mod lower;
pub mod render;
pub mod suite;

pub use ir::{EvalError, Ir, UrlValue, Value, Vars};
pub use lower::{LowerError, lower};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped when a field is removed or changes meaning.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    /// SHA-256 of the plan's JSON with this field empty.
    pub content_hash: String,
    /// The source files, as named to the compiler.
    pub sources: Vec<String>,
    /// In matching order: priority (higher first), then file order.
    pub rules: Vec<Rule>,
    /// In source order.
    pub playbooks: Vec<Playbook>,
    pub index: MatchIndex,
}

/// A place in the sources, to point a runtime event back at the line that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loc {
    pub file: String,
    /// 1-based.
    pub line: u32,
    /// 1-based, in characters.
    pub column: u32,
    /// Byte offsets.
    pub start: u32,
    pub end: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Firing,
    Resolved,
    Any,
}

impl Lifecycle {
    pub fn accepts(self, status: &str) -> bool {
        match self {
            Lifecycle::Firing => status == "firing",
            Lifecycle::Resolved => status == "resolved",
            Lifecycle::Any => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Firing => "firing",
            Lifecycle::Resolved => "resolved",
            Lifecycle::Any => "any",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub source: Loc,
    pub lifecycle: Lifecycle,
    /// Empty means every alert name.
    pub alerts: Vec<String>,
    pub condition: Option<Ir>,
    pub playbook: String,
    /// One per playbook parameter, defaults filled in.
    pub args: BTreeMap<String, Ir>,
    pub cooldown: Option<Limit>,
    pub concurrency: Option<Limit>,
    pub priority: i64,
    pub continue_matching: bool,
    /// Whether the playbook performs actions (and so needs the limits above).
    pub performs_actions: bool,
}

impl Rule {
    /// The value this rule gives a parameter of its playbook for an alert (`vars` holds
    /// `alert`): its argument, else the parameter's (constant) default; `None` when it has
    /// neither.
    pub fn argument(&self, param: &Param, vars: &dyn Vars) -> Option<Result<Value, EvalError>> {
        match (self.args.get(&param.name), &param.default) {
            (Some(expression), _) => Some(expression.eval(vars)),
            (None, Some(default)) => Some(default.eval(&BTreeMap::<String, Value>::new())),
            (None, None) => None,
        }
    }
}

/// A cooldown (milliseconds) or a concurrency limit (runs), kept per key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub value: i64,
    pub key: Option<Ir>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Playbook {
    pub name: String,
    pub source: Loc,
    pub params: Vec<Param>,
    pub timeout_ms: Option<i64>,
    /// In a topological order (dependencies first; ties in source order).
    pub tasks: Vec<Task>,
    /// Dependencies: `from` must finish before `to` starts.
    pub edges: Vec<Edge>,
}

impl Playbook {
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|task| task.id == id)
    }

    /// The playbook as a petgraph DAG: one node per task (its position in `tasks`), one
    /// edge per dependency. The executor walks it; lowering guarantees it has no cycle.
    pub fn dag(&self) -> petgraph::graph::DiGraph<usize, EdgeKind> {
        let mut graph = petgraph::graph::DiGraph::with_capacity(self.tasks.len(), self.edges.len());
        let nodes: BTreeMap<&str, petgraph::graph::NodeIndex> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(position, task)| (task.id.as_str(), graph.add_node(position)))
            .collect();
        for edge in &self.edges {
            if let (Some(&from), Some(&to)) =
                (nodes.get(edge.from.as_str()), nodes.get(edge.to.as_str()))
            {
                graph.add_edge(from, to, edge.kind);
            }
        }
        graph
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub default: Option<Ir>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// `data` when `to` reads `from`'s output, `after` for an explicit ordering.
    pub kind: EdgeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    Data,
    After,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Query,
    Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    Abort,
    Continue,
    Escalate,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Abort => "abort",
            OnFailure::Continue => "continue",
            OnFailure::Escalate => "escalate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub source: Loc,
    /// The stdlib function, `module.name`.
    pub function: String,
    pub effect: Effect,
    pub revertible: bool,
    /// One per function parameter, defaults filled in.
    pub args: BTreeMap<String, Ir>,
    pub when: Option<Ir>,
    pub retry: Option<Retry>,
    pub timeout_ms: Option<i64>,
    pub on_failure: OnFailure,
    pub approval: Option<Approval>,
    pub revert_after_ms: Option<i64>,
    pub revert_on_resolve: bool,
    /// Every task this one waits for (data flow and `after`), sorted.
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    pub attempts: u32,
    pub backoff_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: Option<String>,
    pub within_ms: Option<i64>,
}

/// Narrows the rules to evaluate for one alert. Built at compile time from the rules' alert
/// names and the equality tests in their conditions; rule numbers are positions in
/// [`Plan::rules`], each list ascending.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchIndex {
    pub by_name: BTreeMap<String, NameBucket>,
    /// Rules with `on alert *`.
    pub any_name: Vec<u32>,
}

/// The rules of one alert name, split on the alert field most of them test for equality.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NameBucket {
    /// The field (`service`, `severity`, ...) whose value selects a sub-list.
    pub field: Option<String>,
    pub by_value: BTreeMap<String, Vec<u32>>,
    /// Rules that do not test `field` for equality.
    pub other: Vec<u32>,
}

/// What matching one alert found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchOutcome {
    /// Rules that matched, in matching order (one unless rules say `continue`).
    pub matched: Vec<u32>,
    /// Rules whose condition could not be evaluated (they did not match), with why.
    pub errors: Vec<(u32, EvalError)>,
    /// How many conditions were evaluated.
    pub evaluated: u32,
}

struct AlertVars<'a>(&'a Value);

impl Vars for AlertVars<'_> {
    fn var(&self, name: &str) -> Option<&Value> {
        (name == "alert").then_some(self.0)
    }
}

/// Deeper than any plan the compiler writes (expression trees are at most
/// `parser::MAX_EXPR_DEPTH` deep, two JSON levels each at most).
const MAX_JSON_DEPTH: usize = 512;

/// The deepest nesting of `{`/`[` outside strings.
fn json_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

impl Plan {
    pub fn playbook(&self, name: &str) -> Option<&Playbook> {
        self.playbooks.iter().find(|playbook| playbook.name == name)
    }

    /// The rules an alert matches. `alert` is the alert record (`std.alert.Alert`).
    pub fn match_alert(&self, alert: &Value) -> MatchOutcome {
        let mut outcome = MatchOutcome::default();
        let Value::Record(fields) = alert else {
            return outcome;
        };
        let text = |field: &str| match fields.get(field) {
            Some(Value::String(value)) => Some(value.as_str()),
            Some(Value::Enum { name, .. }) => Some(name.as_str()),
            _ => None,
        };
        let name = text("name").unwrap_or("");
        let status = text("status").unwrap_or("firing");
        let empty: &[u32] = &[];
        let (selected, other) = match self.index.by_name.get(name) {
            Some(bucket) => {
                let selected = bucket
                    .field
                    .as_deref()
                    .and_then(text)
                    .and_then(|value| bucket.by_value.get(value))
                    .map_or(empty, Vec::as_slice);
                (selected, bucket.other.as_slice())
            }
            None => (empty, empty),
        };
        let vars = AlertVars(alert);
        let mut lists = [selected, other, self.index.any_name.as_slice()];
        // A three-way merge keeps matching order without allocating.
        loop {
            let mut best: Option<(usize, u32)> = None;
            for (list_index, list) in lists.iter().enumerate() {
                if let Some(&first) = list.first()
                    && best.is_none_or(|(_, current)| first < current)
                {
                    best = Some((list_index, first));
                }
            }
            let Some((list_index, rule_index)) = best else {
                break;
            };
            if let Some(list) = lists.get_mut(list_index) {
                *list = list.get(1..).unwrap_or(empty);
            }
            let Some(rule) = self.rules.get(rule_index as usize) else {
                continue;
            };
            if !rule.lifecycle.accepts(status) {
                continue;
            }
            let matched = match &rule.condition {
                None => true,
                Some(condition) => {
                    outcome.evaluated += 1;
                    match condition.eval_bool(&vars) {
                        Ok(value) => value,
                        Err(error) => {
                            outcome.errors.push((rule_index, error));
                            false
                        }
                    }
                }
            };
            if matched {
                outcome.matched.push(rule_index);
                if !rule.continue_matching {
                    break;
                }
            }
        }
        outcome
    }

    /// The plan as JSON (what `medic plan --format json` prints).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads a plan written by [`Plan::to_json`], refusing other format versions.
    pub fn from_json(text: &str) -> Result<Plan, String> {
        // Plans nest as deep as their expressions; refuse anything deeper than a plan can be
        // before the JSON reader recurses into it.
        if json_depth(text) > MAX_JSON_DEPTH {
            return Err(format!(
                "not a plan: nested deeper than {MAX_JSON_DEPTH} levels"
            ));
        }
        let mut reader = serde_json::Deserializer::from_str(text);
        reader.disable_recursion_limit();
        let probe = <serde_json::Value as serde::Deserialize>::deserialize(&mut reader)
            .map_err(|error| format!("not a plan: {error}"))?;
        let version = probe
            .get("format_version")
            .and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(FORMAT_VERSION)) {
            return Err(match version {
                Some(version) => format!(
                    "plan format version {version} is not supported (this medic reads version {FORMAT_VERSION})"
                ),
                None => "not a plan: no format_version".into(),
            });
        }
        serde_json::from_value(probe).map_err(|error| format!("not a plan: {error}"))
    }

    /// Recomputes the content hash.
    pub fn seal(&mut self) {
        use sha2::Digest;
        self.content_hash = String::new();
        let text = serde_json::to_string(self).unwrap_or_default();
        let digest = sha2::Sha256::digest(text.as_bytes());
        self.content_hash = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    }
}
