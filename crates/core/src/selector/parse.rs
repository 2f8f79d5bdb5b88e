//! The policy text parser: `{name op "value", ...} or {...}`, typed errors with byte positions.

use super::{LabelName, MatchOp, Matcher, Selector, SelectorError};

/// Recursive-descent parser over the policy text; `pos` is a byte offset, always on a char
/// boundary.
pub(super) struct Parser<'a> {
    pub(super) src: &'a str,
    pub(super) pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += c.len_utf8();
        }
        found
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn expected(&self, expected: &'static str) -> SelectorError {
        SelectorError::Syntax {
            position: self.pos,
            expected,
        }
    }

    pub(super) fn policy(&mut self) -> Result<Vec<Selector>, SelectorError> {
        let mut selectors = Vec::new();
        self.skip_ws();
        if self.peek().is_none() {
            return Ok(selectors);
        }
        selectors.push(self.selector()?);
        loop {
            self.skip_ws();
            if self.peek().is_none() {
                return Ok(selectors);
            }
            if !self.rest().starts_with("or") {
                return Err(self.expected("`or` or end of input"));
            }
            self.pos += "or".len();
            self.skip_ws();
            selectors.push(self.selector()?);
        }
    }

    fn selector(&mut self) -> Result<Selector, SelectorError> {
        let start = self.pos;
        if !self.eat('{') {
            return Err(self.expected("`{` starting a selector"));
        }
        self.skip_ws();
        if self.peek() == Some('}') {
            return Err(SelectorError::EmptySelector { position: start });
        }
        let mut matchers = vec![self.matcher("label name")?];
        loop {
            self.skip_ws();
            if self.eat('}') {
                break;
            }
            if !self.eat(',') {
                return Err(self.expected("`,` or `}`"));
            }
            self.skip_ws();
            if self.eat('}') {
                break;
            }
            matchers.push(self.matcher("label name or `}`")?);
        }
        Ok(Selector::new(matchers))
    }

    fn matcher(&mut self, expected_name: &'static str) -> Result<Matcher, SelectorError> {
        let start = self.pos;
        // Take any word characters so `1a` or `é` get a precise "invalid label name" error.
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.bump();
        }
        let name = self.src.get(start..self.pos).unwrap_or("");
        if name.is_empty() {
            return Err(self.expected(expected_name));
        }
        let name = LabelName::new(name)?;
        self.skip_ws();
        let op = if self.eat('=') {
            if self.eat('~') {
                MatchOp::Re
            } else {
                MatchOp::Eq
            }
        } else if self.rest().starts_with("!=") {
            self.pos += 2;
            MatchOp::Ne
        } else if self.rest().starts_with("!~") {
            self.pos += 2;
            MatchOp::Nre
        } else {
            return Err(self.expected("matcher operator (`=`, `!=`, `=~` or `!~`)"));
        };
        self.skip_ws();
        let value = self.string()?;
        Matcher::with_name(name, op, &value)
    }

    /// `"..."` or `'...'` with escapes `\\`, `\"`, `\'` only; or a PromQL raw `` `...` ``.
    fn string(&mut self) -> Result<String, SelectorError> {
        let start = self.pos;
        let quote = match self.peek() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => return Err(self.expected("quoted label value")),
        };
        self.bump();
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => return Err(SelectorError::UnterminatedString { position: start }),
                Some(c) if c == quote => return Ok(out),
                Some('\\') if quote != '`' => match self.bump() {
                    Some(e @ ('\\' | '"' | '\'')) => out.push(e),
                    Some(escape) => {
                        return Err(SelectorError::InvalidEscape {
                            position: at,
                            escape,
                        });
                    }
                    None => return Err(SelectorError::UnterminatedString { position: start }),
                },
                Some(c) => out.push(c),
            }
        }
    }
}
