// Tollgate: a recursive-descent reader for the common forms of PromQL, tried before the
// generated LR parser (`parse::parse`). Not part of the published crate; see vendor/README.md.
//
// It reads a subset only: vector selectors with a metric name and/or `{name op "value", ...}`,
// ranges and subqueries (`[5m]`, `[1h:1m]`), function calls, aggregations with `by`/`without`
// before or after their arguments, decimal numbers, double-quoted strings without escapes,
// parentheses, and binary operators without modifiers. Anything else (comments, unary signs,
// `offset`, `@`, `bool`, `on`, `group_left`, a keyword as a name, escapes, other quotes, hex
// or exponent numbers, non-ASCII text, an error of any kind) makes it answer `None`, and the
// LR parser reads the text instead: it never reports an error of its own.
//
// Every node is built by the same constructors and checked by the same `check_ast` the
// grammar's actions call, in the order the grammar reduces them, so an answer is the LR
// parser's answer; Tollgate's tests and fuzz target hold `parse_fast` to `parse_with_grammar`
// (equal `Expr`s wherever the fast reader answers).

use crate::label::{Labels, Matcher, Matchers};
use crate::parser::ast::check_ast;
use crate::parser::function::get_function;
use crate::parser::token::{
    get_keyword_token, TokenId, TokenType, T_ADD, T_ATAN2, T_BY, T_DIV, T_EQL, T_EQLC,
    T_EQL_REGEX, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD, T_MUL, T_NEQ,
    T_NEQ_REGEX, T_POW, T_SUB, T_WITHOUT,
};
use crate::parser::{Expr, FunctionArgs, LabelModifier};
use crate::util::{parse_duration, parse_str_radix, unquote_string};

/// Deeper nesting is left to the LR parser (which is iterative): this reader recurses.
const MAX_DEPTH: usize = 64;
/// Longer operator chains are left to the LR parser: `check_ast` walks the whole chain below
/// each binary node (`value_type`), so a chain costs the square of its length, and a text the
/// lexer would refuse at its end (`a+a+...+a ~`) must not cost that before the grammar refuses
/// it. Dashboards write a few dozen at most.
const MAX_OPERATORS: usize = 256;

/// The expression `input` holds, when it is written in the forms this reader knows.
pub fn parse_fast(input: &str) -> Option<Expr> {
    if !input.is_ascii() {
        return None;
    }
    let mut reader = Reader {
        bytes: input.as_bytes(),
        text: input,
        at: 0,
        depth: 0,
        operators: 0,
    };
    let expr = reader.expr(0)?;
    reader.skip_space();
    (reader.at == reader.bytes.len()).then_some(expr)
}

struct Reader<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
    depth: usize,
    operators: usize,
}

/// Binary operators by precedence, loosest first, as the grammar's `%left`/`%right` list them.
fn precedence(op: TokenId) -> (u8, bool) {
    match op {
        T_LOR => (1, false),
        T_LAND | T_LUNLESS => (2, false),
        T_EQLC | T_NEQ | T_GTR | T_GTE | T_LSS | T_LTE => (3, false),
        T_ADD | T_SUB => (4, false),
        T_MUL | T_DIV | T_MOD | T_ATAN2 => (5, false),
        // `^` is right-associative.
        _ => (6, true),
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.at + offset).copied()
    }

    /// The lexer skips ASCII whitespace between tokens (`#` starts a comment: not read here).
    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// A run of identifier bytes as the lexer reads one outside braces (`:` included).
    fn word(&mut self) -> &'a str {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| is_name_byte(b) || b == b':')
        {
            self.at += 1;
        }
        self.text.get(start..self.at).unwrap_or("")
    }

    /// The keyword a word is, if any; `Err(())` for a keyword written with capitals (the lexer
    /// lowercases keywords; left to it).
    fn keyword(word: &str) -> Result<Option<TokenId>, ()> {
        if word.bytes().any(|b| b.is_ascii_uppercase()) {
            return match get_keyword_token(&word.to_ascii_lowercase()) {
                Some(_) => Err(()),
                None => Ok(None),
            };
        }
        Ok(get_keyword_token(word))
    }

    fn expr(&mut self, min_precedence: u8) -> Option<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let mut lhs = self.operand()?;
        loop {
            let Some((op, len)) = self.binary_operator()? else {
                break;
            };
            let (precedence, right) = precedence(op);
            if precedence < min_precedence {
                break;
            }
            self.operators += 1;
            if self.operators > MAX_OPERATORS {
                return None;
            }
            self.at += len;
            // A modifier (`bool`, `on`, `group_left`, ...) is a keyword other than an
            // aggregation, which `operand` leaves to the LR parser.
            let rhs = self.expr(if right { precedence } else { precedence + 1 })?;
            lhs = check_ast(Expr::new_binary_expr(lhs, op, None, rhs).ok()?).ok()?;
        }
        self.depth -= 1;
        Some(lhs)
    }

    /// After an operand: `Some(None)` where the expression ends (end, `)` or `,`), the
    /// operator and its length, or `None` for anything else.
    #[allow(clippy::option_option)]
    fn binary_operator(&mut self) -> Option<Option<(TokenId, usize)>> {
        self.skip_space();
        let Some(b) = self.peek() else {
            return Some(None);
        };
        let next = self.peek_at(1);
        let op = match b {
            b')' | b',' => return Some(None),
            b'+' => (T_ADD, 1),
            b'-' => (T_SUB, 1),
            b'*' => (T_MUL, 1),
            b'/' => (T_DIV, 1),
            b'%' => (T_MOD, 1),
            b'^' => (T_POW, 1),
            b'=' if next == Some(b'=') => (T_EQLC, 2),
            b'!' if next == Some(b'=') => (T_NEQ, 2),
            b'<' if next == Some(b'=') => (T_LTE, 2),
            b'<' => (T_LSS, 1),
            b'>' if next == Some(b'=') => (T_GTE, 2),
            b'>' => (T_GTR, 1),
            b'a'..=b'z' | b'A'..=b'Z' => {
                let start = self.at;
                let word = self.word();
                self.at = start;
                match Self::keyword(word).ok()? {
                    Some(op @ (T_LAND | T_LOR | T_LUNLESS | T_ATAN2)) => (op, word.len()),
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(Some(op))
    }

    /// A primary expression and its ranges or subqueries.
    fn operand(&mut self) -> Option<Expr> {
        self.skip_space();
        let mut expr = match self.peek()? {
            b'(' => {
                self.at += 1;
                let inner = self.expr(0)?;
                self.skip_space();
                self.eat(b')')?;
                check_ast(Expr::new_paren_expr(inner).ok()?).ok()?
            }
            b'0'..=b'9' => self.number()?,
            b'"' => {
                let quoted = self.quoted()?;
                check_ast(Expr::from(unquote_string(quoted).ok()?)).ok()?
            }
            b'{' => {
                let matchers = self.matchers()?;
                check_ast(Expr::new_vector_selector(None, matchers).ok()?).ok()?
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':' => self.named()?,
            _ => return None,
        };
        loop {
            self.skip_space();
            match self.peek() {
                Some(b'[') => expr = self.range(expr)?,
                // `offset` and `@` are left to the LR parser, as is any other word here but an
                // operator (which `binary_operator` reads).
                _ => return Some(expr),
            }
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// Digits with an optional fraction; exponents, hex, `Inf`/`NaN` and durations are left
    /// to the LR parser.
    fn number(&mut self) -> Option<Expr> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            let digits = self.at;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.at += 1;
            }
            if self.at == digits {
                return None;
            }
        }
        if self
            .peek()
            .is_some_and(|b| is_name_byte(b) || b == b'.' || b == b':')
        {
            return None;
        }
        let value = parse_str_radix(self.text.get(start..self.at)?).ok()?;
        check_ast(Expr::from(value)).ok()
    }

    /// A double-quoted string of printable ASCII without escapes, quotes included.
    fn quoted(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.eat(b'"')?;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => return None,
                0x20..=0x7e => self.at += 1,
                _ => return None,
            }
        }
        self.at += 1;
        self.text.get(start..self.at)
    }

    /// A word outside braces: an aggregation, a function call or a metric name.
    fn named(&mut self) -> Option<Expr> {
        let word = self.word();
        if let Some(token) = Self::keyword(word).ok()? {
            return if TokenType::new(token).is_aggregator() {
                self.aggregation(token)
            } else {
                None
            };
        }
        self.skip_space();
        if self.peek() == Some(b'(') {
            if word.contains(':') {
                return None;
            }
            let func = get_function(word)?;
            let args = self.arguments()?;
            return check_ast(Expr::new_call(func, args).ok()?).ok();
        }
        let matchers = if self.peek() == Some(b'{') {
            self.matchers()?
        } else {
            Matchers::empty()
        };
        check_ast(Expr::new_vector_selector(Some(word.to_owned()), matchers).ok()?).ok()
    }

    /// `(expr, ...)`, `()` included; a trailing comma is left to the LR parser.
    fn arguments(&mut self) -> Option<FunctionArgs> {
        self.eat(b'(')?;
        self.skip_space();
        if self.eat(b')').is_some() {
            return Some(FunctionArgs::empty_args());
        }
        let mut args = FunctionArgs::new_args(self.expr(0)?);
        loop {
            self.skip_space();
            match self.peek()? {
                b')' => {
                    self.at += 1;
                    return Some(args);
                }
                b',' => {
                    self.at += 1;
                    args = args.append_args(self.expr(0)?);
                }
                _ => return None,
            }
        }
    }

    /// `op [by|without (labels)] (args) [by|without (labels)]`, the modifier on one side.
    fn aggregation(&mut self, op: TokenId) -> Option<Expr> {
        self.skip_space();
        let mut modifier = self.grouping()?;
        self.skip_space();
        let args = self.arguments()?;
        if modifier.is_none() {
            let before = self.at;
            self.skip_space();
            modifier = self.grouping()?;
            if modifier.is_none() {
                self.at = before;
            }
        }
        check_ast(Expr::new_aggregate_expr(op, modifier, args).ok()?).ok()
    }

    /// `by (a, b)` or `without (a, b)` when the next word is one; `Some(None)` when it is not
    /// a word at all.
    #[allow(clippy::option_option)]
    fn grouping(&mut self) -> Option<Option<LabelModifier>> {
        if !self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            return Some(None);
        }
        let start = self.at;
        let word = self.word();
        let include = match Self::keyword(word).ok()? {
            Some(T_BY) => true,
            Some(T_WITHOUT) => false,
            // An operator after the arguments (`sum(x) and y`): not a grouping.
            Some(T_LAND | T_LOR | T_LUNLESS | T_ATAN2) => {
                self.at = start;
                return Some(None);
            }
            _ => return None,
        };
        self.skip_space();
        self.eat(b'(')?;
        let mut labels: Vec<&str> = Vec::new();
        loop {
            self.skip_space();
            match self.peek()? {
                b')' => {
                    self.at += 1;
                    break;
                }
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    let label = self.word();
                    if label.contains(':') || Self::keyword(label).ok()?.is_some() {
                        return None;
                    }
                    labels.push(label);
                    self.skip_space();
                    match self.peek()? {
                        b',' => self.at += 1,
                        b')' => {}
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
        let labels = Labels::new(labels);
        Some(Some(if include {
            LabelModifier::Include(labels)
        } else {
            LabelModifier::Exclude(labels)
        }))
    }

    /// `{name op "value", ...}`, a trailing comma allowed; `or`, quoted names and other
    /// quotes are left to the LR parser.
    fn matchers(&mut self) -> Option<Matchers> {
        self.eat(b'{')?;
        let mut matchers = Matchers::empty();
        loop {
            self.skip_space();
            if self.eat(b'}').is_some() {
                return Some(matchers);
            }
            if !self.peek().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') {
                return None;
            }
            let start = self.at;
            while self.peek().is_some_and(is_name_byte) {
                self.at += 1;
            }
            let name = self.text.get(start..self.at)?;
            if name.eq_ignore_ascii_case("or") {
                return None;
            }
            self.skip_space();
            let op = match (self.peek()?, self.peek_at(1)) {
                (b'=', Some(b'~')) => (T_EQL_REGEX, 2),
                (b'=', _) => (T_EQL, 1),
                (b'!', Some(b'=')) => (T_NEQ, 2),
                (b'!', Some(b'~')) => (T_NEQ_REGEX, 2),
                _ => return None,
            };
            self.at += op.1;
            self.skip_space();
            let value = unquote_string(self.quoted()?).ok()?;
            matchers = matchers.append(Matcher::new_matcher(op.0, name.to_owned(), value).ok()?);
            self.skip_space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {}
                _ => return None,
            }
        }
    }

    /// `[range]` or `[range:step]` / `[range:]` after `expr`.
    fn range(&mut self, expr: Expr) -> Option<Expr> {
        self.eat(b'[')?;
        self.skip_space();
        let range = self.duration()?;
        self.skip_space();
        match self.peek()? {
            b']' => {
                self.at += 1;
                check_ast(Expr::new_matrix_selector(expr, range).ok()?).ok()
            }
            b':' => {
                self.at += 1;
                self.skip_space();
                let step = if self.peek()? == b']' {
                    None
                } else {
                    Some(self.duration()?)
                };
                self.skip_space();
                self.eat(b']')?;
                check_ast(Expr::new_subquery_expr(expr, range, step).ok()?).ok()
            }
            _ => None,
        }
    }

    /// A duration as the lexer reads one inside brackets (`accept_remaining_duration`):
    /// digits and a unit of `smhdwy`, an optional `s` after it, then more digits and units
    /// of `smhdw`, up to a byte that cannot continue a name. Plain numbers are left to the LR
    /// parser.
    fn duration(&mut self) -> Option<std::time::Duration> {
        let start = self.at;
        let mut units = "smhdwy".as_bytes();
        loop {
            let digits = self.at;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.at += 1;
            }
            if self.at == digits || !units.contains(&self.peek()?) {
                return None;
            }
            self.at += 1;
            if self.peek() == Some(b's') {
                self.at += 1;
            }
            units = "smhdw".as_bytes();
            match self.peek() {
                Some(b) if b.is_ascii_digit() => continue,
                Some(b) if is_name_byte(b) => return None,
                _ => break,
            }
        }
        parse_duration(self.text.get(start..self.at)?).ok()
    }
}
