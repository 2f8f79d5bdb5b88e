//! Write bodies under a label policy (issue 14): Prometheus remote write 1.0 and 2.0, OTLP/HTTP
//! (protobuf and JSON; metrics, logs, traces) and Loki push (protobuf and JSON).
//!
//! * [`force`] (the filter, which can rewrite): every series, stream or resource gains the
//!   policy's equality labels ([`forced_labels`]); one that already carries such a label with
//!   another value refuses the whole request (never a partial write); after forcing, every item
//!   must lie within the policy.
//! * [`check`] (ext_authz, which cannot rewrite): every item must already lie within it.
//!
//! Messages name an item by index and a label by name, never another item's values. Bodies of
//! unrestricted accounts are never decoded (the callers do not call in).

mod json;
mod loki;
mod otlp;
mod remote_write;
mod wire;

use crate::route::LabelEnforcement;
use crate::selector::{MatchOp, Policy};
use std::fmt;

pub use remote_write::decode_labels_for_tests;

/// Bounds on a write body, checked before the work they bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct WriteLimits {
    /// The body as sent (compressed or not).
    pub max_body_bytes: usize,
    /// After decompression; snappy's declared length is checked before anything is allocated.
    pub max_decoded_bytes: usize,
    /// Series (remote write), streams (Loki) or resources (OTLP) per request.
    pub max_items: usize,
    /// Labels per series or stream, attributes per OTLP resource.
    pub max_labels_per_item: usize,
}

impl Default for WriteLimits {
    fn default() -> Self {
        WriteLimits {
            max_body_bytes: 4 << 20,
            max_decoded_bytes: 32 << 20,
            max_items: 20_000,
            max_labels_per_item: 128,
        }
    }
}

impl WriteLimits {
    /// Refuses a limit of zero and a decoded limit below the body limit (snappy never shrinks
    /// below its input by much, but JSON and plain protobuf are read as sent).
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("maxBodyBytes", self.max_body_bytes),
            ("maxDecodedBytes", self.max_decoded_bytes),
            ("maxItems", self.max_items),
            ("maxLabelsPerItem", self.max_labels_per_item),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.max_decoded_bytes < self.max_body_bytes {
            return Err("maxDecodedBytes must be at least maxBodyBytes".into());
        }
        Ok(())
    }
}

/// What a write route carries, from its [`LabelEnforcement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRoute {
    RemoteWrite,
    Otlp(Signal),
    LokiPush,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Metrics,
    Logs,
    Traces,
}

impl WriteRoute {
    pub fn of(labels: LabelEnforcement) -> Option<WriteRoute> {
        match labels {
            LabelEnforcement::RemoteWrite => Some(WriteRoute::RemoteWrite),
            LabelEnforcement::OtlpMetrics => Some(WriteRoute::Otlp(Signal::Metrics)),
            LabelEnforcement::OtlpLogs => Some(WriteRoute::Otlp(Signal::Logs)),
            LabelEnforcement::OtlpTraces => Some(WriteRoute::Otlp(Signal::Traces)),
            LabelEnforcement::LokiPush => Some(WriteRoute::LokiPush),
            _ => None,
        }
    }

    /// The body format a request's `Content-Type` and `Content-Encoding` name on this route, or
    /// the message of a 415 naming what is accepted.
    pub fn format(
        self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Result<WriteFormat, String> {
        let media = content_type
            .and_then(|ct| ct.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        // `proto=` names the message (remote write); senders of 1.0 omit it.
        let proto = content_type.and_then(|ct| {
            ct.split(';')
                .skip(1)
                .find_map(|p| p.trim().strip_prefix("proto="))
                .map(|p| p.trim_matches('"'))
        });
        let encoding = content_encoding
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
        let is = |m: &str| media.eq_ignore_ascii_case(m);
        let snappy = encoding.is_some_and(|e| e.eq_ignore_ascii_case("snappy"));
        // OTLP and Loki's JSON may come gzipped (the OpenTelemetry Collector's default).
        let plain_or_gzip = encoding.is_none() || is_gzip(encoding);
        let format = match self {
            WriteRoute::RemoteWrite if is("application/x-protobuf") && snappy => match proto {
                None | Some("prometheus.WriteRequest") => Some(WriteFormat::RemoteWrite1),
                Some("io.prometheus.write.v2.Request") => Some(WriteFormat::RemoteWrite2),
                Some(_) => None,
            },
            WriteRoute::Otlp(signal) if plain_or_gzip && is("application/x-protobuf") => {
                Some(WriteFormat::OtlpProtobuf(signal))
            }
            WriteRoute::Otlp(signal) if plain_or_gzip && is("application/json") => {
                Some(WriteFormat::OtlpJson(signal))
            }
            // Loki reads every protobuf push as snappy's block format, without a header saying so.
            WriteRoute::LokiPush if encoding.is_none() && is("application/x-protobuf") => {
                Some(WriteFormat::LokiProtobuf)
            }
            WriteRoute::LokiPush if plain_or_gzip && is("application/json") => {
                Some(WriteFormat::LokiJson)
            }
            _ => None,
        };
        format.ok_or_else(|| self.accepted().to_owned())
    }

    /// The `Content-Type` and `Content-Encoding` of this route's usual body, for questions about
    /// the route rather than a body (the access review).
    pub fn canonical_media(self) -> (&'static str, Option<&'static str>) {
        match self {
            WriteRoute::RemoteWrite => ("application/x-protobuf", Some("snappy")),
            WriteRoute::Otlp(_) | WriteRoute::LokiPush => ("application/x-protobuf", None),
        }
    }

    fn accepted(self) -> &'static str {
        match self {
            WriteRoute::RemoteWrite => {
                "a label-restricted write must be Prometheus remote write: Content-Type application/x-protobuf (proto=prometheus.WriteRequest or io.prometheus.write.v2.Request) with Content-Encoding snappy"
            }
            WriteRoute::Otlp(_) => {
                "a label-restricted OTLP write must be Content-Type application/x-protobuf or application/json, uncompressed or Content-Encoding gzip"
            }
            WriteRoute::LokiPush => {
                "a label-restricted Loki push must be Content-Type application/x-protobuf (snappy block format, no Content-Encoding) or application/json (uncompressed or Content-Encoding gzip)"
            }
        }
    }
}

/// A body format this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFormat {
    RemoteWrite1,
    RemoteWrite2,
    OtlpProtobuf(Signal),
    OtlpJson(Signal),
    LokiProtobuf,
    LokiJson,
}

/// What a message calls one unit of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Series,
    Stream,
    Resource,
}

/// One series, stream or resource of a request, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub kind: ItemKind,
    pub index: usize,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemKind::Series => "series",
            ItemKind::Stream => "stream",
            ItemKind::Resource => "resource",
        })
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.index)
    }
}

/// Why a write body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("the write body is {len} bytes; at most {max} are accepted")]
    BodyTooLarge { len: usize, max: usize },
    #[error("the write body declares {len} bytes uncompressed; at most {max} are accepted")]
    DecodedTooLarge { len: usize, max: usize },
    #[error("the write body is not valid snappy (block format): {0}")]
    Snappy(String),
    #[error("the write body is not valid gzip: {0}")]
    Gzip(String),
    #[error("the write body decompresses to more than {max} bytes")]
    DecompressesTooLarge { max: usize },
    #[error("the write body is not a valid protobuf message: {what} at byte {offset}")]
    Protobuf { what: &'static str, offset: usize },
    #[error("the write body is not valid JSON for this route: {0}")]
    Json(String),
    #[error("{at}: {what}")]
    Malformed { at: Item, what: String },
    #[error("the write request has more than {max} {kind}")]
    TooManyItems { kind: ItemKind, max: usize },
    #[error("{at} has more than {max} labels")]
    TooManyLabels { at: Item, max: usize },
    #[error("{at}: a label name or value is not UTF-8")]
    NotUtf8 { at: Item },
    #[error("{at} names label \"{label}\" more than once")]
    DuplicateLabel { at: Item, label: String },
    #[error(
        "{at} carries label \"{label}\" with a value other than the one the label policy sets; the whole request is refused"
    )]
    ForcedLabelConflict { at: Item, label: String },
    #[error("{at} is not within the label policy {policy}")]
    OutsidePolicy { at: Item, policy: String },
    #[error(
        "{at}: more than one attribute maps to policy label \"{label}\" (attribute keys map to labels with every character outside [A-Za-z0-9_] as \"_\"); the request is refused as ambiguous"
    )]
    AmbiguousAttribute { at: Item, label: String },
    #[error("{at}: the attribute for policy label \"{label}\" must have a string value")]
    NotAString { at: Item, label: String },
    #[error(
        "{at}: {place} sets policy label \"{label}\" to a value other than its {outer}'s; the whole request is refused"
    )]
    InnerConflict {
        at: Item,
        place: &'static str,
        outer: ItemKind,
        label: String,
    },
    #[error("{0}")]
    PolicyNotEnforceable(String),
}

impl WriteError {
    /// 413 for size limits, 403 for what the policy forbids, 400 for a malformed body.
    pub fn status(&self) -> u16 {
        match self {
            WriteError::BodyTooLarge { .. }
            | WriteError::DecodedTooLarge { .. }
            | WriteError::DecompressesTooLarge { .. }
            | WriteError::TooManyItems { .. }
            | WriteError::TooManyLabels { .. } => 413,
            WriteError::ForcedLabelConflict { .. }
            | WriteError::OutsidePolicy { .. }
            | WriteError::AmbiguousAttribute { .. }
            | WriteError::NotAString { .. }
            | WriteError::InnerConflict { .. }
            | WriteError::PolicyNotEnforceable(_) => 403,
            WriteError::Snappy(_)
            | WriteError::Gzip(_)
            | WriteError::Protobuf { .. }
            | WriteError::Json(_)
            | WriteError::Malformed { .. }
            | WriteError::NotUtf8 { .. }
            | WriteError::DuplicateLabel { .. } => 400,
        }
    }
}

/// The labels a policy forces on writes: the equality matchers of a one-selector policy. A policy
/// that ORs selectors forces nothing (which selector would it be?).
pub fn forced_labels(policy: &Policy) -> Vec<(&str, &str)> {
    match policy.selectors() {
        [one] => one
            .matchers()
            .iter()
            .filter(|m| m.op() == MatchOp::Eq && !m.value().is_empty())
            .map(|m| (m.name().as_str(), m.value()))
            .collect(),
        _ => Vec::new(),
    }
}

/// The filter: the body with the policy's equality labels forced on every item, encoded as it
/// came. `None` when nothing needed to change.
pub fn force(
    format: WriteFormat,
    policy: &Policy,
    body: &[u8],
    limits: &WriteLimits,
) -> Result<Option<Vec<u8>>, WriteError> {
    run(format, &Confine::new(policy, true), body, limits)
}

/// ext_authz: every item must already lie within `policy`.
pub fn check(
    format: WriteFormat,
    policy: &Policy,
    body: &[u8],
    limits: &WriteLimits,
) -> Result<(), WriteError> {
    run(format, &Confine::new(policy, false), body, limits).map(|_| ())
}

/// [`force`] for a body as it came with its `Content-Encoding`: a gzipped body (OTLP, Loki
/// JSON) is read through and, when forced, compressed again, so the upstream receives what the
/// headers say.
pub fn force_encoded(
    format: WriteFormat,
    content_encoding: Option<&str>,
    policy: &Policy,
    body: &[u8],
    limits: &WriteLimits,
) -> Result<Option<Vec<u8>>, WriteError> {
    if !is_gzip(content_encoding) {
        return force(format, policy, body, limits);
    }
    let plain = gunzip(body, limits)?;
    match force(format, policy, &plain, limits)? {
        Some(forced) => gzip(&forced).map(Some),
        None => Ok(None),
    }
}

/// [`check`] for a body as it came with its `Content-Encoding`.
pub fn check_encoded(
    format: WriteFormat,
    content_encoding: Option<&str>,
    policy: &Policy,
    body: &[u8],
    limits: &WriteLimits,
) -> Result<(), WriteError> {
    if is_gzip(content_encoding) {
        check(format, policy, &gunzip(body, limits)?, limits)
    } else {
        check(format, policy, body, limits)
    }
}

fn is_gzip(content_encoding: Option<&str>) -> bool {
    content_encoding.is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"))
}

/// Every gzip member (Go's reader, which the receivers use, reads concatenated members: reading
/// only the first would leave the rest unchecked), bounded by the decoded limit as it streams.
fn gunzip(body: &[u8], limits: &WriteLimits) -> Result<Vec<u8>, WriteError> {
    use std::io::Read;
    if body.len() > limits.max_body_bytes {
        return Err(WriteError::BodyTooLarge {
            len: body.len(),
            max: limits.max_body_bytes,
        });
    }
    let max = limits.max_decoded_bytes;
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut plain)
        .map_err(|err| WriteError::Gzip(err.to_string()))?;
    if plain.len() > max {
        return Err(WriteError::DecompressesTooLarge { max });
    }
    Ok(plain)
}

fn gzip(plain: &[u8]) -> Result<Vec<u8>, WriteError> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(plain)
        .map_err(|err| WriteError::Gzip(err.to_string()))?;
    encoder
        .finish()
        .map_err(|err| WriteError::Gzip(err.to_string()))
}

fn run(
    format: WriteFormat,
    confine: &Confine<'_>,
    body: &[u8],
    limits: &WriteLimits,
) -> Result<Option<Vec<u8>>, WriteError> {
    if body.len() > limits.max_body_bytes {
        return Err(WriteError::BodyTooLarge {
            len: body.len(),
            max: limits.max_body_bytes,
        });
    }
    match format {
        WriteFormat::RemoteWrite1 => remote_write::v1(confine, body, limits).map(Some),
        WriteFormat::RemoteWrite2 => remote_write::v2(confine, body, limits).map(Some),
        WriteFormat::OtlpProtobuf(signal) => otlp::protobuf(confine, signal, body, limits),
        WriteFormat::OtlpJson(signal) => otlp::json(confine, signal, body, limits),
        WriteFormat::LokiProtobuf => loki::protobuf(confine, body, limits).map(Some),
        WriteFormat::LokiJson => loki::json(confine, body, limits),
    }
}

/// A policy applied to the labels of one item at a time.
pub(crate) struct Confine<'p> {
    policy: &'p Policy,
    /// Empty when checking (ext_authz): nothing is forced.
    forced: Vec<(&'p str, &'p str)>,
    /// Every label name the policy mentions, once.
    labels: Vec<&'p str>,
    rewrite: bool,
}

impl<'p> Confine<'p> {
    fn new(policy: &'p Policy, rewrite: bool) -> Confine<'p> {
        let forced = if rewrite {
            forced_labels(policy)
        } else {
            Vec::new()
        };
        let mut labels: Vec<&str> = policy
            .selectors()
            .iter()
            .flat_map(|s| s.matchers().iter().map(|m| m.name().as_str()))
            .collect();
        labels.sort_unstable();
        labels.dedup();
        Confine {
            policy,
            forced,
            labels,
            rewrite,
        }
    }

    /// Whether `label` is one the policy names (any matcher of any selector).
    fn names(&self, label: &str) -> bool {
        self.labels.contains(&label)
    }

    fn policy_labels(&self) -> impl Iterator<Item = &'p str> + '_ {
        self.labels.iter().copied()
    }

    /// Whether forcing sets `label`.
    fn forces(&self, label: &str) -> bool {
        self.forced.iter().any(|(n, _)| *n == label)
    }

    /// Forces (when rewriting) and checks one item's labels, kept sorted by name. Returns whether
    /// forcing added or set a label.
    fn apply<'a>(&self, labels: &mut Vec<(&'a str, &'a str)>, at: Item) -> Result<bool, WriteError>
    where
        'p: 'a,
    {
        let mut changed = false;
        // Kept sorted by name, as remote write requires and Loki prints them: a sorted list (what
        // senders send) gains each forced label in place; any other is sorted once at the end.
        let sorted = self.rewrite && labels.is_sorted_by(|a, b| a.0 < b.0);
        for (name, value) in &self.forced {
            let found = if sorted {
                labels.binary_search_by(|(n, _)| (*n).cmp(name))
            } else {
                labels
                    .iter()
                    .position(|(n, _)| n == name)
                    .ok_or(labels.len())
            };
            match found {
                Ok(i) => match labels.get_mut(i) {
                    Some((_, v)) if v == value => {}
                    // An empty value is an absent label in Prometheus and Loki: set it.
                    Some((_, v)) if v.is_empty() => {
                        *v = value;
                        changed = true;
                    }
                    _ => {
                        return Err(WriteError::ForcedLabelConflict {
                            at,
                            label: (*name).to_owned(),
                        });
                    }
                },
                Err(insert_at) => {
                    labels.insert(insert_at, (name, value));
                    changed = true;
                }
            }
        }
        if self.rewrite && !sorted {
            labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        self.within(labels, at)?;
        Ok(changed)
    }

    fn within(&self, labels: &[(&str, &str)], at: Item) -> Result<(), WriteError> {
        if self.policy.matches(labels) {
            Ok(())
        } else {
            Err(WriteError::OutsidePolicy {
                at,
                policy: self.policy.to_string(),
            })
        }
    }
}

/// Refuses a label name given twice in one item: receivers disagree on which value counts.
fn refuse_duplicates(labels: &[(&str, &str)], at: Item) -> Result<(), WriteError> {
    for (i, (name, _)) in labels.iter().enumerate() {
        if labels.iter().skip(i + 1).any(|(n, _)| n == name) {
            return Err(WriteError::DuplicateLabel {
                at,
                label: (*name).to_owned(),
            });
        }
    }
    Ok(())
}

/// Snappy's block format, bounded: the declared length is checked before anything is allocated.
fn decompress_snappy(compressed: &[u8], limits: &WriteLimits) -> Result<Vec<u8>, WriteError> {
    let mut body = Vec::new();
    decompress_snappy_into(compressed, limits, &mut body)?;
    Ok(body)
}

/// [`decompress_snappy`] into `body`, which is resized to the declared length (zeroed only
/// where it grows: snappy writes every byte of it or fails).
fn decompress_snappy_into(
    compressed: &[u8],
    limits: &WriteLimits,
    body: &mut Vec<u8>,
) -> Result<(), WriteError> {
    let declared =
        snap::raw::decompress_len(compressed).map_err(|err| WriteError::Snappy(err.to_string()))?;
    if declared > limits.max_decoded_bytes {
        return Err(WriteError::DecodedTooLarge {
            len: declared,
            max: limits.max_decoded_bytes,
        });
    }
    body.resize(declared, 0);
    snap::raw::Decoder::new()
        .decompress(compressed, body)
        .map_err(|err| WriteError::Snappy(err.to_string()))?;
    Ok(())
}

/// A snappy body read by `rewrite`, which writes the new body to its second argument; that is
/// compressed and returned when `compress` (a check returns nothing).
///
/// The decoded, rewritten and compressed buffers are this thread's, kept from one body to the
/// next up to [`SCRATCH_KEEP_BYTES`] each: a batch would otherwise allocate three body-sized
/// buffers, each zeroed (and, natively, faulted in page by page) per request. Only the
/// compressed result is allocated, at its size.
fn snappy_rewrite(
    compressed: &[u8],
    limits: &WriteLimits,
    compress: bool,
    rewrite: impl FnOnce(&[u8], &mut Vec<u8>) -> Result<(), WriteError>,
) -> Result<Vec<u8>, WriteError> {
    let mut scratch = SNAPPY_SCRATCH.take();
    let result = scratch.rewrite(compressed, limits, compress, rewrite);
    scratch.trim();
    SNAPPY_SCRATCH.set(scratch);
    result
}

/// The most a scratch buffer keeps between bodies: a remote write batch of a few thousand
/// samples decodes to a few hundred KB.
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

thread_local! {
    static SNAPPY_SCRATCH: std::cell::Cell<SnappyScratch> = std::cell::Cell::default();
}

#[derive(Default)]
struct SnappyScratch {
    decoded: Vec<u8>,
    rewritten: Vec<u8>,
    compressed: Vec<u8>,
    /// Kept for its hash table (32 KB, allocated zeroed by each new encoder).
    encoder: Option<snap::raw::Encoder>,
}

impl SnappyScratch {
    fn rewrite(
        &mut self,
        body: &[u8],
        limits: &WriteLimits,
        compress: bool,
        rewrite: impl FnOnce(&[u8], &mut Vec<u8>) -> Result<(), WriteError>,
    ) -> Result<Vec<u8>, WriteError> {
        decompress_snappy_into(body, limits, &mut self.decoded)?;
        self.rewritten.clear();
        rewrite(&self.decoded, &mut self.rewritten)?;
        if !compress {
            return Ok(Vec::new());
        }
        let max = snap::raw::max_compress_len(self.rewritten.len());
        if max == 0 {
            return Err(WriteError::Snappy(
                "the body is too large to compress".into(),
            ));
        }
        if self.compressed.len() < max {
            self.compressed.resize(max, 0);
        }
        let encoder = self.encoder.get_or_insert_with(snap::raw::Encoder::new);
        let len = encoder
            .compress(&self.rewritten, &mut self.compressed)
            .map_err(|err| WriteError::Snappy(err.to_string()))?;
        Ok(self.compressed.get(..len).unwrap_or_default().to_vec())
    }

    fn trim(&mut self) {
        for buffer in [&mut self.decoded, &mut self.rewritten, &mut self.compressed] {
            if buffer.capacity() > SCRATCH_KEEP_BYTES {
                *buffer = Vec::new();
            }
        }
    }
}

/// Counts items against [`WriteLimits::max_items`].
fn count_item(kind: ItemKind, index: usize, limits: &WriteLimits) -> Result<Item, WriteError> {
    if index >= limits.max_items {
        return Err(WriteError::TooManyItems {
            kind,
            max: limits.max_items,
        });
    }
    Ok(Item { kind, index })
}

fn count_labels(count: usize, at: Item, limits: &WriteLimits) -> Result<(), WriteError> {
    if count > limits.max_labels_per_item {
        return Err(WriteError::TooManyLabels {
            at,
            max: limits.max_labels_per_item,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
