//! JSON read strictly: an object naming a key twice is refused, because receivers disagree on
//! which one counts (Go's maps keep the last, some decoders the first), and the policy must be
//! judged on the value the receiver uses.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

use super::WriteError;

/// Parses `bytes` as JSON with no duplicate object keys.
pub(super) fn parse(bytes: &[u8]) -> Result<Value, WriteError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue::deserialize(&mut de).map_err(|e| WriteError::Json(e.to_string()))?;
    de.end().map_err(|e| WriteError::Json(e.to_string()))?;
    Ok(value.0)
}

pub(super) fn to_vec(value: &Value) -> Result<Vec<u8>, WriteError> {
    serde_json::to_vec(value).map_err(|e| WriteError::Json(e.to_string()))
}

/// The one field of `object` spelled `camel` or `snake` (protobuf's JSON mapping accepts both),
/// refusing an object that spells it both ways.
pub(super) fn field<'v>(
    object: &'v Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Result<Option<&'v Value>, WriteError> {
    match (
        object.get(camel),
        object.get(snake).filter(|_| camel != snake),
    ) {
        (Some(_), Some(_)) => Err(WriteError::Json(format!(
            "an object names both \"{camel}\" and \"{snake}\""
        ))),
        (one, None) | (None, one) => Ok(one),
    }
}

/// The key under which `object` holds the field spelled `camel` or `snake`, if any.
pub(super) fn key_of(
    object: &Map<String, Value>,
    camel: &'static str,
    snake: &'static str,
) -> Result<Option<&'static str>, WriteError> {
    field(object, camel, snake)?;
    Ok(if object.contains_key(camel) {
        Some(camel)
    } else if object.contains_key(snake) {
        Some(snake)
    } else {
        None
    })
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "an object names key \"{}\" twice",
                    key.escape_debug()
                )));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}
