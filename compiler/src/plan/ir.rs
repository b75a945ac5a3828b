//! The expression IR of plans and its evaluator.
//!
//! Conditions and arguments are compiled once into [`Ir`] and evaluated without re-parsing.
//! The evaluator is pure: it reads variables through [`Vars`] and returns a [`Value`] or an
//! [`EvalError`]; it does no I/O, so the runtime and the tests share it. Every error is data:
//! a rule whose condition fails to evaluate (an alert value in another unit, say) simply does
//! not match, and the caller records why.

use crate::units::{self, Quantity};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// A runtime value. Records and maps share one representation (ordered, for determinism).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// An absent optional value.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    /// A URL built from a template of the runbook ([`Ir::Url`]).
    Url(UrlValue),
    /// Milliseconds.
    Duration(i64),
    /// Percent points.
    Percent(f64),
    /// Bytes.
    Size(u64),
    /// Milliseconds since the Unix epoch.
    Time(i64),
    /// A variant and its position in the enum's declaration (its order for `<`).
    Enum {
        name: String,
        index: u32,
    },
    /// An alert value with the unit it was sent with.
    Quantity(QuantityValue),
    List(Vec<Value>),
    Record(Arc<BTreeMap<String, Value>>),
}

/// A URL and where its host came from. Only templates written in the runbook make one, so
/// its scheme is always `http` or `https`, and every interpolated value in it was escaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlValue {
    pub href: String,
    /// A value interpolated into the host chose it: the request may only go to a host the
    /// configuration allows (`[http] allow_hosts`).
    pub host_from_data: bool,
}

/// [`Quantity`] in a serializable form.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantityValue {
    Number(f64),
    Duration(i64),
    Percent(f64),
    Size(u64),
}

impl From<Quantity> for QuantityValue {
    fn from(quantity: Quantity) -> Self {
        match quantity {
            Quantity::Number(value) => QuantityValue::Number(value),
            Quantity::Duration(value) => QuantityValue::Duration(value),
            Quantity::Percent(value) => QuantityValue::Percent(value),
            Quantity::Size(value) => QuantityValue::Size(value),
        }
    }
}

impl Value {
    pub fn record(fields: impl IntoIterator<Item = (String, Value)>) -> Value {
        Value::Record(Arc::new(fields.into_iter().collect()))
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "Bool",
            Value::Int(_) => "Int",
            Value::Float(_) => "Float",
            Value::String(_) => "String",
            Value::Url(_) => "Url",
            Value::Duration(_) => "Duration",
            Value::Percent(_) => "Percent",
            Value::Size(_) => "Size",
            Value::Time(_) => "Time",
            Value::Enum { .. } => "enum",
            Value::Quantity(quantity) => match quantity {
                QuantityValue::Number(_) => "number",
                QuantityValue::Duration(_) => "Duration",
                QuantityValue::Percent(_) => "Percent",
                QuantityValue::Size(_) => "Size",
            },
            Value::List(_) => "list",
            Value::Record(_) => "record",
        }
    }

    /// A quantity seen as the plain value of its unit.
    fn unquantified(&self) -> Value {
        match self {
            Value::Quantity(QuantityValue::Number(value)) => Value::Float(*value),
            Value::Quantity(QuantityValue::Duration(value)) => Value::Duration(*value),
            Value::Quantity(QuantityValue::Percent(value)) => Value::Percent(*value),
            Value::Quantity(QuantityValue::Size(value)) => Value::Size(*value),
            other => other.clone(),
        }
    }

    /// The text form used by string interpolation and reports.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => "none".into(),
            Value::Bool(value) => value.to_string(),
            Value::Int(value) => value.to_string(),
            Value::Float(value) => format_float(*value),
            Value::String(value) => value.clone(),
            Value::Url(url) => url.href.clone(),
            Value::Duration(value) => units::format_duration(*value),
            Value::Percent(value) => format!("{}%", format_percent(*value)),
            Value::Size(value) => units::format_size(*value),
            Value::Time(value) => units::format_time(*value),
            Value::Enum { name, .. } => name.clone(),
            Value::Quantity(_) => self.unquantified().to_text(),
            Value::List(items) => items
                .iter()
                .map(Value::to_text)
                .collect::<Vec<_>>()
                .join(", "),
            Value::Record(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(key, value)| format!("{key}: {}", value.to_text()))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
        }
    }
}

/// Percent points for people: at most two decimals, trailing zeros dropped (`90`, `32.08`,
/// `0.5`); a share computed as 32.075471698113205% reads 32.08%.
fn format_percent(value: f64) -> String {
    if !value.is_finite() {
        return format_float(value);
    }
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

/// The shortest text that reads back as the same number (`0.5`, `90`, `0.00004`).
fn format_float(value: f64) -> String {
    format!("{value}")
}

/// The binary operators of the IR are those of the language.
pub use crate::ast::BinaryOp as BinOp;

/// A compiled expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ir {
    Const {
        value: Value,
    },
    /// `alert`, a playbook parameter or a task's output.
    Var {
        name: String,
    },
    Field {
        base: Box<Ir>,
        field: String,
    },
    Index {
        base: Box<Ir>,
        index: Box<Ir>,
    },
    Not {
        arg: Box<Ir>,
    },
    Neg {
        arg: Box<Ir>,
    },
    Binary {
        op: BinOp,
        left: Box<Ir>,
        right: Box<Ir>,
    },
    /// `left =~ "pattern"` with a pattern known at compile time.
    Regex {
        negated: bool,
        left: Box<Ir>,
        pattern: Pattern,
    },
    List {
        items: Vec<Ir>,
    },
    Record {
        fields: BTreeMap<String, Ir>,
    },
    /// A string with interpolations: the parts' texts, concatenated.
    Concat {
        parts: Vec<Ir>,
    },
    /// An alert value passed where a unit is expected: the value in that unit, or an error
    /// when it came with another unit. `unit` is `number`, `Duration`, `Percent` or `Size`.
    Unit {
        arg: Box<Ir>,
        unit: String,
    },
    /// A value interpolated into a URL (`http.get("http://{service}/health")`), escaped for
    /// the part of the URL it stands in, so that alert data cannot change where the request
    /// goes: path segments and query values are percent-encoded, a host must be a host.
    UrlEscape {
        arg: Box<Ir>,
        part: UrlPart,
    },
    /// A URL template: an optional base `Url` value, then literal text and escaped values
    /// ([`Ir::UrlEscape`]). Its value is a [`Value::Url`], marked when a value chose its host.
    /// A path segment `.` or `..` is an error, whoever wrote it, so nothing climbs the path.
    Url {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base: Option<Box<Ir>>,
        parts: Vec<Ir>,
    },
}

/// Where in a URL an interpolated value stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UrlPart {
    Host,
    Path,
    Query,
}

impl UrlPart {
    /// `text` made safe for this part of a URL.
    pub fn escape(self, text: &str) -> Result<String, EvalError> {
        match self {
            UrlPart::Host => {
                let is_host = !text.is_empty()
                    && text.chars().all(|character| {
                        character.is_ascii_alphanumeric() || "-._:[]".contains(character)
                    });
                if is_host {
                    Ok(text.to_string())
                } else {
                    Err(EvalError::NotAHost(text.to_string()))
                }
            }
            UrlPart::Path | UrlPart::Query => {
                let mut escaped = String::with_capacity(text.len());
                for byte in text.bytes() {
                    if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                        escaped.push(char::from(byte));
                    } else {
                        escaped.push_str(&format!("%{byte:02X}"));
                    }
                }
                Ok(escaped)
            }
        }
    }
}

/// Refuses a path segment that URL parsers resolve as `.` or `..` (also percent-encoded:
/// the WHATWG URL standard reads `%2e` as a dot in such a segment), so no value climbs out
/// of the path the runbook wrote.
fn check_path_segments(href: &str) -> Result<(), EvalError> {
    let after_scheme = href
        .find("://")
        .map_or(href, |end| href.get(end + 3..).unwrap_or(""));
    // The query and the fragment are not the path: `?next=/..` climbs nothing.
    let before_query = after_scheme.split(['?', '#']).next().unwrap_or("");
    let Some(path_start) = before_query.find(['/', '\\']) else {
        return Ok(());
    };
    let path = before_query.get(path_start..).unwrap_or("");
    for segment in path.split(['/', '\\']) {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        if decoded == "." || decoded == ".." {
            return Err(EvalError::DotSegment(segment.to_string()));
        }
    }
    Ok(())
}

/// A regular expression, compiled on first use.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pattern {
    pub source: String,
    #[serde(skip)]
    compiled: OnceLock<Option<Arc<regex::Regex>>>,
}

impl Pattern {
    pub fn new(source: impl Into<String>) -> Pattern {
        Pattern {
            source: source.into(),
            compiled: OnceLock::new(),
        }
    }

    fn regex(&self) -> Option<&regex::Regex> {
        self.compiled
            .get_or_init(|| regex::Regex::new(&self.source).ok().map(Arc::new))
            .as_deref()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("unknown variable `{0}`")]
    UnknownVariable(String),
    #[error("cannot {op} {left} and {right}")]
    Mismatch {
        op: String,
        left: String,
        right: String,
    },
    #[error("alert value is a {found}, but the rule compares it with a {expected}")]
    UnitMismatch { expected: String, found: String },
    #[error("division by zero")]
    DivisionByZero,
    #[error("arithmetic overflow")]
    Overflow,
    #[error("invalid regular expression `{0}`")]
    BadPattern(String),
    #[error("{0:?} cannot stand as a URL's host")]
    NotAHost(String),
    #[error("a URL path segment {0:?} would move the request up or across the path")]
    DotSegment(String),
    #[error("cannot extend a URL that already has a query or a fragment")]
    UrlNotExtensible,
}

/// Where the evaluator reads variables.
pub trait Vars {
    fn var(&self, name: &str) -> Option<&Value>;
}

impl Vars for BTreeMap<String, Value> {
    fn var(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

impl Ir {
    /// Evaluates the expression. Values are borrowed where possible (constants, variables,
    /// fields of borrowed records), so matching an alert allocates almost nothing.
    pub fn eval<'a>(&'a self, vars: &'a dyn Vars) -> Result<Value, EvalError> {
        self.eval_ref(vars).map(Cow::into_owned)
    }

    fn eval_ref<'a>(&'a self, vars: &'a dyn Vars) -> Result<Cow<'a, Value>, EvalError> {
        match self {
            Ir::Const { value } => Ok(Cow::Borrowed(value)),
            Ir::Var { name } => vars
                .var(name)
                .map(Cow::Borrowed)
                .ok_or_else(|| EvalError::UnknownVariable(name.clone())),
            Ir::Field { base, field } => Ok(match base.eval_ref(vars)? {
                Cow::Borrowed(Value::Record(fields)) => fields
                    .get(field)
                    .map_or(Cow::Owned(Value::Null), Cow::Borrowed),
                Cow::Owned(Value::Record(fields)) => {
                    Cow::Owned(fields.get(field).cloned().unwrap_or(Value::Null))
                }
                _ => Cow::Owned(Value::Null),
            }),
            Ir::Index { base, index } => {
                let base = base.eval_ref(vars)?;
                let index = index.eval_ref(vars)?;
                Ok(Cow::Owned(match (base.as_ref(), index.as_ref()) {
                    (Value::Record(fields), Value::String(key)) => {
                        fields.get(key).cloned().unwrap_or(Value::Null)
                    }
                    (Value::List(items), Value::Int(position)) => usize::try_from(*position)
                        .ok()
                        .and_then(|position| items.get(position).cloned())
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                }))
            }
            Ir::Not { arg } => match arg.eval_ref(vars)?.as_ref() {
                Value::Bool(value) => Ok(Cow::Owned(Value::Bool(!value))),
                other => Err(mismatch("negate", other, &Value::Bool(true))),
            },
            Ir::Neg { arg } => Ok(Cow::Owned(match arg.eval_ref(vars)?.unquantified() {
                Value::Int(value) => value
                    .checked_neg()
                    .map(Value::Int)
                    .ok_or(EvalError::Overflow)?,
                Value::Float(value) => Value::Float(-value),
                Value::Duration(value) => value
                    .checked_neg()
                    .map(Value::Duration)
                    .ok_or(EvalError::Overflow)?,
                Value::Percent(value) => Value::Percent(-value),
                other => return Err(mismatch("negate", &other, &other)),
            })),
            Ir::Binary { op, left, right } => binary(*op, left, right, vars),
            Ir::Regex {
                negated,
                left,
                pattern,
            } => {
                let value = left.eval_ref(vars)?;
                let text = match value.as_ref() {
                    Value::String(text) => text,
                    Value::Null => return Ok(Cow::Owned(Value::Bool(*negated))),
                    other => return Err(mismatch("match", other, &Value::String(String::new()))),
                };
                let regex = pattern
                    .regex()
                    .ok_or_else(|| EvalError::BadPattern(pattern.source.clone()))?;
                Ok(Cow::Owned(Value::Bool(regex.is_match(text) != *negated)))
            }
            Ir::List { items } => Ok(Cow::Owned(Value::List(
                items
                    .iter()
                    .map(|item| item.eval(vars))
                    .collect::<Result<_, _>>()?,
            ))),
            Ir::Record { fields } => Ok(Cow::Owned(Value::Record(Arc::new(
                fields
                    .iter()
                    .map(|(key, value)| Ok((key.clone(), value.eval(vars)?)))
                    .collect::<Result<_, EvalError>>()?,
            )))),
            Ir::Concat { parts } => {
                let mut text = String::new();
                for part in parts {
                    text.push_str(&part.eval_ref(vars)?.to_text());
                }
                Ok(Cow::Owned(Value::String(text)))
            }
            Ir::UrlEscape { arg, part } => {
                let text = arg.eval_ref(vars)?.to_text();
                Ok(Cow::Owned(Value::String(part.escape(&text)?)))
            }
            Ir::Url { base, parts } => {
                let (mut href, mut host_from_data) = match base {
                    Some(base) => match base.eval_ref(vars)?.as_ref() {
                        Value::Url(url) => (url.href.clone(), url.host_from_data),
                        other => return Err(mismatch("extend", other, other)),
                    },
                    None => (String::new(), false),
                };
                if base.is_some() && !parts.is_empty() && href.contains(['?', '#']) {
                    return Err(EvalError::UrlNotExtensible);
                }
                for part in parts {
                    if let Ir::UrlEscape {
                        part: UrlPart::Host,
                        ..
                    } = part
                    {
                        host_from_data = true;
                    }
                    href.push_str(&part.eval_ref(vars)?.to_text());
                }
                check_path_segments(&href)?;
                Ok(Cow::Owned(Value::Url(UrlValue {
                    href,
                    host_from_data,
                })))
            }
            Ir::Unit { arg, unit } => {
                let value = arg.eval_ref(vars)?;
                if !matches!(value.as_ref(), Value::Quantity(_)) {
                    return Ok(value);
                }
                let found = value.type_name();
                if found != unit.as_str() {
                    return Err(EvalError::UnitMismatch {
                        expected: unit.clone(),
                        found: found.into(),
                    });
                }
                Ok(Cow::Owned(value.unquantified()))
            }
        }
    }

    /// Evaluates a condition: only `true` is true.
    pub fn eval_bool(&self, vars: &dyn Vars) -> Result<bool, EvalError> {
        match self.eval_ref(vars)?.as_ref() {
            Value::Bool(value) => Ok(*value),
            Value::Null => Ok(false),
            other => Err(mismatch("test", other, &Value::Bool(true))),
        }
    }
}

fn mismatch(op: &str, left: &Value, right: &Value) -> EvalError {
    EvalError::Mismatch {
        op: op.into(),
        left: left.type_name().into(),
        right: right.type_name().into(),
    }
}

fn binary<'a>(
    op: BinOp,
    left: &'a Ir,
    right: &'a Ir,
    vars: &'a dyn Vars,
) -> Result<Cow<'a, Value>, EvalError> {
    let boolean = |value: bool| Ok(Cow::Owned(Value::Bool(value)));
    match op {
        BinOp::And => {
            if !left.eval_bool(vars)? {
                return boolean(false);
            }
            return boolean(right.eval_bool(vars)?);
        }
        BinOp::Or => {
            if left.eval_bool(vars)? {
                return boolean(true);
            }
            return boolean(right.eval_bool(vars)?);
        }
        BinOp::Coalesce => {
            let value = left.eval_ref(vars)?;
            if *value != Value::Null {
                return Ok(value);
            }
            return right.eval_ref(vars);
        }
        _ => {}
    }
    let left_value = left.eval_ref(vars)?;
    let right_value = right.eval_ref(vars)?;
    let (left_value, right_value) = (left_value.as_ref(), right_value.as_ref());
    match op {
        BinOp::Eq => boolean(equal(left_value, right_value)?),
        BinOp::Ne => boolean(!equal(left_value, right_value)?),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ordering = compare(left_value, right_value)?;
            boolean(match op {
                BinOp::Lt => ordering.is_lt(),
                BinOp::Le => ordering.is_le(),
                BinOp::Gt => ordering.is_gt(),
                _ => ordering.is_ge(),
            })
        }
        BinOp::In | BinOp::NotIn => {
            let found = match right_value {
                Value::List(items) => {
                    let mut found = false;
                    for item in items {
                        if equal(left_value, item)? {
                            found = true;
                            break;
                        }
                    }
                    found
                }
                Value::Record(fields) => match left_value {
                    Value::String(key) => fields.contains_key(key),
                    _ => false,
                },
                Value::Null => false,
                other => return Err(mismatch("look in", left_value, other)),
            };
            boolean(found == (op == BinOp::In))
        }
        BinOp::Match | BinOp::NotMatch => {
            // Patterns that are not literals are compiled here, once per evaluation.
            let (Value::String(text), Value::String(pattern)) = (left_value, right_value) else {
                return Err(mismatch("match", left_value, right_value));
            };
            let regex =
                regex::Regex::new(pattern).map_err(|_| EvalError::BadPattern(pattern.clone()))?;
            boolean(regex.is_match(text) == (op == BinOp::Match))
        }
        _ => {
            arithmetic(op, &left_value.unquantified(), &right_value.unquantified()).map(Cow::Owned)
        }
    }
}

/// Equality with numeric widening and unit-aware quantities. Absent equals only absent.
fn equal(left: &Value, right: &Value) -> Result<bool, EvalError> {
    match (left, right) {
        (Value::Null, Value::Null) => Ok(true),
        (Value::Null, _) | (_, Value::Null) => Ok(false),
        (Value::Quantity(_), _) | (_, Value::Quantity(_)) => Ok(compare(left, right)?.is_eq()),
        (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => {
            Ok((*a as f64) == *b)
        }
        (Value::Enum { name: a, .. }, Value::Enum { name: b, .. }) => Ok(a == b),
        (a, b) => Ok(a == b),
    }
}

fn compare(left: &Value, right: &Value) -> Result<std::cmp::Ordering, EvalError> {
    use std::cmp::Ordering;
    let float_order = |a: f64, b: f64| a.partial_cmp(&b).unwrap_or(Ordering::Equal);
    if let (Value::Quantity(_), Value::Quantity(_)) = (left, right) {
        let (a, b) = (left.unquantified(), right.unquantified());
        if std::mem::discriminant(&a) != std::mem::discriminant(&b) {
            return Err(EvalError::UnitMismatch {
                expected: a.type_name().into(),
                found: b.type_name().into(),
            });
        }
        return compare(&a, &b);
    }
    // A quantity takes the unit of the other side, or the comparison fails.
    if let (Value::Quantity(quantity), other) | (other, Value::Quantity(quantity)) = (left, right) {
        let flipped = matches!(right, Value::Quantity(_)) && !matches!(left, Value::Quantity(_));
        let converted = match (quantity, other) {
            (QuantityValue::Number(value), Value::Int(_) | Value::Float(_)) => Value::Float(*value),
            (QuantityValue::Duration(value), Value::Duration(_)) => Value::Duration(*value),
            (QuantityValue::Percent(value), Value::Percent(_)) => Value::Percent(*value),
            (QuantityValue::Size(value), Value::Size(_)) => Value::Size(*value),
            _ => {
                return Err(EvalError::UnitMismatch {
                    expected: other.type_name().into(),
                    found: Value::Quantity(*quantity).type_name().into(),
                });
            }
        };
        let ordering = compare(&converted, other)?;
        return Ok(if flipped {
            ordering.reverse()
        } else {
            ordering
        });
    }
    Ok(match (left, right) {
        (Value::Int(a), Value::Int(b)) => a.cmp(b),
        (Value::Int(a), Value::Float(b)) => float_order(*a as f64, *b),
        (Value::Float(a), Value::Int(b)) => float_order(*a, *b as f64),
        (Value::Float(a), Value::Float(b)) | (Value::Percent(a), Value::Percent(b)) => {
            float_order(*a, *b)
        }
        (Value::Duration(a), Value::Duration(b)) | (Value::Time(a), Value::Time(b)) => a.cmp(b),
        (Value::Size(a), Value::Size(b)) => a.cmp(b),
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Enum { index: a, .. }, Value::Enum { index: b, .. }) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        _ => return Err(mismatch("compare", left, right)),
    })
}

fn arithmetic(op: BinOp, left: &Value, right: &Value) -> Result<Value, EvalError> {
    use Value::*;
    let int = |result: Option<i64>| result.ok_or(EvalError::Overflow);
    let as_float = |value: &Value| match value {
        Int(value) => Some(*value as f64),
        Float(value) => Some(*value),
        _ => None,
    };
    Ok(match (op, left, right) {
        (BinOp::Add, Int(a), Int(b)) => Int(int(a.checked_add(*b))?),
        (BinOp::Sub, Int(a), Int(b)) => Int(int(a.checked_sub(*b))?),
        (BinOp::Mul, Int(a), Int(b)) => Int(int(a.checked_mul(*b))?),
        (BinOp::Div, _, Int(0)) => return Err(EvalError::DivisionByZero),
        (BinOp::Add, Duration(a), Duration(b)) => Duration(int(a.checked_add(*b))?),
        (BinOp::Sub, Duration(a), Duration(b)) => Duration(int(a.checked_sub(*b))?),
        (BinOp::Add, Time(a), Duration(b)) | (BinOp::Add, Duration(b), Time(a)) => {
            Time(int(a.checked_add(*b))?)
        }
        (BinOp::Sub, Time(a), Duration(b)) => Time(int(a.checked_sub(*b))?),
        (BinOp::Sub, Time(a), Time(b)) => Duration(int(a.checked_sub(*b))?),
        (BinOp::Add, Percent(a), Percent(b)) => Percent(a + b),
        (BinOp::Sub, Percent(a), Percent(b)) => Percent(a - b),
        (BinOp::Add, Size(a), Size(b)) => Size(a.checked_add(*b).ok_or(EvalError::Overflow)?),
        (BinOp::Sub, Size(a), Size(b)) => Size(a.saturating_sub(*b)),
        (BinOp::Div, Duration(a), Duration(b)) => {
            if *b == 0 {
                return Err(EvalError::DivisionByZero);
            }
            Float(*a as f64 / *b as f64)
        }
        (BinOp::Div, Size(a), Size(b)) => {
            if *b == 0 {
                return Err(EvalError::DivisionByZero);
            }
            Float(*a as f64 / *b as f64)
        }
        (op, a, b) if as_float(a).is_some() && as_float(b).is_some() => {
            let (a, b) = (as_float(a).unwrap_or(0.0), as_float(b).unwrap_or(0.0));
            match op {
                BinOp::Add => Float(a + b),
                BinOp::Sub => Float(a - b),
                BinOp::Mul => Float(a * b),
                _ if b == 0.0 => return Err(EvalError::DivisionByZero),
                _ => Float(a / b),
            }
        }
        (op, scaled, factor) | (op, factor, scaled)
            if matches!(op, BinOp::Mul) && as_float(factor).is_some() =>
        {
            let factor = as_float(factor).unwrap_or(1.0);
            scaled_value(scaled, factor).map_err(|()| mismatch(op.as_str(), left, right))??
        }
        (BinOp::Div, scaled, factor) if as_float(factor).is_some() => {
            let factor = as_float(factor).unwrap_or(1.0);
            if factor == 0.0 {
                return Err(EvalError::DivisionByZero);
            }
            scaled_value(scaled, 1.0 / factor).map_err(|()| mismatch("divide", left, right))??
        }
        _ => return Err(mismatch(op.as_str(), left, right)),
    })
}

/// `Err(())` when the value has no unit to scale, `Ok(Err(Overflow))` when the result is
/// out of range.
fn scaled_value(value: &Value, factor: f64) -> Result<Result<Value, EvalError>, ()> {
    if !matches!(
        value,
        Value::Duration(_) | Value::Percent(_) | Value::Size(_)
    ) {
        return Err(());
    }
    Ok(scale(value, factor).ok_or(EvalError::Overflow))
}

/// A unit value times a number; `None` when the result leaves the unit's range (the caller
/// reports it) rather than saturating silently.
fn scale(value: &Value, factor: f64) -> Option<Value> {
    let in_range = |result: f64, min: f64, max: f64| {
        (result.is_finite() && result >= min && result <= max).then_some(result)
    };
    Some(match value {
        Value::Duration(millis) => Value::Duration(in_range(
            (*millis as f64 * factor).round(),
            i64::MIN as f64,
            i64::MAX as f64,
        )? as i64),
        Value::Percent(points) => Value::Percent(in_range(points * factor, f64::MIN, f64::MAX)?),
        Value::Size(bytes) => {
            Value::Size(in_range((*bytes as f64 * factor).round(), 0.0, u64::MAX as f64)? as u64)
        }
        _ => return None,
    })
}
