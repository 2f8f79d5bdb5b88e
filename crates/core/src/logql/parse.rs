//! A recursive-descent parser for LogQL, after Loki's documented grammar (log queries, metric
//! queries, binary operations). It keeps no tree: enforcement needs only where each stream
//! selector is and what its matchers say, so it returns those, and everything else is checked
//! for shape and left as written.
//!
//! Strictness matters in one direction only: whatever Loki reads as a selector must be a
//! selector here. A `{` is accepted only where a selector may start, so text this parser does
//! not understand is refused (400), never passed on unexamined.

use super::lex::{Tok, Token, decode, lex};
use super::{LogqlError, MAX_NESTING, MAX_QUERY_BYTES};
use crate::selector::MatchOp;

/// One stream selector: the byte offsets of its braces and its matchers, values decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StreamSelector {
    pub open: usize,
    pub close: usize,
    pub matchers: Vec<QueryMatcher>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct QueryMatcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

/// What a parameter must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// A log or metric query (`query`).
    Query,
    /// A bare stream selector (`match[]`).
    Selector,
}

const RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "rate_counter",
    "count_over_time",
    "bytes_rate",
    "bytes_over_time",
    "absent_over_time",
    "sum_over_time",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
    "first_over_time",
    "last_over_time",
];

const VECTOR_AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "stdvar",
    "count",
    "topk",
    "bottomk",
    "approx_topk",
    "sort",
    "sort_desc",
];

/// Every stream selector of `text`, in order.
pub(super) fn parse(
    param: &'static str,
    text: &str,
    shape: Shape,
) -> Result<Vec<StreamSelector>, LogqlError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(LogqlError::Unparsable {
            param,
            message: format!("longer than {MAX_QUERY_BYTES} bytes"),
        });
    }
    let tokens = lex(param, text)?;
    let mut parser = Parser {
        param,
        text,
        tokens: &tokens,
        pos: 0,
        depth: 0,
        selectors: Vec::new(),
    };
    match shape {
        Shape::Query => parser.expr(0)?,
        Shape::Selector => parser.selector()?,
    }
    if let Some(token) = parser.tokens.get(parser.pos) {
        return Err(parser.unexpected(token, "the end of the query"));
    }
    if parser.selectors.is_empty() && shape == Shape::Selector {
        return Err(LogqlError::NotASelector { param });
    }
    Ok(parser.selectors)
}

struct Parser<'a> {
    param: &'static str,
    text: &'a str,
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
    selectors: Vec<StreamSelector>,
}

fn is_comparison(kind: Tok) -> bool {
    matches!(
        kind,
        Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre | Tok::EqEq | Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le
    )
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Tok> {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> Option<Tok> {
        self.tokens.get(self.pos + n).map(|t| t.kind)
    }

    fn word(&self, n: usize) -> Option<&'a str> {
        let token = self.tokens.get(self.pos + n)?;
        (token.kind == Tok::Ident).then(|| self.spelled(token))
    }

    fn at_word(&self, word: &str) -> bool {
        self.word(0) == Some(word)
    }

    fn spelled(&self, token: &Token) -> &'a str {
        self.text.get(token.start..token.end).unwrap_or("")
    }

    fn bump(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).copied();
        self.pos += 1;
        token
    }

    fn unexpected(&self, token: &Token, wanted: &str) -> LogqlError {
        LogqlError::Unparsable {
            param: self.param,
            message: format!(
                "unexpected {:?} at byte {}, expected {wanted}",
                self.spelled(token),
                token.start
            ),
        }
    }

    fn expect(&mut self, kind: Tok, wanted: &str) -> Result<Token, LogqlError> {
        match self.tokens.get(self.pos) {
            Some(token) if token.kind == kind => {
                self.pos += 1;
                Ok(*token)
            }
            Some(token) => Err(self.unexpected(token, wanted)),
            None => Err(LogqlError::Unparsable {
                param: self.param,
                message: format!("unexpected end of query, expected {wanted}"),
            }),
        }
    }

    fn expect_word(&mut self, wanted: &str) -> Result<&'a str, LogqlError> {
        let token = self.expect(Tok::Ident, wanted)?;
        Ok(self.spelled(&token))
    }

    /// Bounds recursion: parsing runs inside Envoy's wasm VM too.
    fn enter(&mut self) -> Result<(), LogqlError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(LogqlError::Unparsable {
                param: self.param,
                message: format!("nested deeper than {MAX_NESTING} levels"),
            });
        }
        Ok(())
    }

    /// Binary operations by precedence climbing (`^` is right-associative).
    fn expr(&mut self, min_precedence: u8) -> Result<(), LogqlError> {
        self.enter()?;
        self.unary()?;
        while let Some(precedence) = self.binary_precedence() {
            if precedence < min_precedence {
                break;
            }
            self.pos += 1;
            self.binary_modifiers()?;
            let next = if precedence == 6 {
                precedence
            } else {
                precedence + 1
            };
            self.expr(next)?;
        }
        self.depth -= 1;
        Ok(())
    }

    fn binary_precedence(&self) -> Option<u8> {
        match self.peek()? {
            Tok::Ident => match self.word(0)? {
                "or" => Some(1),
                "and" | "unless" => Some(2),
                _ => None,
            },
            Tok::EqEq | Tok::Neq | Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le => Some(3),
            Tok::Add | Tok::Sub => Some(4),
            Tok::Mul | Tok::Div | Tok::Mod => Some(5),
            Tok::Pow => Some(6),
            _ => None,
        }
    }

    /// `bool`, `on(...)`/`ignoring(...)`, `group_left(...)`/`group_right(...)`.
    fn binary_modifiers(&mut self) -> Result<(), LogqlError> {
        if self.at_word("bool") {
            self.pos += 1;
        }
        if self.at_word("on") || self.at_word("ignoring") {
            self.pos += 1;
            self.label_list()?;
            if self.at_word("group_left") || self.at_word("group_right") {
                self.pos += 1;
                if self.peek() == Some(Tok::LParen) {
                    self.label_list()?;
                }
            }
        }
        Ok(())
    }

    /// `(a, b, ...)`, possibly empty.
    fn label_list(&mut self) -> Result<(), LogqlError> {
        self.expect(Tok::LParen, "'('")?;
        if self.peek() == Some(Tok::RParen) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.expect(Tok::Ident, "a label name")?;
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                _ => break,
            }
        }
        self.expect(Tok::RParen, "')'")?;
        Ok(())
    }

    fn unary(&mut self) -> Result<(), LogqlError> {
        if matches!(self.peek(), Some(Tok::Add | Tok::Sub)) {
            self.pos += 1;
            self.enter()?;
            self.unary()?;
            self.depth -= 1;
            return Ok(());
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<(), LogqlError> {
        let Some(token) = self.tokens.get(self.pos).copied() else {
            return Err(LogqlError::Unparsable {
                param: self.param,
                message: "unexpected end of query, expected an expression".into(),
            });
        };
        match token.kind {
            Tok::LParen => {
                self.pos += 1;
                self.expr(0)?;
                self.expect(Tok::RParen, "')'")?;
                Ok(())
            }
            Tok::Number => {
                self.pos += 1;
                Ok(())
            }
            Tok::LBrace => self.log_query(),
            Tok::Ident => {
                let name = self.spelled(&token);
                self.pos += 1;
                if RANGE_FUNCTIONS.contains(&name) {
                    self.range_aggregation()
                } else if VECTOR_AGGREGATIONS.contains(&name) {
                    self.vector_aggregation(name)
                } else if name == "label_replace" {
                    self.label_replace()
                } else if name == "vector" {
                    self.expect(Tok::LParen, "'('")?;
                    self.number()?;
                    self.expect(Tok::RParen, "')'")?;
                    Ok(())
                } else {
                    Err(self.unexpected(&token, "a function, a selector or a number"))
                }
            }
            _ => Err(self.unexpected(&token, "an expression")),
        }
    }

    fn number(&mut self) -> Result<(), LogqlError> {
        if matches!(self.peek(), Some(Tok::Add | Tok::Sub)) {
            self.pos += 1;
        }
        self.expect(Tok::Number, "a number")?;
        Ok(())
    }

    /// `{...}` followed by a pipeline.
    fn log_query(&mut self) -> Result<(), LogqlError> {
        self.selector()?;
        self.pipeline()
    }

    fn selector(&mut self) -> Result<(), LogqlError> {
        let open = self.expect(Tok::LBrace, "'{'")?.start;
        let mut matchers = Vec::new();
        if self.peek() != Some(Tok::RBrace) {
            loop {
                let name = self.expect_word("a label name")?.to_owned();
                let op = match self.bump() {
                    Some(Token { kind: Tok::Eq, .. }) => MatchOp::Eq,
                    Some(Token { kind: Tok::Neq, .. }) => MatchOp::Ne,
                    Some(Token { kind: Tok::Re, .. }) => MatchOp::Re,
                    Some(Token { kind: Tok::Nre, .. }) => MatchOp::Nre,
                    Some(token) => return Err(self.unexpected(&token, "=, !=, =~ or !~")),
                    None => return Err(self.end("a matcher operator")),
                };
                let value = self.expect(Tok::Str, "a quoted label value")?;
                let value = decode(self.param, self.spelled(&value))?;
                matchers.push(QueryMatcher { name, op, value });
                match self.peek() {
                    Some(Tok::Comma) => self.pos += 1,
                    _ => break,
                }
            }
        }
        let close = self.expect(Tok::RBrace, "',' or '}'")?.start;
        self.selectors.push(StreamSelector {
            open,
            close,
            matchers,
        });
        Ok(())
    }

    fn end(&self, wanted: &str) -> LogqlError {
        LogqlError::Unparsable {
            param: self.param,
            message: format!("unexpected end of query, expected {wanted}"),
        }
    }

    /// Line filters and `| stage`s, as many as follow.
    fn pipeline(&mut self) -> Result<(), LogqlError> {
        loop {
            match self.peek() {
                Some(
                    Tok::PipeEq
                    | Tok::Neq
                    | Tok::PipeRe
                    | Tok::Nre
                    | Tok::PipePattern
                    | Tok::NotPattern,
                ) => {
                    self.pos += 1;
                    self.filter_value()?;
                    // `|= "a" or "b"`
                    while self.at_word("or")
                        && (self.peek_at(1) == Some(Tok::Str)
                            || (self.word(1) == Some("ip") && self.peek_at(2) == Some(Tok::LParen)))
                    {
                        self.pos += 1;
                        self.filter_value()?;
                    }
                }
                Some(Tok::Pipe) => {
                    self.pos += 1;
                    self.stage()?;
                }
                _ => return Ok(()),
            }
        }
    }

    fn filter_value(&mut self) -> Result<(), LogqlError> {
        if self.at_word("ip") {
            self.pos += 1;
            self.expect(Tok::LParen, "'('")?;
            self.string()?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(());
        }
        self.string()
    }

    /// A string, checked to unquote as Go would.
    fn string(&mut self) -> Result<(), LogqlError> {
        let token = self.expect(Tok::Str, "a quoted string")?;
        decode(self.param, self.spelled(&token))?;
        Ok(())
    }

    fn stage(&mut self) -> Result<(), LogqlError> {
        if self.peek() == Some(Tok::LParen)
            || (self.peek() == Some(Tok::Ident) && self.peek_at(1).is_some_and(is_comparison))
        {
            return self.label_filters();
        }
        let token = self.expect(Tok::Ident, "a pipeline stage")?;
        match self.spelled(&token) {
            "json" => self.extraction_params(),
            "logfmt" => {
                while self.peek() == Some(Tok::Flag) {
                    self.pos += 1;
                }
                self.extraction_params()
            }
            "regexp" | "pattern" | "line_format" => self.string(),
            "unpack" | "decolorize" => Ok(()),
            "label_format" => self.comma_separated(|p| {
                p.expect(Tok::Ident, "a label name")?;
                p.expect(Tok::Eq, "'='")?;
                if p.peek() == Some(Tok::Ident) {
                    p.pos += 1;
                    Ok(())
                } else {
                    p.string()
                }
            }),
            "drop" | "keep" => self.comma_separated(|p| {
                p.expect(Tok::Ident, "a label name")?;
                if matches!(p.peek(), Some(Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre)) {
                    p.pos += 1;
                    p.string()?;
                }
                Ok(())
            }),
            "unwrap" => {
                let name = self.expect_word("a label name")?;
                if matches!(name, "bytes" | "duration" | "duration_seconds")
                    && self.peek() == Some(Tok::LParen)
                {
                    self.pos += 1;
                    self.expect(Tok::Ident, "a label name")?;
                    self.expect(Tok::RParen, "')'")?;
                }
                Ok(())
            }
            _ => Err(self.unexpected(&token, "a pipeline stage")),
        }
    }

    fn comma_separated(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), LogqlError>,
    ) -> Result<(), LogqlError> {
        loop {
            item(self)?;
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                _ => return Ok(()),
            }
        }
    }

    /// `json` / `logfmt` parameters: `a`, `b="c.d"`, comma-separated, optional.
    fn extraction_params(&mut self) -> Result<(), LogqlError> {
        if self.peek() != Some(Tok::Ident) {
            return Ok(());
        }
        self.comma_separated(|p| {
            p.expect(Tok::Ident, "a label name")?;
            if p.peek() == Some(Tok::Eq) {
                p.pos += 1;
                p.string()?;
            }
            Ok(())
        })
    }

    /// Label filters joined by `and`, `or`, `,` or nothing (`a="b" c="d"` is an `and`).
    fn label_filters(&mut self) -> Result<(), LogqlError> {
        self.enter()?;
        self.label_filter()?;
        loop {
            let joined = (self.at_word("and") || self.at_word("or"))
                && (self.peek_at(1) == Some(Tok::LParen)
                    || (self.peek_at(1) == Some(Tok::Ident)
                        && self.peek_at(2).is_some_and(is_comparison)));
            if joined || self.peek() == Some(Tok::Comma) {
                self.pos += 1;
                self.label_filter()?;
            } else if self.peek() == Some(Tok::Ident) && self.peek_at(1).is_some_and(is_comparison)
            {
                self.label_filter()?;
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn label_filter(&mut self) -> Result<(), LogqlError> {
        if self.peek() == Some(Tok::LParen) {
            self.pos += 1;
            self.label_filters()?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(());
        }
        self.expect(Tok::Ident, "a label name")?;
        match self.bump() {
            Some(token) if is_comparison(token.kind) => {}
            Some(token) => return Err(self.unexpected(&token, "a comparison")),
            None => return Err(self.end("a comparison")),
        }
        match self.peek() {
            Some(Tok::Str) => self.string(),
            Some(Tok::Ident) if self.at_word("ip") => self.filter_value(),
            _ => self.number(),
        }
    }

    /// `rate(...)`, `quantile_over_time(0.99, ...)`: a log range, then an optional grouping.
    fn range_aggregation(&mut self) -> Result<(), LogqlError> {
        self.expect(Tok::LParen, "'('")?;
        if matches!(self.peek(), Some(Tok::Number | Tok::Sub | Tok::Add)) {
            self.number()?;
            self.expect(Tok::Comma, "','")?;
        }
        self.log_range()?;
        self.expect(Tok::RParen, "')'")?;
        self.grouping()
    }

    /// `{...} | ... [5m] offset 1h | ...`, or the log query in parentheses before the range.
    fn log_range(&mut self) -> Result<(), LogqlError> {
        if self.peek() == Some(Tok::LParen) && self.peek_at(1) == Some(Tok::LBrace) {
            self.pos += 1;
            self.log_query()?;
            self.expect(Tok::RParen, "')'")?;
        } else {
            self.log_query()?;
        }
        self.expect(Tok::LBracket, "a range such as [5m]")?;
        self.expect(Tok::Number, "a duration")?;
        self.expect(Tok::RBracket, "']'")?;
        if self.at_word("offset") {
            self.pos += 1;
            if self.peek() == Some(Tok::Sub) {
                self.pos += 1;
            }
            self.expect(Tok::Number, "a duration")?;
        }
        self.pipeline()
    }

    fn grouping(&mut self) -> Result<(), LogqlError> {
        if self.at_word("by") || self.at_word("without") {
            self.pos += 1;
            self.label_list()?;
        }
        Ok(())
    }

    /// `sum by (a) (...)`, `sum(...) by (a)`, `topk(5, ...)`.
    fn vector_aggregation(&mut self, name: &str) -> Result<(), LogqlError> {
        let grouped_before = self.at_word("by") || self.at_word("without");
        self.grouping()?;
        self.expect(Tok::LParen, "'('")?;
        if matches!(name, "topk" | "bottomk" | "approx_topk") {
            self.number()?;
            self.expect(Tok::Comma, "','")?;
        }
        self.expr(0)?;
        self.expect(Tok::RParen, "')'")?;
        if !grouped_before {
            self.grouping()?;
        }
        Ok(())
    }

    /// `label_replace(v, "dst", "replacement", "src", "regex")`.
    fn label_replace(&mut self) -> Result<(), LogqlError> {
        self.expect(Tok::LParen, "'('")?;
        self.expr(0)?;
        for _ in 0..4 {
            self.expect(Tok::Comma, "','")?;
            self.string()?;
        }
        self.expect(Tok::RParen, "')'")?;
        Ok(())
    }
}
