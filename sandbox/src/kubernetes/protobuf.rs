//! Just enough of the Kubernetes protobuf encoding to read a SelfSubjectAccessReview:
//! `kubectl auth can-i` sends its review as `application/vnd.kubernetes.protobuf` (answers
//! may be JSON: clients decode by the answer's `Content-Type`).
//!
//! The envelope (<https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding>)
//! is the magic `k8s\0` and a `runtime.Unknown` message whose field 2 holds the object's
//! bytes. Field numbers below are those of k8s.io/api/authorization/v1/generated.proto.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtobufError {
    #[error("the body does not start with the Kubernetes protobuf magic number")]
    NoMagic,
    #[error("truncated protobuf message")]
    Truncated,
    #[error("protobuf wire type {0} is not supported")]
    WireType(u64),
    #[error("protobuf field {0} is not valid UTF-8")]
    NotUtf8(u64),
}

const MAGIC: &[u8] = b"k8s\0";

enum Field<'a> {
    Varint,
    Bytes(&'a [u8]),
}

fn varint(bytes: &mut &[u8]) -> Result<u64, ProtobufError> {
    let mut value = 0_u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(ProtobufError::Truncated)?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtobufError::Truncated)
}

fn take<'a>(bytes: &mut &'a [u8], length: usize) -> Result<&'a [u8], ProtobufError> {
    if bytes.len() < length {
        return Err(ProtobufError::Truncated);
    }
    let (taken, rest) = bytes.split_at(length);
    *bytes = rest;
    Ok(taken)
}

fn fields(message: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ProtobufError> {
    let mut rest = message;
    let mut parsed = Vec::new();
    while !rest.is_empty() {
        let key = varint(&mut rest)?;
        let number = key >> 3;
        let field = match key & 7 {
            0 => {
                varint(&mut rest)?;
                Field::Varint
            }
            1 => {
                take(&mut rest, 8)?;
                Field::Varint
            }
            2 => {
                let length =
                    usize::try_from(varint(&mut rest)?).map_err(|_| ProtobufError::Truncated)?;
                Field::Bytes(take(&mut rest, length)?)
            }
            5 => {
                take(&mut rest, 4)?;
                Field::Varint
            }
            other => return Err(ProtobufError::WireType(other)),
        };
        parsed.push((number, field));
    }
    Ok(parsed)
}

fn message_field(message: &[u8], number: u64) -> Result<Option<&[u8]>, ProtobufError> {
    Ok(fields(message)?
        .into_iter()
        .rev()
        .find_map(|(found, field)| match field {
            Field::Bytes(bytes) if found == number => Some(bytes),
            _ => None,
        }))
}

/// The string fields of a message as a JSON object, by `(number, json name)`; empty strings
/// are omitted, as the JSON encoding's `omitempty` does.
fn strings(message: &[u8], names: &[(u64, &str)]) -> Result<Value, ProtobufError> {
    let mut object = Map::new();
    for (number, name) in names {
        if let Some(bytes) = message_field(message, *number)? {
            let text = std::str::from_utf8(bytes).map_err(|_| ProtobufError::NotUtf8(*number))?;
            if !text.is_empty() {
                object.insert((*name).to_owned(), Value::String(text.to_owned()));
            }
        }
    }
    Ok(Value::Object(object))
}

/// A protobuf SelfSubjectAccessReview as its JSON form (`spec` only: the rest is ignored by
/// the server too).
pub(crate) fn self_subject_access_review(body: &[u8]) -> Result<Value, ProtobufError> {
    let unknown = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let raw = message_field(unknown, 2)?.unwrap_or_default();
    let spec_bytes = message_field(raw, 2)?.unwrap_or_default();
    let mut spec = Map::new();
    if let Some(attributes) = message_field(spec_bytes, 1)? {
        spec.insert(
            "resourceAttributes".to_owned(),
            strings(
                attributes,
                &[
                    (1, "namespace"),
                    (2, "verb"),
                    (3, "group"),
                    (4, "version"),
                    (5, "resource"),
                    (6, "subresource"),
                    (7, "name"),
                ],
            )?,
        );
    }
    if let Some(attributes) = message_field(spec_bytes, 2)? {
        spec.insert(
            "nonResourceAttributes".to_owned(),
            strings(attributes, &[(1, "path"), (2, "verb")])?,
        );
    }
    Ok(serde_json::json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn length_delimited(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut encoded = vec![(number << 3) | 2, u8::try_from(bytes.len()).unwrap_or(0)];
        encoded.extend_from_slice(bytes);
        encoded
    }

    #[test]
    fn reads_a_review() -> Result<(), ProtobufError> {
        let mut attributes = length_delimited(1, b"shop");
        attributes.extend(length_delimited(2, b"patch"));
        attributes.extend(length_delimited(3, b"apps"));
        attributes.extend(length_delimited(5, b"deployments"));
        attributes.extend(length_delimited(6, b"scale"));
        let spec = length_delimited(1, &attributes);
        let review = length_delimited(2, &spec);
        let mut body = MAGIC.to_vec();
        body.extend(length_delimited(
            1,
            &length_delimited(2, b"SelfSubjectAccessReview"),
        ));
        body.extend(length_delimited(2, &review));
        let decoded = self_subject_access_review(&body)?;
        assert_eq!(
            decoded.pointer("/spec/resourceAttributes"),
            Some(&serde_json::json!({
                "namespace": "shop", "verb": "patch", "group": "apps",
                "resource": "deployments", "subresource": "scale",
            }))
        );
        assert_eq!(
            self_subject_access_review(b"k8s\0\x12\x05ab"),
            Err(ProtobufError::Truncated)
        );
        assert_eq!(
            self_subject_access_review(b"{}"),
            Err(ProtobufError::NoMagic)
        );
        Ok(())
    }
}
