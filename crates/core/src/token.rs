//! Bearer tokens: `tgsa_<32 base62>_<8 hex CRC32 of "tgsa_<secret>">`.
//!
//! The checksum lets the filter reject typos and garbage without a lookup; the prefix lets secret
//! scanners find leaked tokens. Only the SHA-256 of a token is ever stored. A [`Token`] never
//! prints its value: `Debug` is redacted and there is no `Display`.

use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

pub const TOKEN_PREFIX: &str = "tgsa_";
pub const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 8;
/// `tgsa_` + secret + `_` + checksum.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + SECRET_LEN + 1 + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a token. Never carries any part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token does not start with \"{TOKEN_PREFIX}\"")]
    BadPrefix,
    #[error("token has length {len}, expected {TOKEN_LEN}")]
    BadLength { len: usize },
    #[error("token contains a character outside its alphabet")]
    BadCharset,
    #[error("token checksum does not match")]
    ChecksumMismatch,
    #[error("the operating system's random source failed")]
    Randomness,
}

/// A syntactically valid token value. Secret: compare by [`TokenHash`], never log.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A fresh token from the operating system's randomness.
    pub fn generate() -> Result<Token, TokenError> {
        let mut secret = String::with_capacity(SECRET_LEN);
        let mut buf = [0u8; 64];
        while secret.len() < SECRET_LEN {
            getrandom::fill(&mut buf).map_err(|_| TokenError::Randomness)?;
            // Rejection sampling keeps the 62 symbols uniformly likely (248 = 4 * 62).
            for &byte in buf.iter().filter(|b| **b < 248) {
                if secret.len() == SECRET_LEN {
                    break;
                }
                secret.push(char::from(BASE62[usize::from(byte % 62)]));
            }
        }
        let body = format!("{TOKEN_PREFIX}{secret}");
        let checksum = crc32fast::hash(body.as_bytes());
        Ok(Token(format!("{body}_{checksum:08x}")))
    }

    /// Checks prefix, length, alphabet and checksum; no lookup.
    pub fn parse(value: &str) -> Result<Token, TokenError> {
        if !value.starts_with(TOKEN_PREFIX) {
            return Err(TokenError::BadPrefix);
        }
        if value.len() != TOKEN_LEN {
            return Err(TokenError::BadLength { len: value.len() });
        }
        let bytes = value.as_bytes();
        let body_len = TOKEN_PREFIX.len() + SECRET_LEN;
        let (body, rest) = bytes.split_at(body_len);
        let secret = &body[TOKEN_PREFIX.len()..];
        if !secret.iter().all(u8::is_ascii_alphanumeric) || rest[0] != b'_' {
            return Err(TokenError::BadCharset);
        }
        let checksum = &rest[1..];
        if !checksum
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            return Err(TokenError::BadCharset);
        }
        // The checksum is 8 lowercase hex digits (checked above), compared as a number: no
        // formatting on the request path.
        let sent = checksum
            .iter()
            .fold(0u32, |acc, b| acc << 4 | u32::from(hex_value(*b)));
        if sent != crc32fast::hash(body) {
            return Err(TokenError::ChecksumMismatch);
        }
        Ok(Token(value.to_owned()))
    }

    /// Extracts a token from an `Authorization` header value (`Bearer <token>`, scheme
    /// case-insensitive). `None` when the header is not a bearer credential at all.
    pub fn from_authorization(header: &str) -> Option<Result<Token, TokenError>> {
        let (scheme, rest) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        Some(Token::parse(rest.trim()))
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// A short non-secret hint for listings: the prefix and the last four checksum characters.
    pub fn hint(&self) -> String {
        let tail = &self.0[self.0.len() - 4..];
        format!("{TOKEN_PREFIX}…{tail}")
    }

    /// The secret value, for the one response that hands it out.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

/// The value of a lowercase hex digit (the caller checked it is one).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit.wrapping_sub(b'a').wrapping_add(10),
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// SHA-256 of a token: what the store keeps and what grants are keyed by.
/// Equality is constant-time.
#[derive(Clone, Copy, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn from_bytes(bytes: [u8; 32]) -> TokenHash {
        TokenHash(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(hex: &str) -> Option<TokenHash> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(TokenHash(out))
    }
}

impl TryFrom<&[u8]> for TokenHash {
    type Error = std::array::TryFromSliceError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Ok(TokenHash(bytes.try_into()?))
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        // Constant time in four words, not 32 bytes: every word is compared and only the OR
        // of their differences is tested, by `subtle`, which keeps the compiler from branching
        // on it. Byte by byte, a filter hit cost Envoy ~490 instructions more
        // (`make bench-instructions`).
        let (ours, _) = self.0.as_chunks::<8>();
        let (theirs, _) = other.0.as_chunks::<8>();
        let difference = ours.iter().zip(theirs).fold(0u64, |difference, (a, b)| {
            difference | (u64::from_ne_bytes(*a) ^ u64::from_ne_bytes(*b))
        });
        difference.ct_eq(&0).into()
    }
}

impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", &self.to_hex()[..12])
    }
}

/// Replaces anything that looks like a token (`tgsa_` and the characters that may follow it)
/// with `tgsa_<redacted>`: messages that echo client input (a path, a header) must never carry
/// a token into a response or a log.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(TOKEN_PREFIX) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(TOKEN_PREFIX) {
        out.push_str(&rest[..start]);
        out.push_str("tgsa_<redacted>");
        let after = &rest[start + TOKEN_PREFIX.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn redaction() {
        let token = valid();
        let cases = [
            (
                format!("GET /x?t={token} is not allowed"),
                "GET /x?t=tgsa_<redacted> is not allowed".to_owned(),
            ),
            (format!("{token}{token}"), "tgsa_<redacted>".to_owned()),
            ("nothing here".to_owned(), "nothing here".to_owned()),
            ("tgsa_".to_owned(), "tgsa_<redacted>".to_owned()),
            (
                format!("a {}…b", &token[..20]),
                "a tgsa_<redacted>…b".to_owned(),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(&input), want);
        }
    }

    fn valid() -> String {
        Token::generate().unwrap().expose_secret().to_owned()
    }

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let token = valid();
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(token.starts_with("tgsa_"));
        let checksum = &token[TOKEN_LEN - 8..];
        let body = &token[..TOKEN_LEN - 9];
        assert_eq!(
            format!("{:08x}", crc32fast::hash(body.as_bytes())),
            checksum
        );
        assert_ne!(valid(), valid(), "two tokens must differ");
    }

    #[test]
    fn parse_reports_typed_errors() {
        let good = valid();
        let mut flipped = good.clone().into_bytes();
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).unwrap();
        let wrong_sep = format!("{}-{}", &good[..37], &good[38..]);
        let upper_checksum = format!("{}{}", &good[..38], good[38..].to_uppercase());
        let cases: Vec<(String, Result<(), TokenError>, &str)> = vec![
            (good.clone(), Ok(()), "a generated token parses"),
            (String::new(), Err(TokenError::BadPrefix), "empty"),
            (
                good.replacen("tgsa_", "ghp_", 1),
                Err(TokenError::BadPrefix),
                "foreign prefix",
            ),
            (
                format!("{good}x"),
                Err(TokenError::BadLength { len: TOKEN_LEN + 1 }),
                "too long",
            ),
            (
                "tgsa_short".into(),
                Err(TokenError::BadLength { len: 10 }),
                "too short",
            ),
            (
                format!("{}-{}", &good[..6], &good[7..]),
                Err(TokenError::BadCharset),
                "dash in secret",
            ),
            (wrong_sep, Err(TokenError::BadCharset), "wrong separator"),
            (
                flipped,
                Err(TokenError::ChecksumMismatch),
                "one secret character changed",
            ),
        ];
        for (input, want, why) in cases {
            assert_eq!(Token::parse(&input).map(|_| ()), want, "{why}");
        }
        if upper_checksum != good {
            assert_eq!(
                Token::parse(&upper_checksum).map(|_| ()),
                Err(TokenError::BadCharset)
            );
        }
    }

    #[test]
    fn errors_and_debug_never_show_the_value() {
        let token = Token::generate().unwrap();
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        let secret = &token.expose_secret()[5..37];
        for err in [
            Token::parse(&token.expose_secret()[..20]).unwrap_err(),
            Token::parse(&format!("{}x", token.expose_secret())).unwrap_err(),
        ] {
            assert!(!err.to_string().contains(secret));
        }
        assert!(!token.hint().contains(secret));
        assert_eq!(token.hint().chars().count(), 10);
    }

    #[test]
    fn authorization_header_parsing() {
        let token = valid();
        assert!(
            Token::from_authorization(&format!("Bearer {token}"))
                .unwrap()
                .is_ok()
        );
        assert!(
            Token::from_authorization(&format!("bearer  {token} "))
                .unwrap()
                .is_ok()
        );
        assert!(Token::from_authorization("Basic dXNlcjpwYXNz").is_none());
        assert!(Token::from_authorization("Bearer").is_none());
        assert_eq!(
            Token::from_authorization("Bearer nope").unwrap(),
            Err(TokenError::BadPrefix)
        );
    }

    #[test]
    fn hash_hex_round_trip_and_equality() {
        let a = Token::generate().unwrap().hash();
        let b = Token::generate().unwrap().hash();
        assert_eq!(TokenHash::from_hex(&a.to_hex()), Some(a));
        assert_ne!(a, b);
        assert_eq!(TokenHash::from_hex("zz"), None);
        assert_eq!(TokenHash::from_hex(&"é".repeat(32)), None);
    }

    proptest! {
        /// Equal exactly when every byte is, whichever byte differs.
        #[test]
        fn hash_equality_is_byte_equality(bytes in any::<[u8; 32]>(), at in 0usize..32, flip in 1u8..=255) {
            let a = TokenHash::from_bytes(bytes);
            prop_assert_eq!(a, TokenHash::from_bytes(bytes));
            let mut other = bytes;
            other[at] ^= flip;
            prop_assert_ne!(a, TokenHash::from_bytes(other));
        }

        #[test]
        fn generate_parse_round_trip(_seed in 0u8..255) {
            let token = Token::generate().unwrap();
            let parsed = Token::parse(token.expose_secret()).unwrap();
            prop_assert_eq!(parsed.hash(), token.hash());
        }

        #[test]
        fn redaction_never_leaves_a_secret(prefix in ".{0,10}", suffix in ".{0,10}") {
            let token = Token::generate().unwrap();
            let text = format!("{prefix}{}{suffix}", token.expose_secret());
            prop_assert!(!redact(&text).contains(&token.expose_secret()[5..37]));
        }

        #[test]
        fn parse_never_panics(input in ".{0,60}") {
            let _ = Token::parse(&input);
            let _ = Token::from_authorization(&input);
        }
    }
}
