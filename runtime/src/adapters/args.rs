//! The arguments of a stdlib call, decoded once into the typed struct of its function.
//!
//! The compiler fills in every parameter (defaults come from the stdlib declaration, and
//! only from there), so an adapter never invents a value: a missing argument, one of the
//! wrong type or one the function does not declare is an [`ArgError`], never a default.

use medic_compiler::plan::{UrlValue, Value};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArgError {
    #[error("`{function}` was called without its argument `{name}`")]
    Missing { function: String, name: String },
    #[error("`{function}`: argument `{name}` must be {expected}, not {found}")]
    WrongType {
        function: String,
        name: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("`{function}` has no parameter `{name}`")]
    Unknown { function: String, name: String },
}

/// The arguments of one call, taken one by one by the decoder of its function.
pub struct Args {
    function: String,
    values: BTreeMap<String, Value>,
}

impl Args {
    pub fn new(function: &str, values: BTreeMap<String, Value>) -> Args {
        Args {
            function: function.to_string(),
            values,
        }
    }

    fn take(&mut self, name: &str) -> Result<Value, ArgError> {
        self.values.remove(name).ok_or_else(|| ArgError::Missing {
            function: self.function.clone(),
            name: name.to_string(),
        })
    }

    fn wrong(&self, name: &str, expected: &'static str, found: &Value) -> ArgError {
        ArgError::WrongType {
            function: self.function.clone(),
            name: name.to_string(),
            expected,
            found: found.type_name(),
        }
    }

    pub fn string(&mut self, name: &str) -> Result<String, ArgError> {
        match self.take(name)? {
            Value::String(text) => Ok(text),
            other => Err(self.wrong(name, "a String", &other)),
        }
    }

    pub fn url(&mut self, name: &str) -> Result<UrlValue, ArgError> {
        match self.take(name)? {
            Value::Url(url) => Ok(url),
            other => Err(self.wrong(name, "a Url", &other)),
        }
    }

    pub fn int(&mut self, name: &str) -> Result<i64, ArgError> {
        match self.take(name)? {
            Value::Int(value) => Ok(value),
            other => Err(self.wrong(name, "an Int", &other)),
        }
    }

    /// A `Duration` argument; negative durations are refused.
    pub fn duration(&mut self, name: &str) -> Result<Duration, ArgError> {
        match self.take(name)? {
            Value::Duration(millis) if millis >= 0 => {
                Ok(Duration::from_millis(millis.unsigned_abs()))
            }
            other => Err(self.wrong(name, "a Duration of zero or more", &other)),
        }
    }

    /// A `Time` argument, in milliseconds since the Unix epoch.
    pub fn time(&mut self, name: &str) -> Result<i64, ArgError> {
        match self.take(name)? {
            Value::Time(millis) => Ok(millis),
            other => Err(self.wrong(name, "a Time", &other)),
        }
    }

    /// A `Time?` argument: `None` when it is none (the compiler passes it all the same).
    pub fn optional_time(&mut self, name: &str) -> Result<Option<i64>, ArgError> {
        match self.take(name)? {
            Value::Null => Ok(None),
            Value::Time(millis) => Ok(Some(millis)),
            other => Err(self.wrong(name, "a Time or none", &other)),
        }
    }

    /// A `[String]` argument.
    pub fn strings(&mut self, name: &str) -> Result<Vec<String>, ArgError> {
        match self.take(name)? {
            Value::List(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text),
                    other => Err(self.wrong(name, "a list of Strings", &other)),
                })
                .collect(),
            other => Err(self.wrong(name, "a list of Strings", &other)),
        }
    }

    /// A `{String: String}` argument.
    pub fn string_map(&mut self, name: &str) -> Result<BTreeMap<String, String>, ArgError> {
        match self.take(name)? {
            Value::Record(fields) => fields
                .iter()
                .map(|(key, value)| match value {
                    Value::String(text) => Ok((key.clone(), text.clone())),
                    other => Err(self.wrong(name, "a map of Strings", other)),
                })
                .collect(),
            other => Err(self.wrong(name, "a map of Strings", &other)),
        }
    }

    /// Ends decoding: an argument nobody took is one the function does not declare.
    pub fn finish(self) -> Result<(), ArgError> {
        match self.values.into_keys().next() {
            Some(name) => Err(ArgError::Unknown {
                function: self.function,
                name,
            }),
            None => Ok(()),
        }
    }
}
