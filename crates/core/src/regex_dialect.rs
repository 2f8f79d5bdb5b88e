//! Label regexes are judged here but run by the upstream: Prometheus, Mimir and Loki use Go's
//! RE2, while Tollgate evaluates them with Rust's `regex`. The two dialects read some of the same
//! text differently (`[o&&p]` is an intersection in Rust and three literal characters in Go;
//! `\d` is Unicode-aware in Rust and ASCII in Go), and a containment check that decides on the
//! Rust meaning can then let a selector through that selects more in Go.
//!
//! So a regex is accepted only in a subset both engines read alike, and is rewritten into the
//! Rust spelling of Go's meaning where the spellings differ (the Perl classes). Everything else
//! is refused, naming the construct. Parsing uses `regex-syntax`'s AST, which keeps the
//! spelling (spans) as well as the structure.
//!
//! Accepted: literals (any Unicode), escaped punctuation, `\a \f \t \n \r \v`, `\xHH` and
//! `\x{H..}`; `.`; `^ $ \A \z`; bracket classes with literals, ranges and POSIX classes such as
//! `[[:alpha:]]`, a `-` only first or last; `\d \s \w` and their negations outside brackets;
//! `* + ? {n} {n,} {n,m}` (n, m at most 1000) and their lazy forms; groups `( )` and `(?: )`;
//! flags `m s U` and their negation. Refused: class set operations (`&&`, `--`, `~~`) and nested
//! classes, Perl classes inside brackets, Unicode classes (`\pL`), word boundaries, `\u`
//! escapes, flags `i u x R`, named groups, a repetition of a repetition, `{,n}` and spaces in
//! counted repetitions.

use regex_syntax::ast::{
    self, Ast, ClassPerlKind, ClassSet, ClassSetItem, Flag, FlagsItemKind, GroupKind,
    HexLiteralKind, LiteralKind, RepetitionKind, RepetitionRange,
};

/// Go's RE2 refuses larger counted repetitions (`{1001}`).
const MAX_REPEAT: u32 = 1000;
/// Bounds the parser's (and our walk's) recursion: this runs inside Envoy's wasm VM too.
const NEST_LIMIT: u32 = 64;

/// A regex outside the subset Go and Rust read alike.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{construct} at byte {position} is not accepted: {advice}")]
pub struct DialectError {
    /// Byte offset into the pattern.
    pub position: usize,
    pub construct: &'static str,
    pub advice: &'static str,
}

/// Why a pattern cannot be used: the Rust parser's own error, or a construct outside the subset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("{0}")]
    Syntax(String),
    #[error(transparent)]
    Dialect(#[from] DialectError),
}

/// Checks that `pattern` is in the shared subset and returns it spelled for Rust's `regex` with
/// Go's meaning (today only Perl classes change: `\d` becomes `[0-9]`).
pub fn to_rust(pattern: &str) -> Result<String, PatternError> {
    let ast = ast::parse::ParserBuilder::new()
        .nest_limit(NEST_LIMIT)
        .build()
        .parse(pattern)
        .map_err(|err| PatternError::Syntax(err.kind().to_string()))?;
    let mut splices = Vec::new();
    check(&ast, pattern, MAX_REPEAT, &mut splices)?;
    if splices.is_empty() {
        return Ok(pattern.to_owned());
    }
    let mut out = String::with_capacity(pattern.len() + 16 * splices.len());
    let mut at = 0;
    for (start, end, replacement) in splices {
        out.push_str(pattern.get(at..start).unwrap_or(""));
        out.push_str(replacement);
        at = end;
    }
    out.push_str(pattern.get(at..).unwrap_or(""));
    Ok(out)
}

fn refuse(span: &ast::Span, construct: &'static str, advice: &'static str) -> PatternError {
    PatternError::Dialect(DialectError {
        position: span.start.offset,
        construct,
        advice,
    })
}

type Splices = Vec<(usize, usize, &'static str)>;

/// `repeat_budget`: how many copies of the innermost thing counted repetitions may still make,
/// as Go's `repeatIsValid` counts them (`(a{100}){100}` is refused: 10,000 > 1000).
fn check(
    node: &Ast,
    pattern: &str,
    repeat_budget: u32,
    splices: &mut Splices,
) -> Result<(), PatternError> {
    match node {
        Ast::Empty(_) | Ast::Dot(_) => Ok(()),
        Ast::Literal(literal) => check_literal(literal),
        Ast::Flags(set) => check_flags(&set.flags),
        Ast::Assertion(assertion) => match assertion.kind {
            ast::AssertionKind::StartLine
            | ast::AssertionKind::EndLine
            | ast::AssertionKind::StartText
            | ast::AssertionKind::EndText => Ok(()),
            _ => Err(refuse(
                &assertion.span,
                "a word boundary",
                "Go's \\b is ASCII-only and Rust's Unicode-aware; spell out the boundary",
            )),
        },
        Ast::ClassUnicode(class) => Err(refuse(
            &class.span,
            "a Unicode class (\\p, \\P)",
            "the two engines' Unicode tables differ; list the characters or ranges",
        )),
        Ast::ClassPerl(class) => {
            // Go's meaning, spelled so Rust reads it the same (Rust's are Unicode-aware).
            let replacement = match (&class.kind, class.negated) {
                (ClassPerlKind::Digit, false) => "[0-9]",
                (ClassPerlKind::Digit, true) => "[^0-9]",
                (ClassPerlKind::Space, false) => "[\\t\\n\\f\\r ]",
                (ClassPerlKind::Space, true) => "[^\\t\\n\\f\\r ]",
                (ClassPerlKind::Word, false) => "[0-9A-Za-z_]",
                (ClassPerlKind::Word, true) => "[^0-9A-Za-z_]",
            };
            splices.push((class.span.start.offset, class.span.end.offset, replacement));
            Ok(())
        }
        Ast::ClassBracketed(class) => check_class(class),
        Ast::Repetition(repetition) => {
            let inner_budget = check_repetition(repetition, pattern, repeat_budget)?;
            check(&repetition.ast, pattern, inner_budget, splices)
        }
        Ast::Group(group) => {
            match &group.kind {
                GroupKind::CaptureIndex(_) => {}
                GroupKind::CaptureName { .. } => {
                    return Err(refuse(
                        &group.span,
                        "a named group",
                        "label matchers do not use captures; use (?:...) or (...)",
                    ));
                }
                GroupKind::NonCapturing(flags) => check_flags(flags)?,
            }
            check(&group.ast, pattern, repeat_budget, splices)
        }
        Ast::Alternation(alternation) => alternation
            .asts
            .iter()
            .try_for_each(|a| check(a, pattern, repeat_budget, splices)),
        Ast::Concat(concat) => concat
            .asts
            .iter()
            .try_for_each(|a| check(a, pattern, repeat_budget, splices)),
    }
}

/// A repetition's own rules; returns the repeat budget left for what it repeats.
fn check_repetition(
    repetition: &ast::Repetition,
    pattern: &str,
    repeat_budget: u32,
) -> Result<u32, PatternError> {
    if matches!(*repetition.ast, Ast::Repetition(_)) {
        return Err(refuse(
            &repetition.op.span,
            "a repetition of a repetition",
            "Go's RE2 refuses `a**`; group it as (?:a*)*",
        ));
    }
    let RepetitionKind::Range(range) = &repetition.op.kind else {
        return Ok(repeat_budget);
    };
    let count = match *range {
        RepetitionRange::Exactly(n) | RepetitionRange::AtLeast(n) => n,
        RepetitionRange::Bounded(_, n) => n,
    };
    if count > MAX_REPEAT {
        return Err(refuse(
            &repetition.op.span,
            "a repetition count above 1000",
            "Go's RE2 refuses it",
        ));
    }
    let spelled = pattern
        .get(repetition.op.span.start.offset..repetition.op.span.end.offset)
        .unwrap_or("");
    if !plain_counted_repetition(spelled) {
        return Err(refuse(
            &repetition.op.span,
            "a counted repetition with spaces or without a minimum",
            "Go reads `{,n}` and `{ n }` as literal text; write {0,n} without spaces",
        ));
    }
    match count {
        0 => Ok(MAX_REPEAT),
        n if n > repeat_budget => Err(refuse(
            &repetition.op.span,
            "nested counted repetitions of more than 1000 copies in all",
            "Go's RE2 refuses them; repeat fewer times",
        )),
        n => Ok(repeat_budget / n),
    }
}

/// `{n}`, `{n,}` or `{n,m}` with digits only, optionally followed by `?` (lazy).
fn plain_counted_repetition(spelled: &str) -> bool {
    let inner = spelled.strip_suffix('?').unwrap_or(spelled);
    let Some(inner) = inner.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
        return false;
    };
    let (min, max) = inner.split_once(',').unwrap_or((inner, ""));
    !min.is_empty()
        && min.bytes().all(|b| b.is_ascii_digit())
        && max.bytes().all(|b| b.is_ascii_digit())
}

fn check_literal(literal: &ast::Literal) -> Result<(), PatternError> {
    match literal.kind {
        LiteralKind::Verbatim
        | LiteralKind::Meta
        | LiteralKind::Superfluous
        | LiteralKind::Special(_)
        | LiteralKind::HexFixed(HexLiteralKind::X)
        | LiteralKind::HexBrace(HexLiteralKind::X) => Ok(()),
        LiteralKind::HexFixed(_) | LiteralKind::HexBrace(_) => Err(refuse(
            &literal.span,
            "a \\u or \\U escape",
            "Go's RE2 has no \\u; write \\x{...}",
        )),
        LiteralKind::Octal => Err(refuse(
            &literal.span,
            "an octal escape",
            "write \\x{...} instead",
        )),
    }
}

fn check_flags(flags: &ast::Flags) -> Result<(), PatternError> {
    for item in &flags.items {
        match item.kind {
            FlagsItemKind::Negation
            | FlagsItemKind::Flag(Flag::MultiLine | Flag::DotMatchesNewLine | Flag::SwapGreed) => {}
            FlagsItemKind::Flag(Flag::CaseInsensitive) => {
                return Err(refuse(
                    &item.span,
                    "the case-insensitive flag (?i)",
                    "Go and Rust fold some characters differently; list the spellings, e.g. [Pp]rod",
                ));
            }
            FlagsItemKind::Flag(Flag::Unicode | Flag::CRLF | Flag::IgnoreWhitespace) => {
                return Err(refuse(
                    &item.span,
                    "a flag Go's RE2 does not have (u, R or x)",
                    "Go supports only the flags i, m, s and U",
                ));
            }
        }
    }
    Ok(())
}

fn check_class(class: &ast::ClassBracketed) -> Result<(), PatternError> {
    let items = match &class.kind {
        ClassSet::BinaryOp(op) => {
            return Err(refuse(
                &op.span,
                "a class set operation (&&, -- or ~~)",
                "Go reads these as literal characters; escape them (\\&\\&) or list the characters",
            ));
        }
        ClassSet::Item(ClassSetItem::Union(union)) => union.items.as_slice(),
        ClassSet::Item(item) => std::slice::from_ref(item),
    };
    let last = items.len().saturating_sub(1);
    for (i, item) in items.iter().enumerate() {
        match item {
            ClassSetItem::Empty(_) | ClassSetItem::Range(_) | ClassSetItem::Ascii(_) => {}
            ClassSetItem::Literal(literal) => {
                check_literal(literal)?;
                let bare_dash = literal.c == '-' && literal.kind == LiteralKind::Verbatim;
                if bare_dash && i != 0 && i != last {
                    return Err(refuse(
                        &literal.span,
                        "a `-` inside a class",
                        "put a literal - first or last in the class, or escape it as \\-",
                    ));
                }
            }
            ClassSetItem::Unicode(class) => {
                return Err(refuse(
                    &class.span,
                    "a Unicode class (\\p, \\P)",
                    "the two engines' Unicode tables differ; list the characters or ranges",
                ));
            }
            ClassSetItem::Perl(class) => {
                return Err(refuse(
                    &class.span,
                    "\\d, \\s or \\w inside brackets",
                    "Go's are ASCII-only and Rust's Unicode-aware; write the ranges, e.g. [0-9a-f]",
                ));
            }
            ClassSetItem::Bracketed(nested) => {
                return Err(refuse(
                    &nested.span,
                    "a nested class or an unescaped [ inside a class",
                    "Go reads [ inside a class as a literal; escape it as \\[",
                ));
            }
            ClassSetItem::Union(union) => {
                return Err(refuse(
                    &union.span,
                    "a nested class union",
                    "list the characters in one class",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn accepted_and_translated() {
        const CASES: &[(&str, &str)] = &[
            ("prometheus", "prometheus"),
            ("a|b|", "a|b|"),
            ("team-.*", "team-.*"),
            ("[a-z0-9]+", "[a-z0-9]+"),
            ("[-a]", "[-a]"),
            ("[a-]", "[a-]"),
            ("[]a]", "[]a]"),
            ("[^]a]", "[^]a]"),
            ("[[:alpha:]_]", "[[:alpha:]_]"),
            ("[a&b~c]", "[a&b~c]"),
            ("a{2}b{2,}c{0,3}?", "a{2}b{2,}c{0,3}?"),
            (r"\d+", "[0-9]+"),
            (
                r"x\D\s\S\w\W",
                r"x[^0-9][\t\n\f\r ][^\t\n\f\r ][0-9A-Za-z_][^0-9A-Za-z_]",
            ),
            (r"\x41\x{42}\.\t", r"\x41\x{42}\.\t"),
            ("(?s:.)(?m)^a$(?U)b*", "(?s:.)(?m)^a$(?U)b*"),
            (r"\Aé€\z", r"\Aé€\z"),
            ("", ""),
            ("(a)|(?:b)", "(a)|(?:b)"),
            ("(a{10}){100}(b{0}){1000}", "(a{10}){100}(b{0}){1000}"),
        ];
        for (pattern, want) in CASES {
            assert_eq!(to_rust(pattern).as_deref(), Ok(*want), "{pattern:?}");
            regex::Regex::new(want).unwrap();
        }
    }

    #[test]
    fn refused_with_the_construct_named() {
        const CASES: &[(&str, &str, usize)] = &[
            ("[o&&p]ther", "class set operation", 1),
            ("[a--b]", "class set operation", 1),
            ("[a~~b]", "class set operation", 1),
            ("[[s]]ecret", "nested class", 1),
            ("[a-b-c]", "`-` inside a class", 4),
            (r"[\d_]", "inside brackets", 1),
            (r"\pL", "Unicode class", 0),
            (r"[\p{Greek}]", "Unicode class", 1),
            (r"a\b", "word boundary", 1),
            (r"\B", "word boundary", 0),
            (r"\u0041", "\\u", 0),
            ("(?i)prod", "case-insensitive", 2),
            ("(?x) a", "flag Go's RE2 does not have", 2),
            ("(?-u:a)", "flag Go's RE2 does not have", 3),
            ("(?P<n>a)", "named group", 0),
            ("(?<n>a)", "named group", 0),
            ("a**", "repetition of a repetition", 2),
            ("a{1001}", "above 1000", 1),
            ("a{ 2 }", "with spaces", 1),
            ("(a{100}){100}", "nested counted repetitions", 2),
            ("(?:(?:a{10}){10}b){11}", "nested counted repetitions", 7),
        ];
        for (pattern, construct, position) in CASES {
            match to_rust(pattern) {
                Err(PatternError::Dialect(err)) => {
                    assert!(
                        err.construct.contains(construct),
                        "{pattern:?}: {err} should name {construct}"
                    );
                    assert_eq!(err.position, *position, "{pattern:?}: {err}");
                }
                Err(PatternError::Syntax(err)) => {
                    panic!("{pattern:?}: refused by the parser ({err}), not by the dialect check")
                }
                Ok(rust) => panic!("{pattern:?} should be refused, got {rust:?}"),
            }
        }
    }

    #[test]
    fn syntax_errors_are_errors() {
        // Go reads `a{,3}` as literal text; Rust's parser refuses it.
        for pattern in ["(", "[a", "a)|(b", r"\1", "*", r"\Qa\E", "a{,3}"] {
            assert!(
                matches!(to_rust(pattern), Err(PatternError::Syntax(_))),
                "{pattern:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{}a{}", "(".repeat(500), ")".repeat(500));
        assert!(to_rust(&deep).is_err());
    }
}
