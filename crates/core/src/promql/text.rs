//! Reading query text safely: the bounds and refusals applied before promql-parser sees a query
//! (nesting, length, durations it would panic on, string escapes Go reads differently), and
//! the parse itself.

use super::{MAX_NESTING, MAX_OPERATORS, MAX_QUERY_BYTES, MAX_REGEX_MATCHERS, QueryError};
use crate::regex_dialect;
use promql_parser::parser::{self, Expr};

/// A client's query: within the bounds, refusals checked, its regexes held to the shared
/// dialect and counted before the parser compiles them, then parsed.
pub(super) fn parse(param: &'static str, text: &str) -> Result<Expr, QueryError> {
    parse_text(param, text, true)
}

/// A text Tollgate printed from a query [`parse`] read (the rewrite it verifies): its regexes
/// are the client's, already checked, and the policy's.
pub(super) fn parse_rewritten(text: &str) -> Result<Expr, QueryError> {
    parse_text("query", text, false)
}

fn parse_text(param: &'static str, text: &str, from_client: bool) -> Result<Expr, QueryError> {
    let lexed = Lexed::new(text);
    let scan = bounds_lexed(param, &lexed)?;
    if from_client && scan.may_hold_a_regex {
        check_regexes(param, &lexed)?;
    }
    if let Some(number) = scan
        .may_spell_a_large_number
        .then(|| oversized_duration(&lexed))
        .flatten()
    {
        return Err(QueryError::Unparsable {
            param,
            message: format!("duration {number} is too large"),
        });
    }
    if let Some(escape) = scan
        .may_hold_an_escape
        .then(|| ambiguous_escape(&lexed))
        .flatten()
    {
        return Err(QueryError::AmbiguousEscape { param, escape });
    }
    parser::parse(text).map_err(|message| QueryError::Unparsable {
        param,
        message: message.lines().next().unwrap_or("syntax error").to_owned(),
    })
}

/// A query text and the parser's lexer over it, built the first time a check needs it and
/// shared by the others (each lexed the text on its own: a query with a regex and a large
/// number was lexed three times before the parse lexed it again). `None` when the lexer
/// refuses the text: the parser then reports it.
struct Lexed<'a> {
    text: &'a str,
    lexer: std::cell::OnceCell<Option<parser::QueryLexer<'a>>>,
}

impl<'a> Lexed<'a> {
    fn new(text: &'a str) -> Lexed<'a> {
        Lexed {
            text,
            lexer: std::cell::OnceCell::new(),
        }
    }

    fn lexer(&self) -> Option<&parser::QueryLexer<'a>> {
        self.lexer
            .get_or_init(|| parser::lexer(self.text).ok())
            .as_ref()
    }
}

/// What one pass over a query's bytes tells [`parse`]: whether it nests too deep (every
/// bracket counts, quoted or not: no lexer needed), and whether the closer, lexer-based
/// checks for a large duration or an ambiguous escape (`\x`, `\2`, `\3`) are needed at all.
/// A property test holds each flag to the separate check it replaced.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Scan {
    pub too_deep: bool,
    /// Bytes that may spell an operator (`+ - * / % ^ = ! < >`), quoted or not.
    pub operator_bytes: usize,
    /// A `~`, which every regex matcher's operator has.
    pub may_hold_a_regex: bool,
    pub may_spell_a_large_number: bool,
    pub may_hold_an_escape: bool,
}

impl Scan {
    pub(super) fn of(text: &str) -> Scan {
        let bytes = text.as_bytes();
        let (mut depth, mut too_deep) = (0usize, false);
        let (mut large, mut escape) = (false, false);
        let mut operator_bytes = 0;
        let mut regex = false;
        // Digits in a row, and the byte before this one.
        let (mut run, mut previous) = (0usize, 0u8);
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    run += 1;
                    large |= run >= 12;
                    previous = b;
                    continue;
                }
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    too_deep |= depth > MAX_NESTING;
                }
                b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'=' | b'!' | b'<' | b'>' => {
                    operator_bytes += 1;
                }
                b'~' => regex = true,
                b'\\' => escape |= matches!(bytes.get(i + 1), Some(b'x' | b'2' | b'3')),
                b'e' | b'E' | b'x' | b'X' => {
                    large |= previous.is_ascii_digit() || previous == b'.';
                }
                b'i' | b'I' | b'n' | b'N' => {
                    large |= bytes.get(i..i + 3).is_some_and(|word| {
                        word.eq_ignore_ascii_case(b"inf") || word.eq_ignore_ascii_case(b"nan")
                    });
                }
                _ => {}
            }
            run = 0;
            previous = b;
        }
        Scan {
            too_deep,
            operator_bytes,
            may_hold_a_regex: regex,
            may_spell_a_large_number: large,
            may_hold_an_escape: escape,
        }
    }
}

/// The length and nesting bounds, before anything reads the text, and what the one pass over
/// its bytes found for the closer checks.
pub(super) fn bounds(param: &'static str, text: &str) -> Result<Scan, QueryError> {
    bounds_lexed(param, &Lexed::new(text))
}

fn bounds_lexed(param: &'static str, lexed: &Lexed<'_>) -> Result<Scan, QueryError> {
    let text = lexed.text;
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryError::Unparsable {
            param,
            message: format!("longer than {MAX_QUERY_BYTES} bytes"),
        });
    }
    // One pass finds what each check must look at more closely: on a dashboard query it was
    // three passes, a tenth of a parse.
    let scan = Scan::of(text);
    if scan.too_deep {
        return Err(QueryError::Unparsable {
            param,
            message: format!("nested deeper than {MAX_NESTING} levels"),
        });
    }
    // An operator needs an operator byte, or a word of at least three bytes with what
    // separates it: only a text that could hold more operators than allowed is lexed to count.
    let could_hold = scan.operator_bytes + text.len() / 3;
    if could_hold > MAX_OPERATORS && lexed_operators(lexed) > MAX_OPERATORS {
        return Err(QueryError::Unparsable {
            param,
            message: format!("more than {MAX_OPERATORS} operators"),
        });
    }
    Ok(scan)
}

/// The regex matchers of `text` (`=~`, `!~`), found with the parser's lexer: at most
/// [`MAX_REGEX_MATCHERS`], each in the dialect Tollgate and Prometheus read alike
/// ([`regex_dialect`]). promql-parser compiles every regex while it parses, so this runs first:
/// a query of 300 distinct `=~"(?:.{1000}){10}"` cost 18.7 s and 3 GB to parse. A text the
/// lexer refuses is left to the parser.
fn check_regexes(param: &'static str, lexed: &Lexed<'_>) -> Result<(), QueryError> {
    use lrpar::{Lexeme, Lexer, NonStreamingLexer};
    use promql_parser::parser::token::{T_EQL_REGEX, T_IDENTIFIER, T_NEQ_REGEX, T_STRING};
    let Some(lexer) = lexed.lexer() else {
        return Ok(());
    };
    let mut count = 0;
    // The label a matcher names (the lexeme before its operator), and whether the last
    // lexeme was a regex operator.
    let (mut label, mut after_regex_op) = ("", false);
    for lexeme in lexer.iter().flatten() {
        let token = lexeme.tok_id();
        let spelled = lexer.span_str(lexeme.span());
        if after_regex_op && token == T_STRING {
            count += 1;
            if count > MAX_REGEX_MATCHERS {
                return Err(QueryError::Unparsable {
                    param,
                    message: format!("more than {MAX_REGEX_MATCHERS} regex matchers"),
                });
            }
            // The parser refuses a string it cannot unquote.
            if let Ok(pattern) = promql_parser::util::unquote_string(spelled) {
                regex_dialect::to_rust(&pattern).map_err(|err| QueryError::UnsupportedRegex {
                    param,
                    message: format!("regular expression for label `{label}`: {err}"),
                })?;
            }
        }
        after_regex_op = matches!(token, T_EQL_REGEX | T_NEQ_REGEX);
        if !after_regex_op {
            label = match token {
                T_IDENTIFIER | T_STRING => spelled.trim_matches(['"', '\'', '`']),
                _ => "",
            };
        }
    }
    Ok(())
}

/// The binary and unary operators of `text` as the parser's lexer reads them (`!=` and `or`
/// inside braces too: an upper bound is enough). A text the lexer refuses counts 0: the parser
/// refuses it before building anything.
fn lexed_operators(lexed: &Lexed<'_>) -> usize {
    use lrpar::{Lexeme, Lexer};
    use promql_parser::parser::token::{
        T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
        T_MUL, T_NEQ, T_POW, T_SUB,
    };
    let Some(lexer) = lexed.lexer() else {
        return 0;
    };
    lexer
        .iter()
        .flatten()
        .filter(|lexeme| {
            matches!(
                lexeme.tok_id(),
                T_ADD
                    | T_SUB
                    | T_MUL
                    | T_DIV
                    | T_MOD
                    | T_POW
                    | T_EQLC
                    | T_NEQ
                    | T_GTR
                    | T_GTE
                    | T_LSS
                    | T_LTE
                    | T_LAND
                    | T_LOR
                    | T_LUNLESS
                    | T_ATAN2
            )
        })
        .count()
}

/// Largest number of seconds accepted in a range, a subquery or an offset: about 31,700 years.
pub(super) const MAX_DURATION_SECS: f64 = 1e12;

/// The first number in a duration position larger than [`MAX_DURATION_SECS`], or not finite.
/// promql-parser panics converting such a number to a `Duration` (`x[1e30]`, `x offset Inf`;
/// found by fuzzing and review), and the filter runs with `panic = abort`, so these are
/// refused before parsing. Uses the parser's own lexer, so strings, comments and number
/// spellings (hex, octal, `Inf`, `NaN`) are read exactly as the parser reads them: a duration
/// token whose text is a plain number, or a number right after `[`, `:` or `offset` (with an
/// optional sign). A text the lexer refuses is left to the parser to report. Worth calling only
/// where [`may_spell_a_large_number`] (or [`Scan`]) says so.
fn oversized_duration(lexed: &Lexed<'_>) -> Option<String> {
    use lrpar::{Lexeme, Lexer, NonStreamingLexer};
    use promql_parser::parser::token::{
        T_ADD, T_COLON, T_DURATION, T_LEFT_BRACKET, T_NUMBER, T_OFFSET, T_SUB,
    };
    use promql_parser::util::parse_str_radix;
    let lexer = lexed.lexer()?;
    let too_large = |value: f64| !value.is_finite() || value.abs() > MAX_DURATION_SECS;
    let (mut previous, mut before_previous) = (None, None);
    for lexeme in lexer.iter().flatten() {
        let token = lexeme.tok_id();
        let spelled = lexer.span_str(lexeme.span());
        let oversized = match token {
            T_DURATION => spelled.parse::<f64>().is_ok_and(too_large),
            T_NUMBER => {
                let after = |t| previous == Some(t);
                let signed_offset =
                    matches!(previous, Some(T_ADD | T_SUB)) && before_previous == Some(T_OFFSET);
                (after(T_LEFT_BRACKET) || after(T_COLON) || after(T_OFFSET) || signed_offset)
                    && parse_str_radix(spelled).is_ok_and(too_large)
            }
            _ => false,
        };
        if oversized {
            return Some(spelled.to_owned());
        }
        (before_previous, previous) = (previous, Some(token));
    }
    None
}

/// [`oversized_duration`] of a text, for the tests.
#[cfg(test)]
pub(super) fn lexed_oversized_duration(text: &str) -> Option<String> {
    oversized_duration(&Lexed::new(text))
}

/// The first escape in a quoted string whose value is at or above 0x80 written as `\xHH` or
/// `\OOO`: Go's strconv.Unquote (Prometheus) yields a raw byte, promql-parser a code point, so
/// the checked text and the executed text would differ (`"\xc3\xa9"` is `é` in Go and `Ã©`
/// here). Strings are found with the parser's own lexer; backtick strings have no escapes.
/// Worth calling only where [`Scan`] found a `\x`, `\2` or `\3`.
fn ambiguous_escape(lexed: &Lexed<'_>) -> Option<String> {
    use lrpar::{Lexeme, Lexer, NonStreamingLexer};
    use promql_parser::parser::token::T_STRING;
    let lexer = lexed.lexer()?;
    for lexeme in lexer.iter().flatten() {
        if lexeme.tok_id() != T_STRING {
            continue;
        }
        let spelled = lexer.span_str(lexeme.span());
        if spelled.starts_with('`') {
            continue;
        }
        let mut rest = spelled.as_bytes();
        while let Some(at) = rest.iter().position(|&b| b == b'\\') {
            let escape = rest.get(at..).unwrap_or(&[]);
            let (len, value) = match escape.get(1) {
                Some(b'x') => (
                    4,
                    escape
                        .get(2..4)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u32::from_str_radix(h, 16).ok()),
                ),
                Some(b'0'..=b'7') => (
                    4,
                    escape
                        .get(1..4)
                        .and_then(|o| std::str::from_utf8(o).ok())
                        .and_then(|o| u32::from_str_radix(o, 8).ok()),
                ),
                _ => (2, None),
            };
            if value.is_some_and(|v| v >= 0x80) {
                let spelled = escape.get(..len).unwrap_or(escape);
                return Some(String::from_utf8_lossy(spelled).into_owned());
            }
            rest = escape.get(len.min(escape.len())..).unwrap_or(&[]);
        }
    }
    None
}

/// The test [`Scan`] makes, alone, as it was before the scan: its oracle in the tests.
/// A cheap test with no false negatives for [`oversized_duration`], so most queries skip the
/// second lexing pass (it costs about a fifth of an enforcement): a number over
/// [`MAX_DURATION_SECS`] needs 13 digits in a row, an exponent, a hex prefix, or `Inf`/`NaN`.
#[cfg(test)]
pub(super) fn may_spell_a_large_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            run += 1;
            if run >= 12 {
                return true;
            }
            continue;
        }
        run = 0;
        let after_digit = i > 0 && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.');
        if after_digit && matches!(b, b'e' | b'E' | b'x' | b'X') {
            return true;
        }
        // `b | 0x20` lowercases the two letters that can start either word, and nothing else
        // becomes them: the slices are compared only at an `i` or an `n`.
        if matches!(b | 0x20, b'i' | b'n')
            && bytes[i..].len() >= 3
            && (bytes[i..i + 3].eq_ignore_ascii_case(b"inf")
                || bytes[i..i + 3].eq_ignore_ascii_case(b"nan"))
        {
            return true;
        }
    }
    false
}

/// Why a rewrite failed its verification when the cause is the client's text, not the rewrite:
/// promql-parser accepts some queries its own printer cannot give back in a form it accepts
/// (`x[0]` prints as `x[0s]`, "duration must be greater than 0"; found by fuzzing). Such a
/// query is a 400, as if unparsable. Runs only on the failure path, so costs nothing otherwise.
pub(super) fn unprintable(param: &'static str, text: &str) -> Option<QueryError> {
    let printed = parse(param, text).ok()?.to_string();
    let message = parser::parse(&printed).err()?;
    Some(QueryError::Unparsable {
        param,
        message: format!(
            "{} (in the form {printed})",
            message.lines().next().unwrap_or("syntax error")
        ),
    })
}
