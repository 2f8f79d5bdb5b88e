//! Regexes from bytes, for the `regex` fuzz target and for the Go-oracle test
//! (`tests/e2e/regex_oracle.rs` includes this file by path, so it depends on nothing).
//!
//! The generator is structure-aware: each input byte picks the next construct from a small
//! grammar over the places where Go's RE2 (Prometheus) and Rust's `regex` may read a pattern
//! differently (set operations and nesting in classes, POSIX and Perl classes, Unicode classes,
//! flags, named groups, escapes, counted repetition, anchors), so the fuzzer reaches interesting
//! syntax at once instead of discovering `[`, `&&` and `]` byte by byte. The output need not be a
//! valid regex in either dialect: refusing it is a valid answer.
//!
//! An input starting with `=` is taken verbatim (the rest, as UTF-8, invalid bytes dropped):
//! seeds and kept regressions can then be written as the regex itself.

/// Label values the fuzz target matches every accepted regex against, and the Go-oracle test
/// seeds into Prometheus (the empty value is a series without the label). Chosen to expose
/// dialect differences: class punctuation, Unicode digits, letters and spaces, control
/// characters (`.` and newlines, `\s` and `\v`), code points U+0080–U+00FF (what `\x80`–`\xff`
/// escapes mean in Rust; raw bytes in Go), case-folding specials, characters newer than
/// Unicode 13, and long values.
pub const VALUES: &[&str] = &[
    "",
    "a",
    "b",
    "c",
    "e",
    "o",
    "p",
    "s",
    "x",
    "A",
    "E",
    "Q",
    "aa",
    "ab",
    "abc",
    "aaa",
    "aaaa",
    "Ab",
    "a b",
    "a.b",
    "abc123",
    "other",
    "Other",
    "pther",
    "&ther",
    "-ther",
    "~ther",
    "[o]ther",
    "prometheus",
    "Prometheus",
    "PROMETHEUS",
    "secret",
    "Secret",
    "SECRET",
    "[s]ecret",
    "ſecret",
    "secret\n",
    "\nsecret",
    "0",
    "1",
    "7",
    "42",
    "0041",
    "0123456789",
    "&",
    "-",
    "~",
    "[",
    "]",
    "^",
    "$",
    ".",
    "*",
    "|",
    "#",
    "%",
    "_",
    "\\",
    "\"",
    "'",
    "`",
    "{",
    "}",
    "a-",
    "-a",
    "b-",
    "a*",
    "a**",
    "{2}",
    "a{2}",
    "{,3}",
    "a{,3}",
    "a{ 2 }",
    "\\Q",
    "a\\Eb",
    " ",
    "\u{a0}",
    "\u{2003}",
    "\u{2028}",
    "\u{85}",
    "\u{feff}",
    "\u{200b}",
    "\t",
    "\u{b}",
    "\u{c}",
    "\r",
    "\u{7}",
    "\u{1b}",
    "\u{0}",
    "\n",
    "a\nb",
    "a\n",
    "\u{80}",
    "\u{9f}",
    "\u{ff}",
    "é",
    "É",
    "aé",
    "éa",
    "ß",
    "ẞ",
    "ss",
    "Ω",
    "ω",
    "\u{212a}",
    "k",
    "K",
    "٣",
    "３",
    "𝟙",
    "\u{870}",
    "\u{1e030}",
    "😀",
    "Ωmega",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "abababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababab",
];

/// A generated regex and, for the subset every dialect reads the same way (plain literals,
/// escaped metacharacters, alternation, grouping, `?`, `{n}`), the exact set of strings the
/// fully anchored regex matches: a naive reference to check a matcher against.
pub struct Generated {
    pub regex: String,
    pub language: Option<Vec<String>>,
}

/// Builds a regex from fuzzer bytes (see the module documentation).
pub fn generate(data: &[u8]) -> Generated {
    if let Some(rest) = data.strip_prefix(b"=") {
        // Invalid UTF-8 is dropped, not replaced: U+FFFD would flood the corpus (Prometheus's
        // lexer refuses it anywhere in a query).
        return Generated {
            regex: rest.utf8_chunks().map(|chunk| chunk.valid()).collect(),
            language: None,
        };
    }
    let mut g = Gen {
        data,
        pos: 0,
        atoms: 0,
        flags_seen: false,
    };
    let (regex, language) = g.alternation(0);
    // A bare flag such as `(?i)` changes the rest of its group, alternatives included.
    let language = if g.flags_seen { None } else { language };
    Generated { regex, language }
}

/// Largest language kept; beyond it the reference gives up (`None`).
const MAX_LANGUAGE: usize = 256;
/// Atoms per regex, so generated patterns stay well under the 1 KiB value limit (mostly).
const MAX_ATOMS: usize = 40;
const MAX_DEPTH: usize = 3;

/// Plain literals: the same meaning in every dialect, with or without `(?x)` aside.
const LITERALS: &[&str] = &[
    "a", "b", "c", "e", "o", "p", "s", "x", "A", "E", "Q", "k", "K", "0", "1", "7", "é", "É", "ß",
    "Ω", "ω", "٣", "３", "ſ", "\u{212a}", "\u{870}", "😀",
];

/// Longer plain literals.
const WORDS: &[&str] = &[
    "secret",
    "prometheus",
    "other",
    "ther",
    "ecret",
    "abc",
    "aa",
    "ab",
    "0041",
    "Ωmega",
];

/// Literal characters that some dialect may treat specially (in `(?x)`, inside classes, as
/// escapes): never part of the reference language.
const ODD_LITERALS: &[&str] = &[
    "&", "-", "~", "#", " ", "\u{a0}", "\u{2003}", "%", "_", "'", "`", "\"", "<", ">", "=", "!",
    ":", ",", "}", "{", "]", "{2}", "{,3}", "{ 2 }",
];

/// Escaped metacharacters and what they match (the same in Go and Rust).
const ESCAPED_META: &[(&str, &str)] = &[
    ("\\.", "."),
    ("\\*", "*"),
    ("\\+", "+"),
    ("\\?", "?"),
    ("\\(", "("),
    ("\\)", ")"),
    ("\\[", "["),
    ("\\]", "]"),
    ("\\{", "{"),
    ("\\}", "}"),
    ("\\|", "|"),
    ("\\^", "^"),
    ("\\$", "$"),
    ("\\\\", "\\"),
];

/// Escapes whose support or meaning differs between dialects (or is absent in both).
const ESCAPES: &[&str] = &[
    "\\x41",
    "\\x{41}",
    "\\x{e9}",
    "\\xe9",
    "\\x80",
    "\\xff",
    "\\x{10FFFF}",
    "\\u0041",
    "\\u{41}",
    "\\U00000041",
    "\\101",
    "\\0",
    "\\1",
    "\\8",
    "\\Qa.b\\E",
    "\\Q[s]\\E",
    "\\Qa",
    "\\E",
    "\\e",
    "\\a",
    "\\f",
    "\\v",
    "\\t",
    "\\n",
    "\\r",
    "\\&",
    "\\-",
    "\\~",
    "\\#",
    "\\ ",
    "\\%",
    "\\_",
    "\\<",
    "\\>",
    "\\'",
    "\\\"",
    "\\`",
    "\\@",
    "\\/",
    "\\=",
    "\\:",
    "\\!",
    "\\,",
    "\\é",
    "\\k<n>",
    "\\g1",
    "\\K",
    "\\G",
    "\\Z",
    "\\z",
    "\\C",
    "\\X",
    "\\R",
    "\\h",
    "\\N",
    "\\o{101}",
    "\\c",
];

/// Perl and Unicode classes, in or out of brackets.
const PERL_CLASSES: &[&str] = &[
    "\\d",
    "\\w",
    "\\s",
    "\\D",
    "\\W",
    "\\S",
    "\\pL",
    "\\PL",
    "\\pN",
    "\\p{Greek}",
    "\\p{Latin}",
    "\\p{Lu}",
    "\\p{Nd}",
    "\\p{Zs}",
    "\\P{Greek}",
    "\\p{^Greek}",
    "\\p{Any}",
    "\\p{L}",
    "\\p{Letter}",
    "\\p{greek}",
    "\\p{Han}",
    "\\p{Cc}",
    "\\pZ",
];

const ANCHORS: &[&str] = &["^", "$", "\\A", "\\z", "\\b", "\\B", "\\b{start}", "\\<"];

/// Bare flags (they change the rest of the enclosing group).
const FLAGS: &[&str] = &[
    "(?i)", "(?s)", "(?m)", "(?U)", "(?x)", "(?u)", "(?-u)", "(?-i)", "(?-s)", "(?is)", "(?i-s)",
    "(?R)", "(?)", "(?-)", "(?^)", "(?J)",
];

/// Group openings; the reference language survives only for the plain ones.
const GROUPS: &[(&str, bool)] = &[
    ("(", true),
    ("(?:", true),
    ("(?P<n>", true),
    ("(?<n>", true),
    ("(?P<n1>", true),
    ("(?P<1n>", false),
    ("(?P=n>", false),
    ("(?'n'", false),
    ("(?i:", false),
    ("(?s:", false),
    ("(?m:", false),
    ("(?U:", false),
    ("(?x:", false),
    ("(?-u:", false),
    ("(?u:", false),
    ("(?i-s:", false),
    ("(?=", false),
    ("(?!", false),
    ("(?<=", false),
    ("(?>", false),
    ("(?#", false),
];

/// Repetitions after an atom: `Some(n)` when the reference models it as exactly `n` copies,
/// `Some(0)` meaning `?` (zero or one).
const REPEATS: &[(&str, Option<usize>)] = &[
    ("?", Some(0)),
    ("{2}", Some(2)),
    ("{1}", Some(1)),
    ("*", None),
    ("+", None),
    ("{2,}", None),
    ("{,3}", None),
    ("{1,3}", None),
    ("{0}", None),
    ("{0,}", None),
    ("{ 2 }", None),
    ("{2 }", None),
    ("{ 2}", None),
    ("{2, 3}", None),
    ("{3,2}", None),
    ("*?", None),
    ("+?", None),
    ("??", None),
    ("{2}?", None),
    ("*+", None),
    ("**", None),
    ("++", None),
    ("{2}{3}", None),
    ("{1000}", None),
    ("{1001}", None),
    ("{0,1000}", None),
    ("{,}", None),
    ("{}", None),
    ("{", None),
    ("{a}", None),
];

/// Items inside a bracketed class.
const CLASS_ITEMS: &[&str] = &[
    "a",
    "b",
    "o",
    "p",
    "s",
    "x",
    "é",
    "٣",
    "Ω",
    "a-z",
    "A-Z",
    "0-9",
    "a-c",
    "]",
    "-",
    "a-",
    "-a",
    "a-b-c",
    "a-\\d",
    "[:alpha:]",
    "[:^digit:]",
    "[:digit:]",
    "[:word:]",
    "[:space:]",
    "[:^space:]",
    "[:punct:]",
    "[:upper:]",
    "[:foo:]",
    "[:alpha]",
    "&&",
    "--",
    "~~",
    "&",
    "~",
    "&&p",
    "--b",
    "~~b",
    "[o]",
    "[s]",
    "[^a]",
    "[a-z]",
    "[[:alpha:]]",
    "\\d",
    "\\w",
    "\\s",
    "\\D",
    "\\W",
    "\\S",
    "\\pL",
    "\\p{Greek}",
    "\\PL",
    "\\x41",
    "\\x{e9}",
    "\\xe9",
    "\\x80-\\xff",
    "\\u0041",
    "\\.",
    "\\]",
    "\\[",
    "\\-",
    "\\&",
    "\\~",
    "\\^",
    "\\\\",
    "\\t",
    "\\v",
    "\\n",
    "\\b",
    "\\Q]\\E",
    "^",
    " ",
    "\u{a0}",
    "\u{2003}",
    "\\0",
    "\\101",
    "\\e",
    "\\a",
    "\\f",
    "|",
    ".",
    "*",
    "$",
    "(",
    ")",
    "{",
    "}",
    "#",
    "'",
];

struct Gen<'a> {
    data: &'a [u8],
    pos: usize,
    atoms: usize,
    flags_seen: bool,
}

impl Gen<'_> {
    /// The next input byte; zeros once the input is used up (which ends every repetition).
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn exhausted(&self) -> bool {
        self.pos >= self.data.len() || self.atoms >= MAX_ATOMS
    }

    fn pick<T: Copy>(&mut self, table: &[T]) -> Option<T> {
        let i = usize::from(self.byte()) % table.len().max(1);
        table.get(i).copied()
    }

    fn alternation(&mut self, depth: usize) -> (String, Option<Vec<String>>) {
        let (mut text, mut language) = self.concat(depth);
        // One more branch one time in four, while input lasts.
        while !self.exhausted() && self.byte().is_multiple_of(4) {
            let (branch, branch_language) = self.concat(depth);
            text.push('|');
            text.push_str(&branch);
            language = union(language, branch_language);
        }
        (text, language)
    }

    fn concat(&mut self, depth: usize) -> (String, Option<Vec<String>>) {
        let mut text = String::new();
        let mut language = Some(vec![String::new()]);
        let items = usize::from(self.byte() % 5);
        for _ in 0..items {
            if self.exhausted() {
                break;
            }
            let (atom, atom_language) = self.repeat(depth);
            text.push_str(&atom);
            language = product(language, atom_language);
        }
        (text, language)
    }

    fn repeat(&mut self, depth: usize) -> (String, Option<Vec<String>>) {
        let (mut text, language) = self.atom(depth);
        if !self.byte().is_multiple_of(3) {
            return (text, language);
        }
        // A modelled atom of several characters (`secret`) gets a group, so the repetition
        // applies to all of it as the reference assumes.
        let unit = text.chars().count() == 1
            || (text.starts_with('\\') && text.chars().count() == 2)
            || text.ends_with(')');
        if language.is_some() && !unit {
            text = format!("(?:{text})");
        }
        let Some((suffix, model)) = self.pick(REPEATS) else {
            return (text, None);
        };
        text.push_str(suffix);
        let language = match model {
            Some(0) => union(language, Some(vec![String::new()])),
            Some(n) => {
                let mut result = Some(vec![String::new()]);
                for _ in 0..n {
                    result = product(result, language.clone());
                }
                result
            }
            None => None,
        };
        (text, language)
    }

    fn atom(&mut self, depth: usize) -> (String, Option<Vec<String>>) {
        self.atoms += 1;
        let literal = |s: &str| (s.to_owned(), Some(vec![s.to_owned()]));
        let opaque = |s: &str| (s.to_owned(), None);
        match self.byte() % 16 {
            0..=3 => self.pick(LITERALS).map_or(opaque(""), literal),
            4 => self.pick(WORDS).map_or(opaque(""), literal),
            5 => opaque("."),
            6 => self.pick(ESCAPES).map_or(opaque(""), opaque),
            7 | 8 => self.class(),
            9 | 10 if depth < MAX_DEPTH => {
                let Some((open, plain)) = self.pick(GROUPS) else {
                    return opaque("");
                };
                let (inner, language) = self.alternation(depth + 1);
                let text = format!("{open}{inner})");
                (text, if plain { language } else { None })
            }
            9 | 10 => opaque("()"),
            11 => {
                self.flags_seen = true;
                self.pick(FLAGS).map_or(opaque(""), opaque)
            }
            12 => self.pick(ANCHORS).map_or(opaque(""), opaque),
            13 => match self.pick(ESCAPED_META) {
                Some((text, matched)) => (text.to_owned(), Some(vec![matched.to_owned()])),
                None => opaque(""),
            },
            14 => self.pick(PERL_CLASSES).map_or(opaque(""), opaque),
            _ => self.pick(ODD_LITERALS).map_or(opaque(""), opaque),
        }
    }

    fn class(&mut self) -> (String, Option<Vec<String>>) {
        let mut text = String::from("[");
        if self.byte().is_multiple_of(4) {
            text.push('^');
        }
        let items = 1 + usize::from(self.byte() % 4);
        for _ in 0..items {
            if let Some(item) = self.pick(CLASS_ITEMS) {
                text.push_str(item);
            }
        }
        // Now and then leave it open, or close it twice.
        match self.byte() % 16 {
            0 => {}
            1 => text.push_str("]]"),
            _ => text.push(']'),
        }
        (text, None)
    }
}

fn union(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<Vec<String>> {
    let mut a = a?;
    for s in b? {
        if !a.contains(&s) {
            a.push(s);
        }
    }
    (a.len() <= MAX_LANGUAGE).then_some(a)
}

fn product(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<Vec<String>> {
    let (a, b) = (a?, b?);
    if a.len().saturating_mul(b.len()) > MAX_LANGUAGE {
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for x in &a {
        for y in &b {
            let s = format!("{x}{y}");
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    Some(out)
}
