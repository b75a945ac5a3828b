//! Types, and the environment of declarations the standard library provides.
//!
//! The standard library is written in `.ops` declaration files (`stdlib/*.ops`), embedded in
//! the binary and parsed by the same parser as user files; [`Env::from_stdlib`] turns those
//! declarations into records, enums and function signatures. Nothing here is hard-coded
//! about particular functions: guardrails come from `guard` parameters and the
//! `query`/`action`/`revertible` markers of the declarations.

use crate::FileId;
use crate::ast::{self, Span};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnumId(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FnId(pub u32);

#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Bool,
    Int,
    Float,
    String,
    /// A URL built from a template written in the runbook (`"http://{host}/health"`): its
    /// scheme is fixed by the text, interpolated values are escaped for where they stand,
    /// and a host that comes from data is checked against the configuration at run time.
    /// A `String` never becomes a `Url`.
    Url,
    Duration,
    Percent,
    Size,
    Time,
    /// A number whose unit is known only when the alert arrives (`alert.value`).
    Quantity,
    List(Box<Type>),
    /// Maps always have string keys.
    Map(Box<Type>),
    Record(RecordId),
    /// The type of a record literal `{a: 1}` before it meets an expected type.
    AnonRecord(Vec<(String, Type)>),
    Enum(EnumId),
    Optional(Box<Type>),
    /// The type of a broken expression: compatible with everything, so that one error
    /// does not cause follow-on errors.
    Error,
}

impl Type {
    pub fn is_error(&self) -> bool {
        matches!(self, Type::Error)
    }

    pub fn is_optional(&self) -> bool {
        matches!(self, Type::Optional(_))
    }

    /// The type without its optional wrapper.
    pub fn unwrap_optional(&self) -> &Type {
        match self {
            Type::Optional(inner) => inner,
            other => other,
        }
    }

    pub fn optional(self) -> Type {
        match self {
            Type::Optional(_) | Type::Error => self,
            other => Type::Optional(Box::new(other)),
        }
    }

    /// Unit-carrying types, whose mixing is a unit error rather than a plain type error.
    pub fn is_unit(&self) -> bool {
        matches!(
            self,
            Type::Int
                | Type::Float
                | Type::Duration
                | Type::Percent
                | Type::Size
                | Type::Time
                | Type::Quantity
        )
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Float)
    }

    /// The unit name used to keep `alert.value` comparisons consistent.
    pub fn unit_name(&self) -> Option<&'static str> {
        match self {
            Type::Int | Type::Float => Some("number"),
            Type::Duration => Some("Duration"),
            Type::Percent => Some("Percent"),
            Type::Size => Some("Size"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: String,
    pub ty: Type,
    pub doc: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct RecordDef {
    pub module: String,
    pub name: String,
    pub fields: Vec<FieldDef>,
    pub doc: Option<String>,
    pub file: FileId,
    pub span: Span,
}

impl RecordDef {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|field| field.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct EnumDef {
    pub module: String,
    pub name: String,
    /// In declaration order, which is also their order for `<` and `>`.
    pub variants: Vec<String>,
    pub doc: Option<String>,
    pub file: FileId,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct ParamDef {
    pub name: String,
    pub ty: Type,
    /// The default, as a constant expression (already checked against `ty`).
    pub default: Option<ast::Expr<Type>>,
    /// A limit that callers must give (the `guard` marker); missing it is a guardrail error.
    pub guard: bool,
    pub span: Span,
}

impl ParamDef {
    /// Whether a call must give this parameter.
    pub fn required(&self) -> bool {
        self.default.is_none() && !self.ty.is_optional()
    }
}

#[derive(Debug, Clone)]
pub struct FnDef {
    pub module: String,
    pub name: String,
    pub effect: ast::Effect,
    pub params: Vec<ParamDef>,
    pub returns: Type,
    pub revertible: bool,
    pub doc: Option<String>,
    pub file: FileId,
    pub span: Span,
}

impl FnDef {
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }
}

#[derive(Debug, Clone)]
pub struct ModuleDef {
    pub name: String,
    pub doc: Option<String>,
    pub file: FileId,
    pub records: BTreeMap<String, RecordId>,
    pub enums: BTreeMap<String, EnumId>,
    pub functions: BTreeMap<String, FnId>,
}

/// Everything the standard library declares.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub modules: BTreeMap<String, ModuleDef>,
    pub records: Vec<RecordDef>,
    pub enums: Vec<EnumDef>,
    pub functions: Vec<FnDef>,
}

impl Env {
    pub fn record(&self, id: RecordId) -> Option<&RecordDef> {
        self.records.get(id.0 as usize)
    }

    pub fn enum_def(&self, id: EnumId) -> Option<&EnumDef> {
        self.enums.get(id.0 as usize)
    }

    pub fn function(&self, id: FnId) -> Option<&FnDef> {
        self.functions.get(id.0 as usize)
    }

    pub fn lookup_function(&self, module: &str, name: &str) -> Option<FnId> {
        self.modules.get(module)?.functions.get(name).copied()
    }

    /// The record named `name`, looked up first in `module`, then in every module.
    pub fn find_record(&self, module: Option<&str>, name: &str) -> Option<RecordId> {
        if let Some(found) = module.and_then(|module| self.modules.get(module)?.records.get(name)) {
            return Some(*found);
        }
        self.modules
            .values()
            .find_map(|module| module.records.get(name).copied())
    }

    pub fn find_enum(&self, module: Option<&str>, name: &str) -> Option<EnumId> {
        if let Some(found) = module.and_then(|module| self.modules.get(module)?.enums.get(name)) {
            return Some(*found);
        }
        self.modules
            .values()
            .find_map(|module| module.enums.get(name).copied())
    }

    /// The record type of alerts, declared in `std.alert`.
    pub fn alert_type(&self) -> Type {
        self.find_record(Some("alert"), "Alert")
            .map_or(Type::Error, Type::Record)
    }

    /// Writes a type the way users write it.
    pub fn type_name(&self, ty: &Type) -> String {
        match ty {
            Type::Bool => "Bool".into(),
            Type::Int => "Int".into(),
            Type::Float => "Float".into(),
            Type::String => "String".into(),
            Type::Url => "Url".into(),
            Type::Duration => "Duration".into(),
            Type::Percent => "Percent".into(),
            Type::Size => "Size".into(),
            Type::Time => "Time".into(),
            Type::Quantity => "Quantity".into(),
            Type::List(element) => format!("[{}]", self.type_name(element)),
            Type::Map(value) => format!("{{String: {}}}", self.type_name(value)),
            Type::Record(id) => self
                .record(*id)
                .map(|record| format!("{}.{}", record.module, record.name))
                .unwrap_or_else(|| "record".into()),
            Type::AnonRecord(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(name, ty)| format!("{name}: {}", self.type_name(ty)))
                    .collect();
                format!("{{{}}}", fields.join(", "))
            }
            Type::Enum(id) => self
                .enum_def(*id)
                .map(|def| def.name.clone())
                .unwrap_or_else(|| "enum".into()),
            Type::Optional(inner) => format!("{}?", self.type_name(inner)),
            Type::Error => "an invalid value".into(),
        }
    }

    /// Writes a type with an article, for messages: "a Duration", "an Int".
    pub fn describe(&self, ty: &Type) -> String {
        let name = self.type_name(ty);
        if matches!(ty, Type::Error) {
            return name;
        }
        let article = match name.chars().next() {
            Some('A' | 'E' | 'I' | 'O' | 'U' | 'a' | 'e' | 'i' | 'o' | 'u') => "an",
            _ => "a",
        };
        format!("{article} {name}")
    }
}

/// Names of the built-in scalar types, for resolution and suggestions.
pub const BUILTIN_TYPES: &[&str] = &[
    "Bool", "Int", "Float", "String", "Url", "Duration", "Percent", "Size", "Time", "Quantity",
];

pub fn builtin_type(name: &str) -> Option<Type> {
    Some(match name {
        "Bool" => Type::Bool,
        "Int" => Type::Int,
        "Float" => Type::Float,
        "String" => Type::String,
        "Url" => Type::Url,
        "Duration" => Type::Duration,
        "Percent" => Type::Percent,
        "Size" => Type::Size,
        "Time" => Type::Time,
        "Quantity" => Type::Quantity,
        _ => return None,
    })
}
