//! Protobuf read and written at the wire level: the write formats are walked field by field, so
//! every field this code does not interpret (samples, histograms, log lines, spans, fields a later
//! schema adds) passes through byte for byte.

use super::WriteError;
use prost::encoding::{decode_varint, encode_varint, encoded_len_varint};

/// One field of a message: its number, wire type, and for a length-delimited field its payload.
pub(super) struct Field<'a> {
    pub number: u32,
    pub wire_type: u8,
    pub payload: &'a [u8],
    /// The varint's value for wire type 0.
    pub varint: u64,
    /// Byte offset of the payload in the decoded body, for error messages.
    pub offset: usize,
}

/// Calls `f` with every field of the message in `bytes` (starting at `base` in the body) and the
/// field's raw bytes (key included). Groups (wire types 3 and 4) are refused: no format here
/// uses them, and skipping one correctly would mean parsing it.
pub(super) fn for_each_field<'a>(
    bytes: &'a [u8],
    base: usize,
    mut f: impl FnMut(Field<'a>, &'a [u8]) -> Result<(), WriteError>,
) -> Result<(), WriteError> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let start = bytes.len() - rest.len();
        let at = base + start;
        let malformed = |what| WriteError::Protobuf { what, offset: at };
        let key = read_varint(&mut rest).map_err(|_| malformed("a field key"))?;
        let number = u32::try_from(key >> 3).map_err(|_| malformed("a field number"))?;
        if number == 0 {
            return Err(malformed("field number 0"));
        }
        let wire_type = (key & 7) as u8;
        let mut varint = 0;
        let payload: &[u8] = match wire_type {
            0 => {
                varint = decode_varint(&mut rest).map_err(|_| malformed("a varint"))?;
                &[]
            }
            1 => take(&mut rest, 8).ok_or_else(|| malformed("a 64-bit value"))?,
            2 => {
                let len = read_varint(&mut rest).map_err(|_| malformed("a length"))?;
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
                wire_type,
                payload,
                varint,
                offset,
            },
            raw,
        )?;
    }
    Ok(())
}

/// A varint; one or two bytes (keys and most lengths) read here, without a call into prost.
fn read_varint(rest: &mut &[u8]) -> Result<u64, prost::DecodeError> {
    match **rest {
        [low, ref tail @ ..] if low < 0x80 => {
            *rest = tail;
            Ok(u64::from(low))
        }
        [low, high, ref tail @ ..] if high < 0x80 => {
            *rest = tail;
            Ok(u64::from(low & 0x7f) | u64::from(high) << 7)
        }
        _ => decode_varint(rest),
    }
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

impl<'a> Field<'a> {
    /// A length-delimited field as UTF-8 text (proto3 `string`), or `None` for another wire type.
    pub fn text(&self) -> Option<Result<&'a str, std::str::Utf8Error>> {
        (self.wire_type == 2).then(|| std::str::from_utf8(self.payload))
    }

    /// Refuses a field that should hold a message (or string) but has another wire type: a
    /// protobuf decoder refuses it, and reading it as empty would let a rewrite make it valid.
    pub fn length_delimited(&self) -> Result<(), WriteError> {
        if self.wire_type == 2 {
            Ok(())
        } else {
            Err(WriteError::Protobuf {
                what: "a message field with another wire type",
                offset: self.offset,
            })
        }
    }

    /// The values of a `repeated uint32` field, packed or not.
    pub fn uint32s(&self, out: &mut Vec<u32>) -> Result<(), WriteError> {
        let malformed = |what| WriteError::Protobuf {
            what,
            offset: self.offset,
        };
        match self.wire_type {
            0 => out.push(u32::try_from(self.varint).map_err(|_| malformed("a uint32"))?),
            2 => {
                let mut rest = self.payload;
                while !rest.is_empty() {
                    let v = decode_varint(&mut rest).map_err(|_| malformed("a packed varint"))?;
                    out.push(u32::try_from(v).map_err(|_| malformed("a uint32"))?);
                }
            }
            _ => return Err(malformed("a uint32 with a wrong wire type")),
        }
        Ok(())
    }
}

/// A varint; keys and most lengths take one or two bytes, written without the general encoder.
pub(super) fn put_varint(value: u64, out: &mut Vec<u8>) {
    match value {
        0..0x80 => out.push(value as u8),
        0x80..0x4000 => out.extend_from_slice(&[value as u8 | 0x80, (value >> 7) as u8]),
        _ => encode_varint(value, out),
    }
}

pub(super) fn encode_key(number: u32, wire_type: u32, out: &mut Vec<u8>) {
    put_varint(u64::from(number << 3 | wire_type), out);
}

pub(super) fn encode_bytes(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_key(number, 2, out);
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

pub(super) fn encode_packed_uint32s(number: u32, values: &[u32], out: &mut Vec<u8>) {
    let mut packed = Vec::with_capacity(values.len() * 2);
    for v in values {
        encode_varint(u64::from(*v), &mut packed);
    }
    encode_bytes(number, &packed, out);
}

/// The encoded length of a name/value pair field (`Label`, `LabelPairAdapter`), key included.
pub(super) fn pair_len(name: &str, value: &str) -> usize {
    let inner = pair_inner_len(name, value);
    1 + encoded_len_varint(inner as u64) + inner
}

fn pair_inner_len(name: &str, value: &str) -> usize {
    2 + encoded_len_varint(name.len() as u64)
        + name.len()
        + encoded_len_varint(value.len() as u64)
        + value.len()
}

/// A name/value pair message (`Label`, `LabelPairAdapter`): `name = 1; value = 2;`, written in
/// place.
pub(super) fn encode_pair(number: u32, name: &str, value: &str, out: &mut Vec<u8>) {
    let inner = pair_inner_len(name, value);
    out.reserve(inner + 6);
    encode_key(number, 2, out);
    put_varint(inner as u64, out);
    encode_bytes(1, name.as_bytes(), out);
    encode_bytes(2, value.as_bytes(), out);
}

/// Reads a name/value pair message, the last of a repeated scalar winning as protobuf decoders
/// do.
pub(super) fn decode_pair<'a>(
    field: &Field<'a>,
    not_utf8: impl Fn() -> WriteError,
) -> Result<(&'a str, &'a str), WriteError> {
    field.length_delimited()?;
    let (mut name, mut value) = ("", "");
    for_each_field(field.payload, field.offset, |part, _| {
        match (part.number, part.text()) {
            (1, Some(text)) => name = text.map_err(|_| not_utf8())?,
            (2, Some(text)) => value = text.map_err(|_| not_utf8())?,
            _ => {}
        }
        Ok(())
    })?;
    Ok((name, value))
}
