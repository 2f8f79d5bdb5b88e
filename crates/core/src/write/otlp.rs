//! OTLP/HTTP requests (`ExportMetricsServiceRequest`, `ExportLogsServiceRequest`,
//! `ExportTraceServiceRequest`), protobuf and JSON, under a label policy.
//!
//! The policy applies to resource attributes. An attribute key maps to a label name as
//! Prometheus translates it: every character outside `[A-Za-z0-9_]` becomes `_` (and a key
//! starting with a digit or a single `_` gains `key_`/`key`), so `k8s.namespace.name` is label
//! `k8s_namespace_name`. A forced label the resource lacks is added as a string attribute whose
//! key is the label name. Refused: two attributes of one resource mapping to the same policy
//! label, a policy label's attribute with a non-string value, and any attribute deeper down
//! (scope, data point, exemplar, log record, span, event, link) that maps to a policy label with
//! another value than its resource's: receivers let those override or join the resource's.

use serde_json::{Map, Value};

use super::wire::{Field, encode_bytes, for_each_field};
use super::{Confine, Item, ItemKind, Signal, WriteError, WriteLimits, count_item, count_labels};
use super::{json, refuse_duplicates};

/// A message field, by number (protobuf) and by its two JSON spellings.
struct Name {
    number: u32,
    camel: &'static str,
    snake: &'static str,
}

const fn name(number: u32, camel: &'static str, snake: &'static str) -> Name {
    Name {
        number,
        camel,
        snake,
    }
}

/// Where attribute lists (`repeated KeyValue`) sit below a resource.
struct Node {
    place: &'static str,
    attributes: &'static [Name],
    children: &'static [(Name, &'static Node)],
}

const ATTRIBUTES: &[Name] = &[name(1, "attributes", "attributes")];

const SCOPE: Node = Node {
    place: "a scope attribute",
    attributes: &[name(3, "attributes", "attributes")],
    children: &[],
};
const EXEMPLAR: Node = Node {
    place: "an exemplar attribute",
    attributes: &[name(7, "filteredAttributes", "filtered_attributes")],
    children: &[],
};
const NUMBER_POINT: Node = Node {
    place: "a data point attribute",
    attributes: &[name(7, "attributes", "attributes")],
    children: &[(name(5, "exemplars", "exemplars"), &EXEMPLAR)],
};
const HISTOGRAM_POINT: Node = Node {
    place: "a data point attribute",
    attributes: &[name(9, "attributes", "attributes")],
    children: &[(name(8, "exemplars", "exemplars"), &EXEMPLAR)],
};
const EXPONENTIAL_POINT: Node = Node {
    place: "a data point attribute",
    attributes: &[name(1, "attributes", "attributes")],
    children: &[(name(11, "exemplars", "exemplars"), &EXEMPLAR)],
};
const SUMMARY_POINT: Node = Node {
    place: "a data point attribute",
    attributes: &[name(7, "attributes", "attributes")],
    children: &[],
};
/// `Gauge`, `Sum`, `Histogram`, `ExponentialHistogram`, `Summary`: `data_points = 1`.
macro_rules! points {
    ($point:expr) => {
        Node {
            place: "",
            attributes: &[],
            children: &[(name(1, "dataPoints", "data_points"), $point)],
        }
    };
}
const GAUGE: Node = points!(&NUMBER_POINT);
const HISTOGRAM: Node = points!(&HISTOGRAM_POINT);
const EXPONENTIAL: Node = points!(&EXPONENTIAL_POINT);
const SUMMARY: Node = points!(&SUMMARY_POINT);
const METRIC: Node = Node {
    place: "a metric's metadata",
    attributes: &[name(12, "metadata", "metadata")],
    children: &[
        (name(5, "gauge", "gauge"), &GAUGE),
        (name(7, "sum", "sum"), &GAUGE),
        (name(9, "histogram", "histogram"), &HISTOGRAM),
        (
            name(10, "exponentialHistogram", "exponential_histogram"),
            &EXPONENTIAL,
        ),
        (name(11, "summary", "summary"), &SUMMARY),
    ],
};
const LOG_RECORD: Node = Node {
    place: "a log record attribute",
    attributes: &[name(6, "attributes", "attributes")],
    children: &[],
};
const EVENT: Node = Node {
    place: "a span event attribute",
    attributes: &[name(3, "attributes", "attributes")],
    children: &[],
};
const LINK: Node = Node {
    place: "a span link attribute",
    attributes: &[name(4, "attributes", "attributes")],
    children: &[],
};
const SPAN: Node = Node {
    place: "a span attribute",
    attributes: &[name(9, "attributes", "attributes")],
    children: &[
        (name(11, "events", "events"), &EVENT),
        (name(13, "links", "links"), &LINK),
    ],
};

/// A scope message (`ScopeX { scope = 1; records = 2; }`): its `scope` and its records.
macro_rules! scope {
    ($camel:literal, $snake:literal, $record:expr) => {
        Node {
            place: "",
            attributes: &[],
            children: &[
                (name(1, "scope", "scope"), &SCOPE),
                (name(2, $camel, $snake), $record),
            ],
        }
    };
}
const METRICS_SCOPE: Node = scope!("metrics", "metrics", &METRIC);
const LOGS_SCOPE: Node = scope!("logRecords", "log_records", &LOG_RECORD);
const TRACES_SCOPE: Node = scope!("spans", "spans", &SPAN);

/// The request's list of resources, and below each resource (`ResourceX { resource = 1;
/// scope_X = 2; }`) what its scopes hold.
struct Layout {
    resources: Name,
    scopes: Name,
    scope: &'static Node,
}

fn layout(signal: Signal) -> Layout {
    match signal {
        Signal::Metrics => Layout {
            resources: name(1, "resourceMetrics", "resource_metrics"),
            scopes: name(2, "scopeMetrics", "scope_metrics"),
            scope: &METRICS_SCOPE,
        },
        Signal::Logs => Layout {
            resources: name(1, "resourceLogs", "resource_logs"),
            scopes: name(2, "scopeLogs", "scope_logs"),
            scope: &LOGS_SCOPE,
        },
        Signal::Traces => Layout {
            resources: name(1, "resourceSpans", "resource_spans"),
            scopes: name(2, "scopeSpans", "scope_spans"),
            scope: &TRACES_SCOPE,
        },
    }
}

/// Whether attribute `key` may become label `label` under a receiver's translation:
/// Prometheus's (each character outside `[A-Za-z0-9_]` as `_`, `key_` before a leading digit,
/// `key` before a single leading `_`), or a newer one that also folds runs of `_` into one
/// (`kube__namespace` as `kube_namespace`). Wider than any one receiver, so an attribute one of
/// them reads as a policy label is always checked.
fn maps_to(key: &str, label: &str) -> bool {
    let same = |key: &str, label: &str| {
        key.chars().count() == label.len()
            && key.chars().zip(label.bytes()).all(|(k, l)| {
                k == char::from(l) || (l == b'_' && !k.is_ascii_alphanumeric() && k != '_')
            })
    };
    // One for one, as Prometheus maps, is a case of the folded comparison.
    folded(key).eq(folded(label))
        || label.strip_prefix("key_").is_some_and(|l| same(key, l))
        || label.strip_prefix("key").is_some_and(|l| same(key, l))
}

/// `text` sanitised as a label name, with each run of `_` as one.
fn folded(text: &str) -> impl Iterator<Item = char> + '_ {
    let mut after_underscore = false;
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .filter(move |&c| {
            let repeated = c == '_' && after_underscore;
            after_underscore = c == '_';
            !repeated
        })
}

/// Refuses policies naming what OTLP does not carry as an attribute: the metric name, and for
/// metrics `job` and `instance`, which Prometheus derives from `service.*` attributes.
fn enforceable(confine: &Confine<'_>, signal: Signal) -> Result<(), WriteError> {
    let derived: &[&str] = match signal {
        Signal::Metrics => &["__name__", "job", "instance"],
        Signal::Logs | Signal::Traces => &["__name__"],
    };
    match derived.iter().find(|label| confine.names(label)) {
        Some(label) => Err(WriteError::PolicyNotEnforceable(format!(
            "the label policy names \"{label}\", which OTLP receivers derive rather than read from a resource attribute; an OTLP write cannot be confined to it"
        ))),
        None => Ok(()),
    }
}

/// One attribute as read: its key and, when its value is a string, the string.
struct Attribute<'a> {
    key: &'a str,
    string: Option<&'a str>,
}

/// The resource's labels the policy names, from its attributes.
fn resource_labels<'a, 'p: 'a>(
    confine: &Confine<'p>,
    attributes: &[Attribute<'a>],
    at: Item,
    limits: &WriteLimits,
) -> Result<Vec<(&'a str, &'a str)>, WriteError> {
    count_labels(attributes.len(), at, limits)?;
    let mut labels: Vec<(&'a str, &'a str)> = Vec::new();
    for label in confine.policy_labels() {
        let mut found = attributes.iter().filter(|a| maps_to(a.key, label));
        let Some(first) = found.next() else { continue };
        if found.next().is_some() {
            return Err(WriteError::AmbiguousAttribute {
                at,
                label: label.to_owned(),
            });
        }
        let value = first.string.ok_or_else(|| WriteError::NotAString {
            at,
            label: label.to_owned(),
        })?;
        // Setting an empty attribute would leave two for one label: refuse it as a conflict.
        if value.is_empty() && confine.forces(label) {
            return Err(WriteError::ForcedLabelConflict {
                at,
                label: label.to_owned(),
            });
        }
        labels.push((label, value));
    }
    refuse_duplicates(&labels, at)?;
    labels.sort_by(|a, b| a.0.cmp(b.0));
    Ok(labels)
}

/// Checks an attribute deeper than the resource against the resource's final labels.
fn inner(
    confine: &Confine<'_>,
    attribute: &Attribute<'_>,
    labels: &[(&str, &str)],
    at: Item,
    place: &'static str,
) -> Result<(), WriteError> {
    for label in confine.policy_labels() {
        if maps_to(attribute.key, label) {
            let outer = labels.iter().find(|(n, _)| n == &label).map_or("", |l| l.1);
            if attribute.string != Some(outer) {
                return Err(WriteError::InnerConflict {
                    at,
                    place,
                    outer: ItemKind::Resource,
                    label: label.to_owned(),
                });
            }
        }
    }
    Ok(())
}

// ---- protobuf ----

pub(super) fn protobuf(
    confine: &Confine<'_>,
    signal: Signal,
    body: &[u8],
    limits: &WriteLimits,
) -> Result<Option<Vec<u8>>, WriteError> {
    enforceable(confine, signal)?;
    let layout = layout(signal);
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut changed = false;
    let mut index = 0usize;
    for_each_field(body, 0, |field, raw| {
        if field.number != layout.resources.number {
            out.extend_from_slice(raw);
            return Ok(());
        }
        field.length_delimited()?;
        let at = count_item(ItemKind::Resource, index, limits)?;
        index += 1;
        match proto_resource(confine, &layout, &field, at, limits)? {
            Some(rewritten) => {
                changed = true;
                encode_bytes(field.number, &rewritten, &mut out);
            }
            None => out.extend_from_slice(raw),
        }
        Ok(())
    })?;
    Ok(changed.then_some(out))
}

/// One `ResourceX`: its labels forced and checked, its inner attributes checked; the rewritten
/// message when attributes were added.
fn proto_resource(
    confine: &Confine<'_>,
    layout: &Layout,
    field: &Field<'_>,
    at: Item,
    limits: &WriteLimits,
) -> Result<Option<Vec<u8>>, WriteError> {
    let mut resource: Option<Field<'_>> = None;
    for_each_field(field.payload, field.offset, |part, _| {
        if part.number == 1 {
            part.length_delimited()?;
            if resource.is_some() {
                return Err(malformed(at, "the resource is given more than once"));
            }
            resource = Some(part);
        }
        Ok(())
    })?;
    let mut attributes = Vec::new();
    if let Some(resource) = &resource {
        proto_attributes(resource, 1, at, &mut attributes)?;
    }
    let mut labels = resource_labels(confine, &attributes, at, limits)?;
    let before: Vec<&str> = labels.iter().map(|l| l.0).collect();
    let changed = confine.apply(&mut labels, at)?;
    for_each_field(field.payload, field.offset, |part, _| {
        if part.number == layout.scopes.number {
            proto_inner(confine, layout.scope.children, &part, &labels, at)?;
        }
        Ok(())
    })?;
    if !changed {
        return Ok(None);
    }
    let mut new_resource = resource.map(|r| r.payload.to_vec()).unwrap_or_default();
    for (name, value) in labels.iter().filter(|(n, _)| !before.contains(n)) {
        let mut any_value = Vec::with_capacity(value.len() + 2);
        encode_bytes(1, value.as_bytes(), &mut any_value);
        let mut key_value = Vec::with_capacity(name.len() + any_value.len() + 4);
        encode_bytes(1, name.as_bytes(), &mut key_value);
        encode_bytes(2, &any_value, &mut key_value);
        encode_bytes(1, &key_value, &mut new_resource);
    }
    let mut out = Vec::with_capacity(field.payload.len() + 64);
    encode_bytes(1, &new_resource, &mut out);
    for_each_field(field.payload, 0, |part, raw| {
        if part.number != 1 {
            out.extend_from_slice(raw);
        }
        Ok(())
    })?;
    Ok(Some(out))
}

/// The attributes in field `number` of `message`: `KeyValue { key = 1; value = 2; }` with
/// `AnyValue { string_value = 1; ... }`, the last of a oneof winning as protobuf decoders do.
fn proto_attributes<'a>(
    message: &Field<'a>,
    number: u32,
    at: Item,
    out: &mut Vec<Attribute<'a>>,
) -> Result<(), WriteError> {
    let not_utf8 = || WriteError::NotUtf8 { at };
    for_each_field(message.payload, message.offset, |field, _| {
        if field.number != number {
            return Ok(());
        }
        field.length_delimited()?;
        let mut attribute = Attribute {
            key: "",
            string: None,
        };
        for_each_field(field.payload, field.offset, |part, _| {
            match part.number {
                1 => {
                    attribute.key = part
                        .text()
                        .ok_or_else(|| malformed(at, "an attribute key is not a string"))?
                        .map_err(|_| not_utf8())?;
                }
                2 => {
                    part.length_delimited()?;
                    let mut string = None;
                    for_each_field(part.payload, part.offset, |value, _| {
                        string = match (value.number, value.text()) {
                            (1, Some(text)) => Some(text.map_err(|_| not_utf8())?),
                            _ => None,
                        };
                        Ok(())
                    })?;
                    attribute.string = string;
                }
                3 => {
                    return Err(malformed(
                        at,
                        "key_strindex is not accepted outside profiles",
                    ));
                }
                _ => {}
            }
            Ok(())
        })?;
        out.push(attribute);
        Ok(())
    })
}

/// Walks `message`'s children by the layout, checking every attribute list met.
fn proto_inner(
    confine: &Confine<'_>,
    children: &'static [(Name, &'static Node)],
    message: &Field<'_>,
    labels: &[(&str, &str)],
    at: Item,
) -> Result<(), WriteError> {
    for_each_field(message.payload, message.offset, |field, _| {
        for (name, node) in children {
            if field.number != name.number || field.wire_type != 2 {
                continue;
            }
            let mut attributes = Vec::new();
            for list in node.attributes {
                proto_attributes(&field, list.number, at, &mut attributes)?;
            }
            for attribute in &attributes {
                inner(confine, attribute, labels, at, node.place)?;
            }
            proto_inner(confine, node.children, &field, labels, at)?;
        }
        Ok(())
    })
}

fn malformed(at: Item, what: &str) -> WriteError {
    WriteError::Malformed {
        at,
        what: what.to_owned(),
    }
}

// ---- JSON ----

pub(super) fn json(
    confine: &Confine<'_>,
    signal: Signal,
    body: &[u8],
    limits: &WriteLimits,
) -> Result<Option<Vec<u8>>, WriteError> {
    enforceable(confine, signal)?;
    let layout = layout(signal);
    let mut request = json::parse(body)?;
    let Value::Object(top) = &mut request else {
        return Err(WriteError::Json("the request is not an object".into()));
    };
    let Some(key) = json::key_of(top, layout.resources.camel, layout.resources.snake)? else {
        return Ok(None);
    };
    let Some(Value::Array(resources)) = top.get_mut(key) else {
        return Err(WriteError::Json(format!("\"{key}\" is not an array")));
    };
    let mut changed = false;
    for (index, resource) in resources.iter_mut().enumerate() {
        let at = count_item(ItemKind::Resource, index, limits)?;
        let Value::Object(resource) = resource else {
            return Err(malformed(at, "not an object"));
        };
        changed |= json_resource(confine, &layout, resource, at, limits)?;
    }
    if changed {
        json::to_vec(&request).map(Some)
    } else {
        Ok(None)
    }
}

fn json_resource(
    confine: &Confine<'_>,
    layout: &Layout,
    object: &mut Map<String, Value>,
    at: Item,
    limits: &WriteLimits,
) -> Result<bool, WriteError> {
    let (labels, before) = {
        let mut attributes = Vec::new();
        if let Some(resource) = json::field(object, "resource", "resource")? {
            json_attributes(resource, ATTRIBUTES, at, &mut attributes)?;
        }
        let labels = resource_labels(confine, &attributes, at, limits)?;
        let owned: Vec<(String, String)> = labels
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        (owned, labels.len())
    };
    let mut labels: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (&**n, &**v)).collect();
    let originally: Vec<String> = labels.iter().take(before).map(|l| l.0.to_owned()).collect();
    let changed = confine.apply(&mut labels, at)?;
    if let Some(scopes) = json::field(object, layout.scopes.camel, layout.scopes.snake)? {
        json_inner(confine, layout.scope.children, scopes, &labels, at)?;
    }
    if changed {
        let resource = object
            .entry("resource")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(resource) = resource else {
            return Err(malformed(at, "\"resource\" is not an object"));
        };
        let attributes = resource
            .entry("attributes")
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(attributes) = attributes else {
            return Err(malformed(at, "\"attributes\" is not an array"));
        };
        for (name, value) in labels
            .iter()
            .filter(|(n, _)| !originally.iter().any(|o| o == n))
        {
            attributes.push(serde_json::json!({"key": name, "value": {"stringValue": value}}));
        }
    }
    Ok(changed)
}

/// The attributes of every list named in `lists` on `holder` (an object).
fn json_attributes<'a>(
    holder: &'a Value,
    lists: &[Name],
    at: Item,
    out: &mut Vec<Attribute<'a>>,
) -> Result<(), WriteError> {
    let Value::Object(holder) = holder else {
        return Err(malformed(at, "expected an object"));
    };
    for list in lists {
        let Some(values) = json::field(holder, list.camel, list.snake)? else {
            continue;
        };
        let Value::Array(values) = values else {
            return Err(malformed(at, "attributes are not an array"));
        };
        for kv in values {
            let Value::Object(kv) = kv else {
                return Err(malformed(at, "an attribute is not an object"));
            };
            if json::field(kv, "keyStrindex", "key_strindex")?.is_some() {
                return Err(malformed(
                    at,
                    "keyStrindex is not accepted outside profiles",
                ));
            }
            let key = match kv.get("key") {
                Some(Value::String(key)) => key.as_str(),
                None | Some(Value::Null) => "",
                Some(_) => return Err(malformed(at, "an attribute key is not a string")),
            };
            let string = match kv.get("value") {
                Some(Value::Object(value)) if value.len() == 1 => {
                    match json::field(value, "stringValue", "string_value")? {
                        Some(Value::String(s)) => Some(s.as_str()),
                        _ => None,
                    }
                }
                _ => None,
            };
            out.push(Attribute { key, string });
        }
    }
    Ok(())
}

fn json_inner(
    confine: &Confine<'_>,
    children: &'static [(Name, &'static Node)],
    value: &Value,
    labels: &[(&str, &str)],
    at: Item,
) -> Result<(), WriteError> {
    // A repeated field is an array of objects, a singular one an object.
    let objects: Vec<&Map<String, Value>> = match value {
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        Value::Object(object) => vec![object],
        _ => Vec::new(),
    };
    for object in objects {
        for (name, node) in children {
            let Some(child) = json::field(object, name.camel, name.snake)? else {
                continue;
            };
            let children_objects: Vec<&Value> = match child {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for child_object in &children_objects {
                if !node.attributes.is_empty() && child_object.is_object() {
                    let mut attributes = Vec::new();
                    json_attributes(child_object, node.attributes, at, &mut attributes)?;
                    for attribute in &attributes {
                        inner(confine, attribute, labels, at, node.place)?;
                    }
                }
            }
            json_inner(confine, node.children, child, labels, at)?;
        }
    }
    Ok(())
}
