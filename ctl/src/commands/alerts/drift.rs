//! Drift: where a resource as Azure returns it differs from the body `deploy` would write. Only the
//! fields cryptoctl writes are compared (Azure adds read-only ones: `id`, `systemData`, a
//! receiver's `status`, `createdWithApiVersion`, ...), and a few values compare the way Azure
//! treats them: resource ids and regions ignore case (and a region its spaces), numbers compare by
//! value (`1` is `1.0`), an empty list is an absent one, and tags added by others are ignored.

use serde_json::Value;

/// The paths (`properties.criteria.allOf[0].threshold`) where `actual` differs from `desired`.
pub fn differences(desired: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    compare(desired, actual, "", "", &mut out);
    out
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn same_string(key: &str, d: &str, a: &str) -> bool {
    if d == a {
        return true;
    }
    if key == "location" {
        let norm = |s: &str| s.replace(' ', "").to_ascii_lowercase();
        return norm(d) == norm(a);
    }
    d.starts_with("/subscriptions/") && d.eq_ignore_ascii_case(a)
}

fn compare(desired: &Value, actual: &Value, key: &str, path: &str, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => {
            for (k, dv) in d {
                match a.get(k) {
                    Some(av) => compare(dv, av, k, &join(k), out),
                    None if is_empty(dv) => {}
                    None => out.push(join(k)),
                }
            }
        }
        (Value::Array(d), Value::Array(a)) => {
            if d.len() != a.len() {
                out.push(path.to_owned());
            } else {
                for (i, (dv, av)) in d.iter().zip(a).enumerate() {
                    compare(dv, av, key, &format!("{path}[{i}]"), out);
                }
            }
        }
        (Value::Number(d), Value::Number(a)) => {
            if d.as_f64() != a.as_f64() {
                out.push(path.to_owned());
            }
        }
        (Value::String(d), Value::String(a)) => {
            if !same_string(key, d, a) {
                out.push(path.to_owned());
            }
        }
        (d, Value::Null) if is_empty(d) => {}
        (d, a) => {
            if d != a {
                out.push(path.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_written_fields_count_and_azure_spellings_are_equal() {
        let desired = json!({"location": "westeurope", "tags": {"managed-by": "cryptoctl"},
            "properties": {"severity": 1, "threshold": 1.0, "scopes": ["/subscriptions/S/resourceGroups/Ops/x"],
                           "emailReceivers": [], "webhookReceivers": [{"name": "w", "serviceUri": "https://x"}]}});
        let actual = json!({"id": "/x", "location": "West Europe", "tags": {"managed-by": "cryptoctl", "owner": "me"},
            "properties": {"severity": 1, "threshold": 1, "scopes": ["/subscriptions/s/resourcegroups/ops/x"],
                           "webhookReceivers": [{"name": "w", "serviceUri": "https://x", "status": "Enabled"}],
                           "createdWithApiVersion": "2021-08-01"}});
        assert!(
            differences(&desired, &actual).is_empty(),
            "{:?}",
            differences(&desired, &actual)
        );
        let mut changed = actual.clone();
        changed["properties"]["severity"] = json!(3);
        changed["properties"]["webhookReceivers"][0]["serviceUri"] = json!("https://y");
        changed["tags"] = json!({});
        assert_eq!(
            differences(&desired, &changed),
            [
                "tags.managed-by",
                "properties.severity",
                "properties.webhookReceivers[0].serviceUri"
            ]
        );
    }
}
