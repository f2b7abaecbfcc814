//! Stream entries read from Redis's raw replies.
//!
//! The `redis` crate's stream reply types refuse a whole reply if one field name is not UTF-8,
//! and a worker must be able to read past any garbage. So replies are taken apart here, and
//! field names that are not UTF-8 are read lossily.

use std::collections::HashMap;

use redis::Value;

/// One stream entry: its id and its fields.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) fields: HashMap<String, Value>,
}

/// Reads the reply of `XREAD`/`XREADGROUP`: entries by stream name (nothing for a nil reply).
pub(crate) fn read_reply(reply: Value) -> Vec<(String, Vec<Entry>)> {
    let streams: Vec<(Value, Value)> = match reply {
        Value::Map(streams) => streams,
        other => items(other)
            .into_iter()
            .filter_map(|stream| {
                let mut parts = items(stream).into_iter();
                Some((parts.next()?, parts.next()?))
            })
            .collect(),
    };
    streams.into_iter().map(|(name, list)| (text(&name), entries(list))).collect()
}

/// Reads the reply of `XAUTOCLAIM`: the cursor for the next call and the claimed entries.
pub(crate) fn autoclaim_reply(reply: Value) -> (String, Vec<Entry>) {
    let mut parts = items(reply).into_iter();
    let cursor = parts.next().map_or_else(|| "0-0".to_owned(), |cursor| text(&cursor));
    (cursor, parts.next().map(entries).unwrap_or_default())
}

/// Reads the reply of the `TAKE` script: entries with their band index.
pub(crate) fn take_reply(reply: Value) -> Vec<(usize, Entry)> {
    items(reply)
        .into_iter()
        .filter_map(|taken| {
            let mut parts = items(taken).into_iter();
            let band = match parts.next()? {
                Value::Int(band) => usize::try_from(band).ok()?,
                _ => return None,
            };
            Some((band, entry(parts)?))
        })
        .collect()
}

/// Reads a list of entries (`XRANGE`, and the inner lists above). Entries without fields
/// (deleted ones, in some replies) are skipped.
pub(crate) fn entries(list: Value) -> Vec<Entry> {
    items(list).into_iter().filter_map(|item| entry(items(item).into_iter())).collect()
}

/// Reads an entry from its id and its flat list of fields.
fn entry(mut parts: impl Iterator<Item = Value>) -> Option<Entry> {
    let id = text(&parts.next()?);
    let mut fields = HashMap::new();
    let mut flat = items(parts.next()?).into_iter();
    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
        fields.insert(text(&name), value);
    }
    Some(Entry { id, fields })
}

fn items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(key, value)| [key, value]).collect(),
        _ => Vec::new(),
    }
}

/// A value as text (lossy, for garbage).
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        Value::Int(n) => n.to_string(),
        Value::Okay => "OK".to_owned(),
        other => format!("{other:?}"),
    }
}
