//! `application/x-www-form-urlencoded` parsing and encoding, as Go's `net/url` (and so
//! Prometheus) reads it: `&`-separated pairs, `+` is a space, `%XX` escapes. A `;` or a bad
//! escape is an error, as in Go, so we never read a query differently from the upstream.

/// One `key=value` pair: the raw spelling of the key (for Envoy, which matches keys raw) and
/// the decoded key and value (what the upstream sees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPair<'a> {
    pub raw_key: &'a str,
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("invalid percent-encoding in the query string or form body")]
    BadEscape,
    #[error("a ';' in the query string or form body is not a separator and is refused")]
    Semicolon,
    #[error("the query string or form body does not decode to UTF-8")]
    NotUtf8,
}

pub fn parse(input: &str) -> Result<Vec<FormPair<'_>>, FormError> {
    let mut pairs = Vec::new();
    for part in input.split('&') {
        if part.is_empty() {
            continue;
        }
        if part.contains(';') {
            return Err(FormError::Semicolon);
        }
        let (raw_key, raw_value) = part.split_once('=').unwrap_or((part, ""));
        pairs.push(FormPair {
            raw_key,
            key: decode(raw_key)?,
            value: decode(raw_value)?,
        });
    }
    Ok(pairs)
}

pub fn decode(input: &str) -> Result<String, FormError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(FormError::BadEscape)?;
                let hi = hex_value(hex[0]).ok_or(FormError::BadEscape)?;
                let lo = hex_value(hex[1]).ok_or(FormError::BadEscape)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so the result is safe as a
/// key or value in any query string or form body.
pub fn encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3 / 2);
    encode_into(input, &mut out);
    out
}

/// [`encode`], appended to `out`.
pub fn encode_into(input: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(input.len() + input.len() / 4);
    // Runs of unreserved bytes are copied whole: this runs on every restricted query, and a
    // push per character was most of a rewrite's cost in the filter's V8.
    let mut run_start = 0;
    for (i, &b) in input.as_bytes().iter().enumerate() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            continue;
        }
        // A run that is not empty starts at an ASCII byte: a character boundary.
        if i > run_start {
            out.push_str(input.get(run_start..i).unwrap_or_default());
        }
        // Three ASCII characters, pushed as such: no UTF-8 check of an escape.
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
        run_start = i + 1;
    }
    if run_start < input.len() {
        out.push_str(input.get(run_start..).unwrap_or_default());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_like_go() {
        let pairs = parse("query=up%7Bjob%3D%22a%22%7D&match%5B%5D=x&flag&&a=1+2").unwrap();
        let got: Vec<(&str, &str, &str)> = pairs
            .iter()
            .map(|p| (p.raw_key, p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("query", "query", "up{job=\"a\"}"),
                ("match%5B%5D", "match[]", "x"),
                ("flag", "flag", ""),
                ("a", "a", "1 2")
            ]
        );
        let cases = [
            ("a=%zz", FormError::BadEscape, "bad hex"),
            ("a=%4", FormError::BadEscape, "truncated escape"),
            ("a=1;b=2", FormError::Semicolon, "semicolon"),
            ("a=%ff", FormError::NotUtf8, "not utf-8"),
        ];
        for (input, want, why) in cases {
            assert_eq!(parse(input), Err(want), "{why}");
        }
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(s in "\\PC{0,40}") {
            let encoded = encode(&s);
            prop_assert!(!encoded.contains(['&', '=', '+', ' ', '#', ';']));
            prop_assert_eq!(decode(&encoded).unwrap(), s);
        }

        /// The run-copying encoder against the byte-at-a-time formulation it replaced.
        #[test]
        fn encode_escapes_every_byte_outside_the_unreserved_set(s in "\\PC{0,40}|[a-z%~_ .é€😀-]{0,40}") {
            let mut expected = String::new();
            for &b in s.as_bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    expected.push(char::from(b));
                } else {
                    expected.push_str(&format!("%{b:02X}"));
                }
            }
            prop_assert_eq!(encode(&s), expected);
        }

        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            let _ = parse(&s);
        }
    }
}
