//! JSON text inside the channel's binary messages.
//!
//! Messages are postcard (see `message.rs`), which is not self-describing: it cannot decode a
//! `serde_json::Value`, whose shape is only known from the data. So a value of that kind
//! crosses as a string holding its JSON text, which the receiver parses. An event's data and
//! a handler's result data travel this way, and the corelet tests' free-form payloads.
//!
//! A text that does not parse is kept as its error ([`JsonText`]) rather than failing the
//! message: postcard keeps no message of a nested decoding error, and the receiver can then
//! say exactly what was wrong (an event nested beyond serde_json's recursion limit, say).

use std::fmt;

use serde::de::{DeserializeOwned, Visitor};
use serde::ser::Error as _;
#[cfg(test)]
use serde::Serialize;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;

/// Serializes `value` as its JSON text, `null` as the empty string (for
/// `#[serde(serialize_with)]`): most results carry no data, and the empty text costs no
/// allocation and no parsing.
pub(crate) fn serialize<S: Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_null() {
        return serializer.serialize_str("");
    }
    let text = serde_json::to_string(value).map_err(S::Error::custom)?;
    serializer.serialize_str(&text)
}

/// The deepest nesting of arrays and objects that serde_json parses (its recursion limit is
/// 128: the 128th level fails).
pub(crate) const MAX_DEPTH: usize = 127;

/// Returns `true` if `value` nests arrays and objects deeper than [`MAX_DEPTH`], so that its
/// JSON text would not parse where it is received. Counted without recursion, so that a value
/// of any depth is measured without risk to the stack.
pub(crate) fn too_deep(value: &Value) -> bool {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth + 1 > MAX_DEPTH {
            return true;
        }
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    false
}

/// A value received as JSON text: parsed, or why it does not parse.
#[derive(Debug)]
pub(crate) struct JsonText<T>(pub(crate) Result<T, serde_json::Error>);

impl<T> JsonText<T> {
    /// The parsed value, or an error naming `what` the text was.
    pub(crate) fn parsed(self, what: &str) -> Result<T, String> {
        self.0.map_err(|error| format!("{what} is not valid JSON: {error}"))
    }
}

impl<'de, T: DeserializeOwned + Default> Deserialize<'de> for JsonText<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

struct TextVisitor<T>(std::marker::PhantomData<T>);

impl<T: DeserializeOwned + Default> Visitor<'_> for TextVisitor<T> {
    type Value = JsonText<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string of JSON text")
    }

    // Borrowed from the receive buffer, so the text is parsed where it lies.
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if text.is_empty() {
            return Ok(JsonText(Ok(T::default())));
        }
        Ok(JsonText(serde_json::from_str(text)))
    }
}

/// Any serde type carried as JSON text: for payloads without a fixed shape (the corelet
/// tests send `serde_json::Value`s). Unlike [`JsonText`], a text that does not parse fails
/// the message.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Json<T>(pub(crate) T);

#[cfg(test)]
impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(&self.0).map_err(S::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

#[cfg(test)]
impl<'de, T: DeserializeOwned + Default> Deserialize<'de> for Json<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let JsonText(parsed) = JsonText::<T>::deserialize(deserializer)?;
        parsed.map(Json).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Deserialize)]
    struct Carrier {
        data: JsonText<Value>,
    }

    #[derive(Serialize)]
    struct Sent<'a> {
        #[serde(serialize_with = "serialize")]
        data: &'a Value,
    }

    fn round_trip(value: &Value) -> Result<Value, serde_json::Error> {
        let bytes = postcard::to_stdvec(&Sent { data: value }).expect("encodes");
        let carrier: Carrier = postcard::from_bytes(&bytes).expect("decodes");
        carrier.data.0
    }

    #[test]
    fn values_round_trip_exactly() {
        for value in [Value::Null, json!(0.1), json!({"é": [1, -2, 2.5e300, null, true]}), json!("")] {
            assert_eq!(round_trip(&value).expect("parses"), value);
        }
    }

    /// `too_deep` draws the line where serde_json's parser does.
    #[test]
    fn too_deep_agrees_with_the_parser() {
        let nested = |depth: usize| (0..depth).fold(json!(1), |inner, _| json!([inner]));
        for depth in [0, 1, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 200] {
            let value = nested(depth);
            let parses = serde_json::from_str::<Value>(&value.to_string()).is_ok();
            assert_eq!(too_deep(&value), !parses, "depth {depth}");
        }
        let in_object = (0..MAX_DEPTH).fold(json!({}), |inner, _| json!({"k": [1, inner]}));
        assert!(too_deep(&in_object));
        assert!(serde_json::from_str::<Value>(&in_object.to_string()).is_err());
    }

    #[test]
    fn null_is_the_empty_text() {
        let bytes = postcard::to_stdvec(&Sent { data: &Value::Null }).expect("encodes");
        assert_eq!(bytes, [0], "a zero-length string");
    }

    #[test]
    fn text_that_does_not_parse_is_kept_as_its_error() {
        let bytes = postcard::to_stdvec(&"{\"open\": ").expect("encodes");
        let text: JsonText<Value> = postcard::from_bytes(&bytes).expect("the message decodes");
        let error = text.parsed("the event's data").expect_err("not JSON");
        assert!(error.starts_with("the event's data is not valid JSON: EOF"), "{error}");
    }

    #[test]
    fn json_payloads_round_trip_and_fail_on_bad_text() {
        let bytes = postcard::to_stdvec(&Json(json!({"op": "echo"}))).expect("encodes");
        let back: Json<Value> = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back, Json(json!({"op": "echo"})));
        let bad = postcard::to_stdvec(&"nope").expect("encodes");
        assert!(postcard::from_bytes::<Json<Value>>(&bad).is_err());
    }
}
