//! JSON held as its compact text. Queued notifications and telemetry wait in memory (up to the
//! queues' sizes) for as long as a sink is down; as text they take a few kilobytes each, where a
//! `serde_json::Value` tree of the same report takes several times that in small allocations.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};

/// A JSON value kept as compact text; serialises as the value itself.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CompactJson(Box<RawValue>);

impl CompactJson {
    /// `value` as compact JSON (`null` if it cannot be serialised, which the agent's own types
    /// never cause).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> CompactJson {
        let raw = serde_json::value::to_raw_value(value)
            .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("`null` is JSON"));
        CompactJson(raw)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The value as a tree, for building payloads around it.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for CompactJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for CompactJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_as_the_value_itself() {
        let v = json!({"b": 1, "a": [true, null, "x\"y"]});
        let c = CompactJson::of(&v);
        assert_eq!(c.get(), r#"{"b":1,"a":[true,null,"x\"y"]}"#);
        assert_eq!(c.to_value(), v);
        let wrapped = serde_json::to_string(&json!({"report": c})).unwrap();
        assert_eq!(wrapped, r#"{"report":{"b":1,"a":[true,null,"x\"y"]}}"#);
        let back: CompactJson = serde_json::from_str(" { \"b\" : 1 } ").unwrap();
        assert_eq!(back.to_value(), json!({"b": 1}));
        assert_eq!(back, back.clone());
    }
}
