//! Kubernetes object names, checked before any request: a name that alert data made up
//! (`../secrets`, `a b`, an empty label) never reaches the API server's URL.

/// Why a name is not a valid Kubernetes name (DNS-1123), in words.
pub fn dns1123_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "it is {} characters long, more than 63",
            name.len()
        ));
    }
    label_characters(name)
}

/// A DNS-1123 subdomain: labels joined by dots, at most 253 characters (Deployment names).
pub fn dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 253 {
        return Err(format!(
            "it is {} characters long, more than 253",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty part between dots".into());
        }
        label_characters(label)?;
    }
    Ok(())
}

fn label_characters(label: &str) -> Result<(), String> {
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "it contains {bad:?}: only lower-case letters, digits and '-' are allowed"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("it starts or ends with '-'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(dns1123_label("order-service").is_ok());
        assert!(dns1123_label("a1").is_ok());
        for bad in ["", "-a", "a-", "A", "a.b", "a b", "../x", "a_b", "é"] {
            assert!(dns1123_label(bad).is_err(), "{bad:?}");
        }
        assert!(dns1123_label(&"a".repeat(63)).is_ok());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn subdomains() {
        assert!(dns1123_subdomain("order-service.v2").is_ok());
        for bad in ["", ".a", "a.", "a..b", "a/b", "A.b", "%2e%2e"] {
            assert!(dns1123_subdomain(bad).is_err(), "{bad:?}");
        }
        assert!(dns1123_subdomain(&"a".repeat(254)).is_err());
    }
}
