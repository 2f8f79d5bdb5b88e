//! Prometheus remote write: 1.0 (`prometheus.WriteRequest`: series of `Label { name, value }`)
//! and 2.0 (`io.prometheus.write.v2.Request`: a symbol table and series of symbol references),
//! both snappy's block format. Labels stay sorted by name, as both specs require.

use std::collections::HashMap;

use super::wire::{self, Field, encode_bytes, for_each_field};
use super::{
    Confine, Item, ItemKind, WriteError, WriteLimits, count_item, count_labels, decompress_snappy,
    refuse_duplicates, snappy_rewrite,
};

/// The top-level fields of 1.0's `WriteRequest` (timeseries 1, metadata 3, and 2, which 2.0
/// reserves with them) and 2.0's `Request` (symbols 4, timeseries 5).
const V1_ONLY_FIELDS: &[u32] = &[1, 2, 3];
const V2_ONLY_FIELDS: &[u32] = &[4, 5];

/// A body read as one version must not carry the other's series: which version an upstream
/// reads is its own choice (Prometheus before 2.54 and Mimir read 1.0 whatever the
/// `Content-Type` says; Prometheus 3 reads its `proto=` its own way), and the version not
/// checked here would be written unconfined.
fn refuse_other_version(
    field: &Field<'_>,
    other_fields: &[u32],
    what: &'static str,
) -> Result<(), WriteError> {
    if other_fields.contains(&field.number) {
        return Err(WriteError::Protobuf {
            what,
            offset: field.offset,
        });
    }
    Ok(())
}

/// 1.0: `WriteRequest { repeated TimeSeries timeseries = 1; }`,
/// `TimeSeries { repeated Label labels = 1; ... }`. The hot path of every restricted writer:
/// one label buffer for all series, labels read and written without intermediate buffers.
pub(super) fn v1(
    confine: &Confine<'_>,
    compressed: &[u8],
    limits: &WriteLimits,
) -> Result<Vec<u8>, WriteError> {
    snappy_rewrite(compressed, limits, confine.rewrite, |body, out| {
        let mut labels = Vec::with_capacity(32);
        let mut originals = Vec::with_capacity(32);
        let mut sorted = SortedSeries::new(confine);
        let mut index = 0usize;
        for_each_field(body, 0, |field, raw| {
            if field.number != 1 {
                refuse_other_version(
                    &field,
                    V2_ONLY_FIELDS,
                    "a remote write 2.0 field in a 1.0 request",
                )?;
                out.extend_from_slice(raw);
                return Ok(());
            }
            field.length_delimited()?;
            let at = count_item(ItemKind::Series, index, limits)?;
            index += 1;
            if sorted.confine(confine, &field, at, limits, out)? {
                return Ok(());
            }
            let labels_end = v1_labels(&field, at, limits, &mut labels, &mut originals)?;
            confine.apply(&mut labels, at)?;
            if confine.rewrite {
                encode_series(&labels, &originals, field.payload, labels_end, out)?;
            }
            Ok(())
        })
    })
}

/// The fast path for a series as senders write it: labels first, sorted by name, each unique,
/// each in the canonical form (see [`canonical_label`]). One pass over the labels by byte
/// offsets, without the general field walk, merges them with the forced labels and the names
/// the policy reads (both sorted by name); label names and values stay bytes and only those the
/// policy names are read as text (a policy matcher looks at nothing else). The series is written
/// back as runs of its own bytes with the forced labels, encoded once per body, in between.
#[derive(Default)]
struct SortedSeries<'a> {
    /// The forced labels by name.
    forced: Vec<ForcedLabel<'a>>,
    /// Every name the policy reads or forces, by name: what a series' labels are merged with.
    keys: Vec<PolicyLabel<'a>>,
    /// The labels of this series the policy names: (the policy's name, the value's bytes).
    seen: Vec<(&'a str, &'a [u8])>,
    /// The labels the policy names, as read from the last series (see `read_named`).
    read: Vec<(&'a str, &'a str)>,
    /// `read` has passed the policy (with the forced labels applied): false until a series has.
    read_passed: bool,
    named: Vec<(&'a str, &'a str)>,
    /// Forced labels to write, in the order of the series' bytes.
    edits: Vec<Edit>,
}

/// A label the policy forces, with its `Label` field encoded once per body.
struct ForcedLabel<'a> {
    name: &'a str,
    value: &'a str,
    field: Vec<u8>,
}

/// A label name the policy reads (a matcher's) or forces, or both.
struct PolicyLabel<'a> {
    name: &'a str,
    /// The policy's matchers read it.
    named: bool,
    /// Its entries in `SortedSeries::forced` (a policy may force a name twice).
    forced: std::ops::Range<usize>,
}

impl<'a> PolicyLabel<'a> {
    /// The series lacks this name: its first forced entry is inserted at byte `at`; another
    /// entry of the name with another value conflicts with it, as in `Confine::apply`.
    #[inline]
    fn insert(
        &self,
        forced: &[ForcedLabel<'a>],
        at: usize,
        edits: &mut Vec<Edit>,
        conflict: &mut Option<&'a str>,
    ) {
        let mut entries = forced.get(self.forced.clone()).unwrap_or_default().iter();
        let Some(first) = entries.next() else {
            return;
        };
        edits.push(Edit {
            at,
            resume: at,
            label: self.forced.start,
        });
        if entries.any(|label| label.value != first.value) {
            *conflict = conflict.or(Some(first.name));
        }
    }
}

/// A forced label written into a series: the field of `forced[label]` goes at byte `at` of the
/// series' payload, and the copy of the payload resumes at `resume` (past the label it replaces,
/// if any).
struct Edit {
    at: usize,
    resume: usize,
    label: usize,
}

impl<'a> SortedSeries<'a> {
    fn new<'p: 'a>(confine: &Confine<'p>) -> SortedSeries<'a> {
        let mut forced: Vec<ForcedLabel<'a>> = confine
            .forced
            .iter()
            .map(|(name, value)| {
                let mut field = Vec::new();
                wire::encode_pair(1, name, value, &mut field);
                ForcedLabel { name, value, field }
            })
            .collect();
        // The merge needs them by name. A selector keeps its matchers sorted, so this is also
        // the policy's order, in which `Confine::apply` reports the first conflict.
        forced.sort_by(|a, b| a.name.cmp(b.name));
        let mut names: Vec<&'a str> = confine
            .policy_labels()
            .chain(forced.iter().map(|label| label.name))
            .collect();
        names.sort_unstable();
        names.dedup();
        let keys = names
            .into_iter()
            .map(|name| PolicyLabel {
                name,
                named: confine.names(name),
                forced: forced.partition_point(|label| label.name < name)
                    ..forced.partition_point(|label| label.name <= name),
            })
            .collect();
        SortedSeries {
            forced,
            keys,
            ..SortedSeries::default()
        }
    }

    /// Confines one series; `Ok(false)` when it is not in the sorted form (the general path
    /// then reads it).
    fn confine<'p: 'a>(
        &mut self,
        confine: &Confine<'p>,
        series: &Field<'a>,
        at: Item,
        limits: &WriteLimits,
        out: &mut Vec<u8>,
    ) -> Result<bool, WriteError> {
        self.seen.clear();
        self.edits.clear();
        let mut next_key = 0usize;
        // The first forced label whose name is sent with another value.
        let mut conflict: Option<&'a str> = None;
        let mut last_name: Option<&[u8]> = None;
        let mut count = 0usize;
        let (forced, keys) = (&self.forced, &self.keys);
        let (edits, seen) = (&mut self.edits, &mut self.seen);
        let payload = series.payload;
        let mut start = 0usize;
        // `0a len Label`, one-byte length: every label a sender writes under 128 bytes.
        while let Some(&[0x0a, len]) = payload.get(start..start + 2) {
            let Some((name, value, end)) = canonical_label_at(payload, start, len) else {
                return Ok(false);
            };
            if last_name.is_some_and(|last| compare_names(last, name).is_ge()) {
                return Ok(false);
            }
            last_name = Some(name);
            count += 1;
            count_labels(count, at, limits)?;
            // Forced labels named before this one go in front of it; one of its name keeps it,
            // sets it where empty, or conflicts; a name the policy reads is kept as read.
            while let Some(key) = keys.get(next_key) {
                match compare_names(key.name.as_bytes(), name) {
                    std::cmp::Ordering::Less => {
                        key.insert(forced, start, edits, &mut conflict);
                        next_key += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        // As `Confine::apply`: each forced entry of the name in turn, against
                        // the value as the entries before it left it.
                        let mut current = value;
                        for i in key.forced.clone() {
                            let Some(label) = forced.get(i) else { continue };
                            if current == label.value.as_bytes() {
                                continue;
                            }
                            if current.is_empty() {
                                // An empty value is an absent label in Prometheus: set it.
                                edits.push(Edit {
                                    at: start,
                                    resume: end,
                                    label: i,
                                });
                                current = label.value.as_bytes();
                            } else {
                                conflict = conflict.or(Some(label.name));
                            }
                        }
                        if key.named {
                            seen.push((key.name, value));
                        }
                        next_key += 1;
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            start = end;
        }
        let labels_end = start;
        // The rest (samples, exemplars, ...) is walked as any message: a label among it, or
        // one spelled otherwise, is the general path's.
        let rest = payload.get(labels_end..).unwrap_or_default();
        if !other_messages_only(rest) {
            let mut label_after = false;
            for_each_field(rest, series.offset + labels_end, |field, _| {
                label_after |= field.number == 1;
                Ok(())
            })?;
            if label_after {
                return Ok(false);
            }
        }
        for key in self.keys.get(next_key..).unwrap_or_default() {
            key.insert(&self.forced, labels_end, &mut self.edits, &mut conflict);
        }
        // The policy is a pure function of the labels it names: a series naming the same values
        // as the last one (as most of a batch does: one namespace, one job) passes as it did.
        let repeated = self.read_named(at)? && self.read_passed;
        if let Some(label) = conflict {
            return Err(WriteError::ForcedLabelConflict {
                at,
                label: label.to_owned(),
            });
        }
        if !repeated {
            // What the policy judges: the labels read, with the forced ones set.
            self.named.clear();
            self.named.extend_from_slice(&self.read);
            for (name, value) in &confine.forced {
                match self.named.iter_mut().find(|(n, _)| n == name) {
                    Some((_, v)) => *v = value,
                    None => self.named.push((name, value)),
                }
            }
            confine.within(&self.named, at)?;
            // A refusal ends the body, so from here `read` is known to pass.
            self.read_passed = true;
        }
        if confine.rewrite {
            self.write(payload, out);
        }
        Ok(true)
    }

    /// Reads the labels the policy names (`seen`) into `read`, in order; `true` when they are
    /// the last series' (same names, same value bytes). A value equal to the last one keeps its
    /// text: only a new value is checked as UTF-8.
    fn read_named(&mut self, at: Item) -> Result<bool, WriteError> {
        let mut same = self.read.len() == self.seen.len();
        for (n, (name, value)) in self.seen.iter().enumerate() {
            match self.read.get(n) {
                Some((last_name, last_value))
                    if *last_name == *name && last_value.as_bytes() == *value => {}
                _ => {
                    let value =
                        std::str::from_utf8(value).map_err(|_| WriteError::NotUtf8 { at })?;
                    match self.read.get_mut(n) {
                        Some(slot) => *slot = (name, value),
                        None => self.read.push((name, value)),
                    }
                    same = false;
                }
            }
        }
        self.read.truncate(self.seen.len());
        Ok(same)
    }

    /// The series with the edits merged in: its own bytes copied in runs between them.
    fn write(&self, payload: &[u8], out: &mut Vec<u8>) {
        let field = |edit: &Edit| {
            self.forced
                .get(edit.label)
                .map_or(&[][..], |label| label.field.as_slice())
        };
        // The length of the runs written below, whatever the edits (the merge makes them in
        // order and apart; a run an edit would overlap is written, and counted, empty).
        let (mut len, mut copied) = (0usize, 0usize);
        for edit in &self.edits {
            len += edit.at.saturating_sub(copied) + field(edit).len();
            copied = copied.max(edit.resume);
        }
        len += payload.len().saturating_sub(copied);
        wire::encode_key(1, 2, out);
        wire::put_varint(len as u64, out);
        let mut copied = 0usize;
        for edit in &self.edits {
            out.extend_from_slice(payload.get(copied..edit.at).unwrap_or_default());
            out.extend_from_slice(field(edit));
            copied = copied.max(edit.resume);
        }
        out.extend_from_slice(payload.get(copied..).unwrap_or_default());
    }
}

/// Byte order of two label names, deciding on the first byte where it can: most names differ
/// there, and a full comparison is a call into `memcmp`.
fn compare_names(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match a.first().cmp(&b.first()) {
        std::cmp::Ordering::Equal => a.cmp(b),
        first => first,
    }
}

/// A label as read, with its bytes as sent (copied whole when it is written back unchanged).
type Original<'a> = (&'a str, &'a str, &'a [u8]);

/// Reads one series' labels into `labels` (and `originals`). Returns where the labels end when
/// they are all at the start of the series (as every sender writes them), so the rest can be
/// copied whole.
fn v1_labels<'a>(
    series: &Field<'a>,
    at: Item,
    limits: &WriteLimits,
    labels: &mut Vec<(&'a str, &'a str)>,
    originals: &mut Vec<Original<'a>>,
) -> Result<Option<usize>, WriteError> {
    labels.clear();
    originals.clear();
    let mut sorted = true;
    let mut leading = true;
    let mut labels_end = 0usize;
    let not_utf8 = || WriteError::NotUtf8 { at };
    for_each_field(series.payload, series.offset, |field, raw| {
        if field.number != 1 {
            leading = false;
            return Ok(());
        }
        count_labels(labels.len() + 1, at, limits)?;
        let pair = match canonical_label(field.payload, field.wire_type) {
            Some((name, value)) => (
                std::str::from_utf8(name).map_err(|_| not_utf8())?,
                std::str::from_utf8(value).map_err(|_| not_utf8())?,
            ),
            None => wire::decode_pair(&field, not_utf8)?,
        };
        sorted &= labels.last().is_none_or(|(last, _)| *last < pair.0);
        labels.push(pair);
        originals.push((pair.0, pair.1, raw));
        if leading {
            labels_end += raw.len();
        }
        Ok(())
    })?;
    // Strictly ascending names cannot repeat; anything else is searched.
    if !sorted {
        refuse_duplicates(labels, at)?;
    }
    // Labels after another field: only a full walk can separate them again.
    Ok(leading.then_some(labels_end))
}

/// A `Label` as senders write it (`0a len name 12 len value`, one-byte lengths), read without
/// the general walk; `None` for any other spelling, which the general walk then reads.
fn canonical_label(payload: &[u8], wire_type: u8) -> Option<(&[u8], &[u8])> {
    if wire_type != 2 {
        return None;
    }
    let (&0x0a, rest) = payload.split_first()? else {
        return None;
    };
    let (&n, rest) = rest.split_first()?;
    if n >= 0x80 {
        return None;
    }
    let (name, rest) = rest.split_at_checked(usize::from(n))?;
    if rest.is_empty() {
        return Some((name, b""));
    }
    let (&0x12, rest) = rest.split_first()? else {
        return None;
    };
    let (&m, value) = rest.split_first()?;
    (m < 0x80 && value.len() == usize::from(m)).then_some((name, value))
}

/// Whether `rest` is a run of length-delimited fields other than labels, each with a one-byte
/// key and length, filling it exactly (a series' samples as senders write them): what the
/// general walk would accept without finding a label, read without it.
fn other_messages_only(rest: &[u8]) -> bool {
    let mut at = 0usize;
    while let Some(&[key, len]) = rest.get(at..at + 2) {
        // Wire type 2, a field number from 2 to 15.
        if key & 0x87 != 2 || key >> 3 < 2 || len >= 0x80 {
            return false;
        }
        at += 2 + usize::from(len);
    }
    at == rest.len()
}

/// [`canonical_label`] for the `Label` field at `start` of `payload` (`0a len` read there):
/// `0a n name`, then `12 m value` unless the value is empty, filling exactly `len` bytes.
/// Returns the name, the value and where the field ends.
fn canonical_label_at(payload: &[u8], start: usize, len: u8) -> Option<(&[u8], &[u8], usize)> {
    let end = start + 2 + usize::from(len);
    if len >= 0x80 {
        return None;
    }
    let &[0x0a, n, ref rest @ ..] = payload.get(start + 2..end)? else {
        return None;
    };
    let (name, rest) = rest.split_at_checked(usize::from(n))?;
    match *rest {
        [] => Some((name, b"", end)),
        // `m` fits in the label's one-byte length, so it is one byte as well.
        [0x12, m, ref value @ ..] if usize::from(m) == value.len() => Some((name, value, end)),
        _ => None,
    }
}

/// Writes a `TimeSeries` with `labels` and every other field of `payload` as sent. A label
/// read from the series and unchanged is copied as it came (a merge: both lists are sorted by
/// name when the sender sorted them; otherwise labels are encoded anew).
fn encode_series(
    labels: &[(&str, &str)],
    originals: &[Original<'_>],
    payload: &[u8],
    labels_end: Option<usize>,
    out: &mut Vec<u8>,
) -> Result<(), WriteError> {
    let scattered;
    let rest: &[u8] = match labels_end {
        Some(end) => payload.get(end..).unwrap_or_default(),
        None => {
            let mut others = Vec::with_capacity(payload.len());
            for_each_field(payload, 0, |part, raw| {
                if part.number != 1 {
                    others.extend_from_slice(raw);
                }
                Ok(())
            })?;
            scattered = others;
            &scattered
        }
    };
    let unchanged = |j: &mut usize, name: &str, value: &str| -> Option<&[u8]> {
        let (n, v, raw) = originals.get(*j)?;
        if *n != name {
            return None;
        }
        *j += 1;
        (*v == value).then_some(*raw)
    };
    let mut j = 0;
    let labels_len: usize = labels
        .iter()
        .map(|(n, v)| unchanged(&mut j, n, v).map_or_else(|| wire::pair_len(n, v), <[u8]>::len))
        .sum();
    wire::encode_key(1, 2, out);
    wire::put_varint((labels_len + rest.len()) as u64, out);
    let mut j = 0;
    for (name, value) in labels {
        match unchanged(&mut j, name, value) {
            Some(raw) => out.extend_from_slice(raw),
            None => wire::encode_pair(1, name, value, out),
        }
    }
    out.extend_from_slice(rest);
    Ok(())
}

/// 2.0: `Request { repeated string symbols = 4; repeated TimeSeries timeseries = 5; }`,
/// `TimeSeries { repeated uint32 labels_refs = 1; ... }`. Forced names and values are appended
/// to the symbol table, so every existing reference (exemplars, metadata) stays valid.
pub(super) fn v2(
    confine: &Confine<'_>,
    compressed: &[u8],
    limits: &WriteLimits,
) -> Result<Vec<u8>, WriteError> {
    snappy_rewrite(compressed, limits, confine.rewrite, |body, out| {
        let mut symbols: Vec<&str> = Vec::new();
        for_each_field(body, 0, |field, _| {
            if field.number == 4 {
                let text = field.text().ok_or(WriteError::Protobuf {
                    what: "a symbol that is not a string",
                    offset: field.offset,
                })?;
                symbols.push(text.map_err(|_| WriteError::Protobuf {
                    what: "a symbol that is not UTF-8",
                    offset: field.offset,
                })?);
            }
            Ok(())
        })?;
        if symbols.first().is_some_and(|s| !s.is_empty()) {
            return Err(WriteError::Protobuf {
                what: "a symbol table that does not start with the empty string",
                offset: 0,
            });
        }
        // The spec's first symbol; a sender with no symbols at all sent no labels either.
        if symbols.is_empty() {
            symbols.push("");
        }
        let known = symbols.len();
        let mut index_of: HashMap<&str, u32> = HashMap::with_capacity(known);
        for (i, s) in symbols.iter().enumerate().rev() {
            index_of.insert(s, symbol_ref(i)?);
        }
        let mut series_out = Vec::with_capacity(body.len() + 64);
        let mut index = 0usize;
        for_each_field(body, 0, |field, raw| {
            if field.number != 5 {
                refuse_other_version(
                    &field,
                    V1_ONLY_FIELDS,
                    "a remote write 1.0 field in a 2.0 request",
                )?;
                if field.number != 4 {
                    series_out.extend_from_slice(raw);
                }
                return Ok(());
            }
            field.length_delimited()?;
            let at = count_item(ItemKind::Series, index, limits)?;
            index += 1;
            let mut labels = v2_labels(&field, &symbols[..known], at, limits)?;
            confine.apply(&mut labels, at)?;
            if confine.rewrite {
                let mut refs = Vec::with_capacity(labels.len() * 2);
                for (name, value) in &labels {
                    refs.push(symbol(&mut symbols, &mut index_of, name)?);
                    refs.push(symbol(&mut symbols, &mut index_of, value)?);
                }
                let mut series = Vec::with_capacity(field.payload.len() + 16);
                wire::encode_packed_uint32s(1, &refs, &mut series);
                for_each_field(field.payload, 0, |part, raw| {
                    if part.number != 1 {
                        series.extend_from_slice(raw);
                    }
                    Ok(())
                })?;
                encode_bytes(5, &series, &mut series_out);
            }
            Ok(())
        })?;
        out.reserve(series_out.len() + body.len() / 4);
        for s in &symbols {
            encode_bytes(4, s.as_bytes(), out);
        }
        out.extend_from_slice(&series_out);
        Ok(())
    })
}

fn v2_labels<'a>(
    series: &Field<'_>,
    symbols: &[&'a str],
    at: Item,
    limits: &WriteLimits,
) -> Result<Vec<(&'a str, &'a str)>, WriteError> {
    let mut refs = Vec::new();
    for_each_field(series.payload, series.offset, |field, _| {
        if field.number == 1 {
            field.uint32s(&mut refs)?;
            count_labels(refs.len() / 2, at, limits)?;
        }
        Ok(())
    })?;
    if refs.len() % 2 != 0 {
        return Err(WriteError::Malformed {
            at,
            what: "labels_refs has an odd length".into(),
        });
    }
    let lookup = |r: &u32| {
        usize::try_from(*r)
            .ok()
            .and_then(|i| symbols.get(i).copied())
            .ok_or_else(|| WriteError::Malformed {
                at,
                what: format!("labels_refs names symbol {r}, past the symbol table"),
            })
    };
    let mut labels = Vec::with_capacity(refs.len() / 2);
    for pair in refs.chunks_exact(2) {
        if let [name, value] = pair {
            labels.push((lookup(name)?, lookup(value)?));
        }
    }
    refuse_duplicates(&labels, at)?;
    Ok(labels)
}

/// The index of `text` in the symbol table, appended when absent.
fn symbol<'a>(
    symbols: &mut Vec<&'a str>,
    index_of: &mut HashMap<&'a str, u32>,
    text: &'a str,
) -> Result<u32, WriteError> {
    if let Some(i) = index_of.get(text) {
        return Ok(*i);
    }
    let i = symbol_ref(symbols.len())?;
    symbols.push(text);
    index_of.insert(text, i);
    Ok(i)
}

fn symbol_ref(index: usize) -> Result<u32, WriteError> {
    u32::try_from(index).map_err(|_| WriteError::Protobuf {
        what: "a symbol table too large",
        offset: 0,
    })
}

/// The labels of every series of a compressed remote write 1.0 body, for tests and fuzzing.
pub fn decode_labels_for_tests(
    compressed: &[u8],
) -> Result<Vec<Vec<(String, String)>>, WriteError> {
    let limits = WriteLimits::default();
    let body = decompress_snappy(compressed, &limits)?;
    let mut all = Vec::new();
    for_each_field(&body, 0, |field, _| {
        if field.number == 1 {
            let at = count_item(ItemKind::Series, all.len(), &limits)?;
            let mut labels = Vec::new();
            v1_labels(&field, at, &limits, &mut labels, &mut Vec::new())?;
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
