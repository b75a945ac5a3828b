//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902, all six operations) over
//! `serde_json::Value`. Recursion is bounded by serde_json's parse depth limit (128): a patch or
//! document deeper than that never gets here.
//!
//! Error texts follow github.com/evanphx/json-patch, the library the real API server uses, so
//! that the `causes` of a 422 read the same.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PatchError {
    /// The body does not decode as a list of operations; the server answers 400.
    #[error("{0}")]
    Malformed(String),
    /// A well-formed operation that does not apply to the document; the server answers 422.
    #[error("{0}")]
    NotApplicable(String),
}

/// RFC 7386: objects merge recursively, `null` removes a member, anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target_members) = target {
        for (key, value) in patch_members {
            if value.is_null() {
                target_members.remove(key);
            } else {
                merge(
                    target_members.entry(key.clone()).or_insert(Value::Null),
                    value,
                );
            }
        }
    }
}

/// RFC 6902: applies the operations in order; the document is unchanged when one fails.
pub(crate) fn apply_json_patch(document: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(operations) = patch else {
        return Err(PatchError::Malformed(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            json_type(patch)
        )));
    };
    let mut result = document.clone();
    for operation in operations {
        apply_operation(&mut result, operation)?;
    }
    Ok(result)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn apply_operation(document: &mut Value, operation: &Value) -> Result<(), PatchError> {
    let Value::Object(fields) = operation else {
        return Err(PatchError::Malformed(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            json_type(operation)
        )));
    };
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    let op = text("op").unwrap_or("");
    let path = text("path")
        .ok_or_else(|| PatchError::NotApplicable(format!("{op} operation: missing path")))?;
    let tokens = pointer(path)?;
    let value = || {
        fields
            .get("value")
            .cloned()
            .ok_or_else(|| PatchError::NotApplicable(format!("{op} operation: missing value")))
    };
    let from = || -> Result<Vec<String>, PatchError> {
        let from = text("from")
            .ok_or_else(|| PatchError::NotApplicable(format!("{op} operation: missing from")))?;
        pointer(from)
    };
    match op {
        "add" => add(document, &tokens, value()?, path),
        "remove" => remove(document, &tokens, path).map(drop),
        "replace" => {
            let replacement = value()?;
            let slot = get_mut(document, &tokens).ok_or_else(|| {
                PatchError::NotApplicable(format!(
                    "replace operation does not apply: doc is missing key: {path}: missing value"
                ))
            })?;
            *slot = replacement;
            Ok(())
        }
        "move" => {
            let from_tokens = from()?;
            if tokens.len() > from_tokens.len() && tokens.starts_with(&from_tokens) {
                return Err(PatchError::NotApplicable(format!(
                    "move operation does not apply: cannot move {path} into its own child"
                )));
            }
            let moved = remove(document, &from_tokens, text("from").unwrap_or(""))?;
            add(document, &tokens, moved, path)
        }
        "copy" => {
            let copied = get(document, &from()?).cloned().ok_or_else(|| {
                PatchError::NotApplicable(format!(
                    "copy operation does not apply: doc is missing from path: {}: missing value",
                    text("from").unwrap_or("")
                ))
            })?;
            add(document, &tokens, copied, path)
        }
        "test" => {
            let expected = value()?;
            // evanphx/json-patch treats a missing path as null for `test`.
            let actual = get(document, &tokens).unwrap_or(&Value::Null);
            if *actual == expected {
                Ok(())
            } else {
                Err(PatchError::NotApplicable(format!(
                    "testing value {path} failed: test failed"
                )))
            }
        }
        other => Err(PatchError::Malformed(format!("Unexpected kind: {other}"))),
    }
}

/// RFC 6901 pointer tokens, `~1` and `~0` unescaped.
fn pointer(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PatchError::NotApplicable(format!(
            "JSON pointer must be empty or start with a \"/\": {path}"
        )));
    };
    Ok(rest
        .split('/')
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// An array index token: digits without a leading zero; `-` is one past the end.
fn index(token: &str, length: usize, end_allowed: bool) -> Option<usize> {
    if token == "-" {
        return end_allowed.then_some(length);
    }
    if token.is_empty()
        || !token.bytes().all(|byte| byte.is_ascii_digit())
        || (token.len() > 1 && token.starts_with('0'))
    {
        return None;
    }
    token.parse().ok()
}

fn get<'a>(document: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(document, |node, token| match node {
        Value::Object(members) => members.get(token),
        Value::Array(items) => items.get(index(token, items.len(), false)?),
        _ => None,
    })
}

fn get_mut<'a>(document: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    tokens.iter().try_fold(document, |node, token| match node {
        Value::Object(members) => members.get_mut(token),
        Value::Array(items) => {
            let position = index(token, items.len(), false)?;
            items.get_mut(position)
        }
        _ => None,
    })
}

fn add(
    document: &mut Value,
    tokens: &[String],
    value: Value,
    path: &str,
) -> Result<(), PatchError> {
    let missing = || {
        PatchError::NotApplicable(format!(
            "add operation does not apply: doc is missing path: {path:?}: missing value"
        ))
    };
    let Some((last, parent_tokens)) = tokens.split_last() else {
        *document = value;
        return Ok(());
    };
    match get_mut(document, parent_tokens).ok_or_else(missing)? {
        Value::Object(members) => {
            members.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let position = index(last, items.len(), true)
                .filter(|position| *position <= items.len())
                .ok_or_else(missing)?;
            items.insert(position, value);
            Ok(())
        }
        _ => Err(missing()),
    }
}

fn remove(document: &mut Value, tokens: &[String], path: &str) -> Result<Value, PatchError> {
    let missing = || {
        PatchError::NotApplicable(format!(
            "remove operation does not apply: doc is missing path: {path:?}: missing value"
        ))
    };
    let (last, parent_tokens) = tokens.split_last().ok_or_else(missing)?;
    match get_mut(document, parent_tokens).ok_or_else(missing)? {
        Value::Object(members) => members.remove(last).ok_or_else(missing),
        Value::Array(items) => {
            let position = index(last, items.len(), false)
                .filter(|position| *position < items.len())
                .ok_or_else(missing)?;
            Ok(items.remove(position))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_follows_rfc_7386_examples() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge(&mut target, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}}));
        let mut target = json!({"a": [{"b": "c"}]});
        merge(&mut target, &json!({"a": [1]}));
        assert_eq!(target, json!({"a": [1]}));
    }

    #[test]
    fn json_patch_operations() -> Result<(), PatchError> {
        let document = json!({"spec": {"replicas": 2, "list": [1, 2]}, "a~b": {"c/d": 1}});
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/list/-", "value": 3},
            {"op": "add", "path": "/spec/list/0", "value": 0},
            {"op": "remove", "path": "/spec/list/1"},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
            {"op": "move", "from": "/a~0b/c~1d", "path": "/moved"},
        ]);
        let patched = apply_json_patch(&document, &patch)?;
        assert_eq!(
            patched,
            json!({"spec": {"replicas": 3, "list": [0, 2, 3], "copied": 3}, "a~b": {}, "moved": 1})
        );
        Ok(())
    }

    #[test]
    fn json_patch_failures() {
        let document = json!({"spec": {"replicas": 2, "list": []}});
        let failed_test = json!([{"op": "test", "path": "/spec/replicas", "value": 5}]);
        assert_eq!(
            apply_json_patch(&document, &failed_test),
            Err(PatchError::NotApplicable(
                "testing value /spec/replicas failed: test failed".to_owned()
            ))
        );
        for patch in [
            json!([{"op": "replace", "path": "/spec/missing", "value": 1}]),
            json!([{"op": "remove", "path": "/spec/list/0"}]),
            json!([{"op": "add", "path": "/nope/x", "value": 1}]),
            json!([{"op": "add", "path": "/spec/list/01", "value": 1}]),
            json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}]),
        ] {
            assert!(matches!(
                apply_json_patch(&document, &patch),
                Err(PatchError::NotApplicable(_))
            ));
        }
        assert!(matches!(
            apply_json_patch(&document, &json!({"op": "add"})),
            Err(PatchError::Malformed(_))
        ));
        assert!(matches!(
            apply_json_patch(&document, &json!([{"op": "frobnicate", "path": "/a"}])),
            Err(PatchError::Malformed(_))
        ));
    }
}
