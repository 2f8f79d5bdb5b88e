//! LogQL tokens, as Loki's lexer (Go's `text/scanner` plus LogQL's operators) reads them.
//!
//! What matters for enforcement is that a `{` is found exactly where Loki finds one: strings
//! (double-quoted with Go escapes, or backticks) and `#` comments are skipped whole, so a `{`
//! inside a line filter's string is never taken for a selector. Any character Loki would not
//! read as LogQL (a single quote, non-ASCII outside strings) is an error here, so the two
//! lexers can only agree or refuse.

use super::LogqlError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    /// `[A-Za-z_][A-Za-z0-9_]*`: label names, keywords, function names.
    Ident,
    /// A double-quoted or backtick string; [`decode`] gives its value.
    Str,
    /// A number, duration or byte size: a digit, then letters, digits, `.` and `_`.
    Number,
    Eq,
    Neq,
    Re,
    Nre,
    EqEq,
    Gt,
    Ge,
    Lt,
    Le,
    /// Line filters `|=`, `|~`, `|>`, `!>` (`!=` and `!~` are [`Tok::Neq`] and [`Tok::Nre`]).
    PipeEq,
    PipeRe,
    PipePattern,
    NotPattern,
    Pipe,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    /// `--strict`, `--keep-empty` (logfmt flags).
    Flag,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token {
    pub kind: Tok,
    pub start: usize,
    pub end: usize,
}

pub(super) fn lex(param: &'static str, text: &str) -> Result<Vec<Token>, LogqlError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::with_capacity(text.len() / 3 + 1);
    let mut i = 0;
    let unparsable = |at: usize, what: &str| LogqlError::Unparsable {
        param,
        message: format!("{what} at byte {at}"),
    };
    while let Some(&b) = bytes.get(i) {
        let start = i;
        let two = bytes.get(i + 1).copied();
        let (kind, len) = match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                // A comment runs to the end of the line.
                i = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |p| i + p);
                continue;
            }
            b'"' => (
                Tok::Str,
                quoted_len(bytes, i).ok_or_else(|| unparsable(i, "unterminated string"))?,
            ),
            b'`' => (
                Tok::Str,
                bytes[i + 1..]
                    .iter()
                    .position(|&c| c == b'`')
                    .map(|p| p + 2)
                    .ok_or_else(|| unparsable(i, "unterminated raw string"))?,
            ),
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b',' => (Tok::Comma, 1),
            b'=' => match two {
                Some(b'~') => (Tok::Re, 2),
                Some(b'=') => (Tok::EqEq, 2),
                _ => (Tok::Eq, 1),
            },
            b'!' => match two {
                Some(b'=') => (Tok::Neq, 2),
                Some(b'~') => (Tok::Nre, 2),
                Some(b'>') => (Tok::NotPattern, 2),
                _ => return Err(unparsable(i, "unexpected '!'")),
            },
            b'|' => match two {
                Some(b'=') => (Tok::PipeEq, 2),
                Some(b'~') => (Tok::PipeRe, 2),
                Some(b'>') => (Tok::PipePattern, 2),
                _ => (Tok::Pipe, 1),
            },
            b'>' => match two {
                Some(b'=') => (Tok::Ge, 2),
                _ => (Tok::Gt, 1),
            },
            b'<' => match two {
                Some(b'=') => (Tok::Le, 2),
                _ => (Tok::Lt, 1),
            },
            b'+' => (Tok::Add, 1),
            b'-' => {
                let flag = ["--strict", "--keep-empty"]
                    .iter()
                    .find(|f| bytes[i..].starts_with(f.as_bytes()))
                    .filter(|f| !bytes.get(i + f.len()).is_some_and(|c| is_ident_byte(*c)));
                match flag {
                    Some(f) => (Tok::Flag, f.len()),
                    None => (Tok::Sub, 1),
                }
            }
            b'*' => (Tok::Mul, 1),
            b'/' => (Tok::Div, 1),
            b'%' => (Tok::Mod, 1),
            b'^' => (Tok::Pow, 1),
            b'0'..=b'9' => (Tok::Number, number_len(bytes, i)),
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => (
                Tok::Ident,
                bytes[i..]
                    .iter()
                    .position(|&c| !is_ident_byte(c))
                    .unwrap_or(bytes.len() - i),
            ),
            _ => {
                let c = text.get(i..).and_then(|t| t.chars().next()).unwrap_or('?');
                return Err(unparsable(
                    i,
                    &format!("unexpected character {:?}", c.escape_debug().to_string()),
                ));
            }
        };
        i = start + len;
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    Ok(tokens)
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Length of the double-quoted string at `start`, quotes included; `None` when it does not end
/// on its line (Go's scanner refuses a newline inside one).
fn quoted_len(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match *bytes.get(i)? {
            b'"' => return Some(i + 1 - start),
            b'\\' => i += 2,
            b'\n' => return None,
            _ => i += 1,
        }
    }
}

/// `5m`, `1h30m`, `0.99`, `20MB`, `1e3`, `1e-3`.
fn number_len(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while let Some(&c) = bytes.get(i) {
        let exponent_sign = matches!(c, b'+' | b'-')
            && i > start
            && matches!(bytes[i - 1], b'e' | b'E')
            && bytes[start..i - 1]
                .iter()
                .all(|d| d.is_ascii_digit() || *d == b'.')
            && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        if is_ident_byte(c) || c == b'.' || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i - start
}

/// The value of a string token, as Go's `strconv.Unquote` gives it (Loki unquotes every
/// string). An escape whose value Go reads as a raw byte (`\xHH`, `\OOO` at or above 0x80) is
/// refused: Go and Rust would disagree on the value.
pub(super) fn decode(param: &'static str, spelled: &str) -> Result<String, LogqlError> {
    let bad = |message: String| LogqlError::Unparsable { param, message };
    if let Some(raw) = spelled.strip_prefix('`') {
        // Go drops carriage returns from raw strings.
        return Ok(raw.strip_suffix('`').unwrap_or(raw).replace('\r', ""));
    }
    let inner = spelled
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(spelled);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.char_indices();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else {
            return Err(bad("a string ends in a lone backslash".into()));
        };
        let simple = match e {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let (digits, radix) = match e {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(bad(format!("invalid escape \\{e} in a string"))),
        };
        let mut text = String::new();
        if radix == 8 {
            text.push(e);
        }
        for _ in 0..digits {
            match chars.next() {
                Some((_, d)) if d.is_digit(radix) => text.push(d),
                _ => return Err(bad(format!("invalid escape \\{e} in a string"))),
            }
        }
        let value = u32::from_str_radix(&text, radix)
            .map_err(|_| bad(format!("invalid escape \\{e}{text}")))?;
        if matches!(e, 'x' | '0'..='7') {
            if value > 0xff {
                return Err(bad(format!("octal escape \\{text} above 255")));
            }
            if value >= 0x80 {
                let end = (at + 2 + digits).min(inner.len());
                return Err(LogqlError::AmbiguousEscape {
                    param,
                    escape: inner.get(at..end).unwrap_or("\\x").to_owned(),
                });
            }
        }
        let c = char::from_u32(value)
            .ok_or_else(|| bad(format!("invalid code point in \\{e}{text}")))?;
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Tok> {
        lex("query", text).unwrap().iter().map(|t| t.kind).collect()
    }

    #[test]
    fn strings_hide_braces() {
        use Tok::*;
        let cases: &[(&str, &[Tok], &str)] = &[
            (r#"{a="b"}"#, &[LBrace, Ident, Eq, Str, RBrace], "selector"),
            (
                r#"{a="b"} |= "{x=\"y\"}""#,
                &[LBrace, Ident, Eq, Str, RBrace, PipeEq, Str],
                "a selector inside a filter string is a string",
            ),
            (
                "{a=`b\\`} != `{c}`",
                &[LBrace, Ident, Eq, Str, RBrace, Neq, Str],
                "backslash does not escape in backticks",
            ),
            ("x # {a=\"b\"}\n y", &[Ident, Ident], "comment"),
            (
                "|> !> |~ !~ |",
                &[PipePattern, NotPattern, PipeRe, Nre, Pipe],
                "ops",
            ),
            (
                "--strict --keep-empty -1",
                &[Flag, Flag, Sub, Number],
                "flags",
            ),
            (
                "1h30m 0.99 20MB 1e-3",
                &[Number, Number, Number, Number],
                "numbers",
            ),
        ];
        for (text, want, why) in cases {
            assert_eq!(kinds(text), *want, "{why}: {text}");
        }
        for text in ["'a'", "\"a", "\"a\nb\"", "`a", "a ! b", "é"] {
            assert!(lex("query", text).is_err(), "{text}");
        }
    }

    #[test]
    fn decodes_as_go() {
        let cases = [
            (r#""a\"b""#, Ok("a\"b".to_owned())),
            (r#""\u00e9\t""#, Ok("é\t".to_owned())),
            ("`a\\nb\r`", Ok("a\\nb".to_owned())),
            (r#""\x41\101""#, Ok("AA".to_owned())),
        ];
        for (spelled, want) in cases {
            assert_eq!(decode("query", spelled), want, "{spelled}");
        }
        assert!(matches!(
            decode("query", r#""\xc3\xa9""#),
            Err(LogqlError::AmbiguousEscape { .. })
        ));
        assert!(matches!(
            decode("query", r#""\q""#),
            Err(LogqlError::Unparsable { .. })
        ));
        assert!(decode("query", r#""\ud800""#).is_err());
    }
}
