//! Loki push requests under a label policy: protobuf (`logproto.PushRequest`, snappy's block
//! format) and JSON (`{"streams": [{"stream": {...}, "values": [[ts, line, {metadata}]]}]}`).
//! A stream's labels are forced and checked; structured metadata naming a policy label must
//! carry the stream's value for it (queries filter on both).

use serde_json::{Map, Value};

use super::wire::{self, encode_bytes, for_each_field};
use super::{
    Confine, Item, ItemKind, WriteError, WriteLimits, count_item, count_labels, json,
    refuse_duplicates, snappy_rewrite,
};
use crate::promql::parse_label_set;
use crate::selector::is_label_name;

/// `PushRequest { repeated StreamAdapter streams = 1; }`,
/// `StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }`,
/// `EntryAdapter { ...; repeated LabelPairAdapter structuredMetadata = 3; parsed = 4; }`.
pub(super) fn protobuf(
    confine: &Confine<'_>,
    compressed: &[u8],
    limits: &WriteLimits,
) -> Result<Vec<u8>, WriteError> {
    snappy_rewrite(compressed, limits, confine.rewrite, |body, out| {
        let mut index = 0usize;
        for_each_field(body, 0, |field, raw| {
            if field.number != 1 {
                out.extend_from_slice(raw);
                return Ok(());
            }
            field.length_delimited()?;
            let at = count_item(ItemKind::Stream, index, limits)?;
            index += 1;
            let mut text = None;
            for_each_field(field.payload, field.offset, |part, _| {
                if part.number == 1 {
                    if text.is_some() {
                        return Err(malformed(at, "the labels are given more than once".into()));
                    }
                    let labels = part
                        .text()
                        .ok_or_else(|| malformed(at, "the labels are not a string".into()))?;
                    text = Some(labels.map_err(|_| WriteError::NotUtf8 { at })?);
                }
                Ok(())
            })?;
            let owned = stream_labels(text.unwrap_or(""), at, limits)?;
            let mut labels: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (&**n, &**v)).collect();
            let changed = confine.apply(&mut labels, at)?;
            for_each_field(field.payload, field.offset, |part, _| {
                if part.number == 2 {
                    part.length_delimited()?;
                    for_each_field(part.payload, part.offset, |meta, _| {
                        if meta.number == 3 || meta.number == 4 {
                            let pair = wire::decode_pair(&meta, || WriteError::NotUtf8 { at })?;
                            metadata(confine, pair, &labels, at)?;
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
            if !changed {
                out.extend_from_slice(raw);
                return Ok(());
            }
            // The hash is of the old labels: dropped, Loki computes its own.
            let mut stream = Vec::with_capacity(field.payload.len() + 64);
            encode_bytes(1, print_labels(&labels).as_bytes(), &mut stream);
            for_each_field(field.payload, 0, |part, raw| {
                if part.number != 1 && part.number != 3 {
                    stream.extend_from_slice(raw);
                }
                Ok(())
            })?;
            encode_bytes(1, &stream, out);
            Ok(())
        })
    })
}

fn stream_labels(
    text: &str,
    at: Item,
    limits: &WriteLimits,
) -> Result<Vec<(String, String)>, WriteError> {
    let labels = parse_label_set(text).map_err(|why| malformed(at, why))?;
    count_labels(labels.len(), at, limits)?;
    let refs: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (&**n, &**v)).collect();
    refuse_duplicates(&refs, at)?;
    Ok(labels)
}

/// Structured metadata naming a policy label must repeat the stream's value.
fn metadata(
    confine: &Confine<'_>,
    (name, value): (&str, &str),
    labels: &[(&str, &str)],
    at: Item,
) -> Result<(), WriteError> {
    if confine.names(name) {
        let outer = labels.iter().find(|(n, _)| *n == name).map_or("", |l| l.1);
        if value != outer {
            return Err(WriteError::InnerConflict {
                at,
                place: "structured metadata",
                outer: ItemKind::Stream,
                label: name.to_owned(),
            });
        }
    }
    Ok(())
}

/// Labels as Loki prints and parses them: `{a="b", c="d"}`, values quoted as Go does.
fn print_labels(labels: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

pub(super) fn json(
    confine: &Confine<'_>,
    body: &[u8],
    limits: &WriteLimits,
) -> Result<Option<Vec<u8>>, WriteError> {
    if body.len() > limits.max_decoded_bytes {
        return Err(WriteError::DecodedTooLarge {
            len: body.len(),
            max: limits.max_decoded_bytes,
        });
    }
    let mut request = json::parse(body)?;
    // Loki's decoder matches keys regardless of case: a `Streams` beside `streams` would be
    // the one it writes, unchecked. Nothing but `streams` is read here, so nothing else passes.
    if let Some(other) = request
        .as_object()
        .and_then(|top| top.keys().find(|k| *k != "streams"))
    {
        return Err(WriteError::Json(format!(
            "unknown field \"{}\"",
            other.escape_debug()
        )));
    }
    let Some(Value::Array(streams)) = request.get_mut("streams") else {
        return Err(WriteError::Json(
            "\"streams\" is missing or not an array".into(),
        ));
    };
    let mut changed = false;
    for (index, stream) in streams.iter_mut().enumerate() {
        let at = count_item(ItemKind::Stream, index, limits)?;
        let Value::Object(stream) = stream else {
            return Err(malformed(at, "not an object".into()));
        };
        changed |= json_stream(confine, stream, at, limits)?;
    }
    if changed {
        json::to_vec(&request).map(Some)
    } else {
        Ok(None)
    }
}

fn json_stream(
    confine: &Confine<'_>,
    stream: &mut Map<String, Value>,
    at: Item,
    limits: &WriteLimits,
) -> Result<bool, WriteError> {
    if let Some(other) = stream.keys().find(|k| *k != "stream" && *k != "values") {
        return Err(malformed(
            at,
            format!("unknown field \"{}\"", other.escape_debug()),
        ));
    }
    let owned = match stream.get("stream") {
        Some(Value::Object(labels)) => {
            count_labels(labels.len(), at, limits)?;
            labels
                .iter()
                .map(|(n, v)| match v {
                    // Loki unescapes a stream label's name twice (`n\\u0073` is `ns` to it):
                    // only a valid label name, which holds no backslash, reads alike.
                    Value::String(_) if !is_label_name(n) => Err(malformed(
                        at,
                        format!("invalid label name \"{}\"", n.escape_debug()),
                    )),
                    Value::String(v) => Ok((n.clone(), v.clone())),
                    _ => Err(malformed(
                        at,
                        format!("label \"{}\" is not a string", n.escape_debug()),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        None => Vec::new(),
        Some(_) => return Err(malformed(at, "\"stream\" is not an object".into())),
    };
    let mut labels: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (&**n, &**v)).collect();
    labels.sort_by(|a, b| a.0.cmp(b.0));
    let changed = confine.apply(&mut labels, at)?;
    if let Some(Value::Array(values)) = stream.get("values") {
        for entry in values {
            let Some(Value::Object(meta)) = entry.as_array().and_then(|e| e.get(2)) else {
                continue;
            };
            for (name, value) in meta {
                if name.contains('\\') {
                    return Err(malformed(
                        at,
                        format!(
                            "structured metadata name \"{}\" holds a backslash",
                            name.escape_debug()
                        ),
                    ));
                }
                let value = value.as_str().ok_or_else(|| {
                    malformed(at, "structured metadata values must be strings".into())
                })?;
                metadata(confine, (name, value), &labels, at)?;
            }
        }
    }
    if changed {
        let forced: Map<String, Value> = labels
            .iter()
            .map(|(n, v)| ((*n).to_owned(), Value::String((*v).to_owned())))
            .collect();
        stream.insert("stream".into(), Value::Object(forced));
    }
    Ok(changed)
}

fn malformed(at: Item, what: String) -> WriteError {
    WriteError::Malformed { at, what }
}
