//! Prometheus remote write 1.0 bodies under a label policy: a snappy-compressed
//! `prometheus.WriteRequest` (`Content-Encoding: snappy`, `Content-Type: application/x-protobuf`).
//!
//! Read and rewritten at the protobuf wire level: only each series' labels (`TimeSeries` field 1)
//! are decoded; samples, exemplars, histograms, metadata and any field a later version adds are
//! kept byte for byte, so nothing a client sends is lost by a schema this code does not know.
//!
//! * [`force`] (the filter): every series gains the policy's equality labels; a series that
//!   already carries one with another value refuses the whole request (never a partial write);
//!   after forcing, every series must lie within the policy.
//! * [`check`] (ext_authz, which cannot rewrite): every series must already lie within it.
//!
//! Labels are kept sorted by name, as the remote-write spec requires. A label name given twice
//! in one series is refused: receivers disagree on which value counts.

use crate::selector::{MatchOp, Policy};
use prost::encoding::{decode_varint, encode_varint};

/// Bounds on a write body, checked before the work they bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimits {
    pub max_compressed_bytes: usize,
    /// Checked against snappy's declared length before anything is allocated.
    pub max_decompressed_bytes: usize,
    pub max_series: usize,
    pub max_labels_per_series: usize,
}

impl Default for WriteLimits {
    fn default() -> Self {
        WriteLimits {
            max_compressed_bytes: 4 << 20,
            max_decompressed_bytes: 32 << 20,
            max_series: 20_000,
            max_labels_per_series: 128,
        }
    }
}

/// Why a write body is refused. Messages name a series by index and a label by name, never
/// another series' values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("the write body is {len} bytes compressed; at most {max} are accepted")]
    CompressedTooLarge { len: usize, max: usize },
    #[error("the write body declares {len} bytes uncompressed; at most {max} are accepted")]
    DecompressedTooLarge { len: usize, max: usize },
    #[error("the write body is not valid snappy (block format): {0}")]
    Snappy(String),
    #[error("the write body is not a valid WriteRequest: {what} at byte {offset}")]
    Protobuf { what: &'static str, offset: usize },
    #[error("the write request has more than {max} series")]
    TooManySeries { max: usize },
    #[error("series {series} has more than {max} labels")]
    TooManyLabels { series: usize, max: usize },
    #[error("series {series}: a label name or value is not UTF-8")]
    NotUtf8 { series: usize },
    #[error("series {series} names label \"{label}\" more than once")]
    DuplicateLabel { series: usize, label: String },
    #[error(
        "series {series} carries label \"{label}\" with a value other than the one the label policy sets; the whole request is refused"
    )]
    ForcedLabelConflict { series: usize, label: String },
    #[error("series {series} is not within the label policy {policy}")]
    OutsidePolicy { series: usize, policy: String },
}

impl WriteError {
    /// 413 for size limits, 403 for what the policy forbids, 400 for a malformed body.
    pub fn status(&self) -> u16 {
        match self {
            WriteError::CompressedTooLarge { .. }
            | WriteError::DecompressedTooLarge { .. }
            | WriteError::TooManySeries { .. }
            | WriteError::TooManyLabels { .. } => 413,
            WriteError::ForcedLabelConflict { .. } | WriteError::OutsidePolicy { .. } => 403,
            WriteError::Snappy(_)
            | WriteError::Protobuf { .. }
            | WriteError::NotUtf8 { .. }
            | WriteError::DuplicateLabel { .. } => 400,
        }
    }
}

/// Whether a request's `Content-Type` and `Content-Encoding` name remote write 1.0.
pub fn is_remote_write_1(content_type: Option<&str>, content_encoding: Option<&str>) -> bool {
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(str::trim);
    // `proto=` names the message; 1.0 senders omit it or name prometheus.WriteRequest.
    let proto = content_type.and_then(|ct| {
        ct.split(';')
            .skip(1)
            .find_map(|p| p.trim().strip_prefix("proto="))
            .map(|p| p.trim_matches('"'))
    });
    media.is_some_and(|m| m.eq_ignore_ascii_case("application/x-protobuf"))
        && proto.is_none_or(|p| p == "prometheus.WriteRequest")
        && content_encoding.is_some_and(|e| e.trim().eq_ignore_ascii_case("snappy"))
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

/// ext_authz: every series must already lie within `policy`.
pub fn check(policy: &Policy, compressed: &[u8], limits: &WriteLimits) -> Result<(), WriteError> {
    let body = decompress(compressed, limits)?;
    let mut series = 0usize;
    for_each_field(&body, 0, |field, _| {
        if field.number == 1 {
            if series >= limits.max_series {
                return Err(WriteError::TooManySeries {
                    max: limits.max_series,
                });
            }
            let labels = series_labels(field.payload, field.offset, series, limits)?;
            within(policy, &labels, series)?;
            series += 1;
        }
        Ok(())
    })
}

/// The filter: the body with the policy's equality labels forced on every series, compressed
/// again.
pub fn force(
    policy: &Policy,
    compressed: &[u8],
    limits: &WriteLimits,
) -> Result<Vec<u8>, WriteError> {
    let body = decompress(compressed, limits)?;
    let forced = forced_labels(policy);
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut series = 0usize;
    for_each_field(&body, 0, |field, raw| {
        if field.number != 1 {
            out.extend_from_slice(raw);
            return Ok(());
        }
        if series >= limits.max_series {
            return Err(WriteError::TooManySeries {
                max: limits.max_series,
            });
        }
        let mut labels = series_labels(field.payload, field.offset, series, limits)?;
        for (name, value) in &forced {
            match labels.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) if v == value => {}
                // An empty value is an absent label in Prometheus: set it.
                Some((_, v)) if v.is_empty() => *v = value,
                Some(_) => {
                    return Err(WriteError::ForcedLabelConflict {
                        series,
                        label: (*name).to_owned(),
                    });
                }
                None => labels.push((name, value)),
            }
        }
        labels.sort_by(|a, b| a.0.cmp(b.0));
        within(policy, &labels, series)?;
        let rewritten = rewrite_series(field.payload, &labels)?;
        encode_key(1, 2, &mut out);
        encode_varint(rewritten.len() as u64, &mut out);
        out.extend_from_slice(&rewritten);
        series += 1;
        Ok(())
    })?;
    snap::raw::Encoder::new()
        .compress_vec(&out)
        .map_err(|err| WriteError::Snappy(err.to_string()))
}

fn within(policy: &Policy, labels: &[(&str, &str)], series: usize) -> Result<(), WriteError> {
    if policy.matches(labels) {
        Ok(())
    } else {
        Err(WriteError::OutsidePolicy {
            series,
            policy: policy.to_string(),
        })
    }
}

fn decompress(compressed: &[u8], limits: &WriteLimits) -> Result<Vec<u8>, WriteError> {
    if compressed.len() > limits.max_compressed_bytes {
        return Err(WriteError::CompressedTooLarge {
            len: compressed.len(),
            max: limits.max_compressed_bytes,
        });
    }
    let declared =
        snap::raw::decompress_len(compressed).map_err(|err| WriteError::Snappy(err.to_string()))?;
    if declared > limits.max_decompressed_bytes {
        return Err(WriteError::DecompressedTooLarge {
            len: declared,
            max: limits.max_decompressed_bytes,
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(compressed)
        .map_err(|err| WriteError::Snappy(err.to_string()))
}

/// One field of a message: its number, and for a length-delimited field its payload.
struct Field<'a> {
    number: u32,
    payload: &'a [u8],
    /// Byte offset of the payload in the decompressed body, for error messages.
    offset: usize,
}

/// Calls `f` with every field of the message in `bytes` (starting at `base` in the body) and
/// the field's raw bytes (key included). Groups (wire types 3 and 4) are refused.
fn for_each_field<'a>(
    bytes: &'a [u8],
    base: usize,
    mut f: impl FnMut(Field<'a>, &'a [u8]) -> Result<(), WriteError>,
) -> Result<(), WriteError> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let start = bytes.len() - rest.len();
        let at = base + start;
        let malformed = |what| WriteError::Protobuf { what, offset: at };
        let key = decode_varint(&mut rest).map_err(|_| malformed("a field key"))?;
        let number = u32::try_from(key >> 3).map_err(|_| malformed("a field number"))?;
        if number == 0 {
            return Err(malformed("field number 0"));
        }
        let payload: &[u8] = match key & 7 {
            0 => {
                decode_varint(&mut rest).map_err(|_| malformed("a varint"))?;
                &[]
            }
            1 => take(&mut rest, 8).ok_or_else(|| malformed("a 64-bit value"))?,
            2 => {
                let len = decode_varint(&mut rest).map_err(|_| malformed("a length"))?;
                let len = usize::try_from(len).map_err(|_| malformed("a length"))?;
                take(&mut rest, len).ok_or_else(|| malformed("a length past the end"))?
            }
            5 => take(&mut rest, 4).ok_or_else(|| malformed("a 32-bit value"))?,
            _ => return Err(malformed("an unsupported wire type")),
        };
        let end = bytes.len() - rest.len();
        let raw = bytes.get(start..end).unwrap_or_default();
        let offset = base + end - payload.len();
        f(
            Field {
                number,
                payload,
                offset,
            },
            raw,
        )?;
    }
    Ok(())
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

/// The labels of one `TimeSeries` (field 1: `Label { name = 1; value = 2; }`, the last value of
/// a repeated scalar winning, as protobuf decoders do).
fn series_labels<'a>(
    series_bytes: &'a [u8],
    base: usize,
    series: usize,
    limits: &WriteLimits,
) -> Result<Vec<(&'a str, &'a str)>, WriteError> {
    let mut labels: Vec<(&str, &str)> = Vec::new();
    for_each_field(series_bytes, base, |field, _| {
        if field.number != 1 {
            return Ok(());
        }
        if labels.len() >= limits.max_labels_per_series {
            return Err(WriteError::TooManyLabels {
                series,
                max: limits.max_labels_per_series,
            });
        }
        let (mut name, mut value) = ("", "");
        for_each_field(field.payload, field.offset, |part, _| {
            let text =
                || std::str::from_utf8(part.payload).map_err(|_| WriteError::NotUtf8 { series });
            match part.number {
                1 => name = text()?,
                2 => value = text()?,
                _ => {}
            }
            Ok(())
        })?;
        if labels.iter().any(|(n, _)| *n == name) {
            return Err(WriteError::DuplicateLabel {
                series,
                label: name.to_owned(),
            });
        }
        labels.push((name, value));
        Ok(())
    })?;
    Ok(labels)
}

/// A `TimeSeries` with its labels replaced by `labels` and every other field kept as sent.
fn rewrite_series(series_bytes: &[u8], labels: &[(&str, &str)]) -> Result<Vec<u8>, WriteError> {
    let mut out = Vec::with_capacity(series_bytes.len() + 64);
    for (name, value) in labels {
        let len = 2 + name.len() + value.len() + 2 * 5;
        let mut label = Vec::with_capacity(len);
        encode_string(1, name, &mut label);
        encode_string(2, value, &mut label);
        encode_key(1, 2, &mut out);
        encode_varint(label.len() as u64, &mut out);
        out.extend_from_slice(&label);
    }
    for_each_field(series_bytes, 0, |field, raw| {
        if field.number != 1 {
            out.extend_from_slice(raw);
        }
        Ok(())
    })?;
    Ok(out)
}

fn encode_key(number: u32, wire_type: u32, out: &mut Vec<u8>) {
    encode_varint(u64::from(number << 3 | wire_type), out);
}

fn encode_string(number: u32, text: &str, out: &mut Vec<u8>) {
    encode_key(number, 2, out);
    encode_varint(text.len() as u64, out);
    out.extend_from_slice(text.as_bytes());
}

/// The labels of every series of a compressed body, for tests.
pub fn decode_labels_for_tests(
    compressed: &[u8],
) -> Result<Vec<Vec<(String, String)>>, WriteError> {
    let limits = WriteLimits::default();
    let body = decompress(compressed, &limits)?;
    let mut all = Vec::new();
    for_each_field(&body, 0, |field, _| {
        if field.number == 1 {
            let labels = series_labels(field.payload, field.offset, all.len(), &limits)?;
            all.push(
                labels
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect(),
            );
        }
        Ok(())
    })?;
    Ok(all)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Remote write 1.0 bodies: series of labels, one sample each.
    fn encode_for_tests(series: &[&[(&str, &str)]], value: f64, timestamp_ms: i64) -> Vec<u8> {
        let mut body = Vec::new();
        for labels in series {
            let mut ts = Vec::new();
            for (name, value) in labels.iter() {
                let mut label = Vec::new();
                encode_string(1, name, &mut label);
                encode_string(2, value, &mut label);
                encode_key(1, 2, &mut ts);
                encode_varint(label.len() as u64, &mut ts);
                ts.extend_from_slice(&label);
            }
            let mut sample = Vec::new();
            encode_key(1, 1, &mut sample);
            sample.extend_from_slice(&value.to_le_bytes());
            encode_key(2, 0, &mut sample);
            encode_varint(timestamp_ms as u64, &mut sample);
            encode_key(2, 2, &mut ts);
            encode_varint(sample.len() as u64, &mut ts);
            ts.extend_from_slice(&sample);
            encode_key(1, 2, &mut body);
            encode_varint(ts.len() as u64, &mut body);
            body.extend_from_slice(&ts);
        }
        snap::raw::Encoder::new()
            .compress_vec(&body)
            .unwrap_or_default()
    }

    fn p(text: &str) -> Policy {
        Policy::parse(text).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn media_types() {
        assert!(is_remote_write_1(
            Some("application/x-protobuf"),
            Some("snappy")
        ));
        assert!(is_remote_write_1(
            Some("application/x-protobuf;proto=prometheus.WriteRequest"),
            Some("snappy")
        ));
        for (ct, ce) in [
            (Some("application/x-protobuf"), None),
            (Some("application/x-protobuf"), Some("gzip")),
            (Some("application/json"), Some("snappy")),
            (None, Some("snappy")),
            (
                Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
                Some("snappy"),
            ),
        ] {
            assert!(!is_remote_write_1(ct, ce), "{ct:?} {ce:?}");
        }
    }

    #[test]
    fn forcing_adds_sorted_labels_and_keeps_samples() {
        let policy = p(r#"{kube_namespace="team-a"}"#);
        let body = encode_for_tests(
            &[
                &[("__name__", "up"), ("job", "x")],
                &[("__name__", "up"), ("kube_namespace", "team-a")],
                &[("__name__", "up"), ("kube_namespace", ""), ("zone", "1")],
            ],
            7.0,
            1000,
        );
        let forced = force(&policy, &body, &WriteLimits::default()).unwrap();
        assert_eq!(
            decode_labels_for_tests(&forced).unwrap(),
            [
                labels(&[
                    ("__name__", "up"),
                    ("job", "x"),
                    ("kube_namespace", "team-a")
                ]),
                labels(&[("__name__", "up"), ("kube_namespace", "team-a")]),
                labels(&[
                    ("__name__", "up"),
                    ("kube_namespace", "team-a"),
                    ("zone", "1")
                ]),
            ]
        );
        // Samples are kept byte for byte: forcing again changes nothing.
        let again = force(&policy, &forced, &WriteLimits::default()).unwrap();
        assert_eq!(
            snap::raw::Decoder::new().decompress_vec(&again).unwrap(),
            snap::raw::Decoder::new().decompress_vec(&forced).unwrap()
        );
        assert!(check(&policy, &forced, &WriteLimits::default()).is_ok());
    }

    #[test]
    fn refusals() {
        let limits = WriteLimits::default();
        let policy = p(r#"{kube_namespace="team-a", env=~"prod|dev"}"#);
        let other = encode_for_tests(
            &[
                &[("__name__", "up"), ("env", "prod")],
                &[("env", "prod"), ("kube_namespace", "team-b")],
            ],
            1.0,
            1,
        );
        let err = force(&policy, &other, &limits).unwrap_err();
        assert_eq!(
            err,
            WriteError::ForcedLabelConflict {
                series: 1,
                label: "kube_namespace".into()
            }
        );
        assert!(!err.to_string().contains("team-b"), "no other value: {err}");
        assert_eq!(err.status(), 403);

        let outside = encode_for_tests(&[&[("__name__", "up"), ("env", "test")]], 1.0, 1);
        assert!(matches!(
            force(&policy, &outside, &limits),
            Err(WriteError::OutsidePolicy { series: 0, .. })
        ));
        let unforced = encode_for_tests(&[&[("__name__", "up"), ("env", "prod")]], 1.0, 1);
        assert!(matches!(
            check(&policy, &unforced, &limits),
            Err(WriteError::OutsidePolicy { series: 0, .. })
        ));

        let duplicate = encode_for_tests(
            &[&[("kube_namespace", "team-a"), ("kube_namespace", "team-b")]],
            1.0,
            1,
        );
        assert!(matches!(
            check(&policy, &duplicate, &limits),
            Err(WriteError::DuplicateLabel { .. })
        ));

        let or_policy = p(r#"{team="a"} or {team="b"}"#);
        assert!(forced_labels(&or_policy).is_empty());
        let b = encode_for_tests(&[&[("team", "b")], &[("team", "a")]], 1.0, 1);
        assert!(force(&or_policy, &b, &limits).is_ok());
        let c = encode_for_tests(&[&[("team", "b")], &[("team", "c")]], 1.0, 1);
        assert!(matches!(
            force(&or_policy, &c, &limits),
            Err(WriteError::OutsidePolicy { series: 1, .. })
        ));

        assert!(matches!(
            check(&policy, b"not snappy at all", &limits),
            Err(WriteError::Snappy(_)) | Err(WriteError::Protobuf { .. })
        ));
        let garbage = snap::raw::Encoder::new()
            .compress_vec(&[0x0a, 0xff])
            .unwrap();
        assert!(matches!(
            check(&policy, &garbage, &limits),
            Err(WriteError::Protobuf { .. })
        ));
        let tight = WriteLimits {
            max_series: 1,
            ..limits
        };
        assert!(matches!(
            check(&or_policy, &b, &tight),
            Err(WriteError::TooManySeries { max: 1 })
        ));
        let tiny = WriteLimits {
            max_decompressed_bytes: 4,
            ..limits
        };
        assert!(matches!(
            check(&or_policy, &b, &tiny),
            Err(WriteError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn unknown_fields_survive() {
        // A series with an exemplar-like field 3 and a histogram-like field 4, and a request
        // with metadata (field 3): all kept.
        let mut ts = Vec::new();
        encode_key(1, 2, &mut ts);
        let mut label = Vec::new();
        encode_string(1, "job", &mut label);
        encode_string(2, "x", &mut label);
        encode_varint(label.len() as u64, &mut ts);
        ts.extend_from_slice(&label);
        encode_string(3, "exemplar-bytes", &mut ts);
        encode_string(4, "histogram-bytes", &mut ts);
        let mut body = Vec::new();
        encode_key(1, 2, &mut body);
        encode_varint(ts.len() as u64, &mut body);
        body.extend_from_slice(&ts);
        encode_string(3, "metadata-bytes", &mut body);
        let compressed = snap::raw::Encoder::new().compress_vec(&body).unwrap();
        let forced = force(&p(r#"{ns="a"}"#), &compressed, &WriteLimits::default()).unwrap();
        let plain = snap::raw::Decoder::new().decompress_vec(&forced).unwrap();
        for kept in ["exemplar-bytes", "histogram-bytes", "metadata-bytes"] {
            assert!(
                plain.windows(kept.len()).any(|w| w == kept.as_bytes()),
                "{kept} kept"
            );
        }
    }
}
