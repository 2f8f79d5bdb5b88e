//! LogQL label enforcement for Loki reads, with the PromQL rules: every stream selector of a
//! query (log queries, metric queries, both sides of binary operations, `label_replace`
//! arguments) gains the policy's matchers (AND, so never wider); a selector whose own matcher
//! provably excludes the policy is refused (403); text that does not parse is refused (400);
//! and the rewritten text is parsed again and every selector checked to carry the policy.
//!
//! The rewrite is by span: the policy's matchers are inserted before each selector's closing
//! brace, and every other byte of the query stays as the client wrote it, so pipelines, line
//! filters and templates reach Loki unchanged.
//!
//! Stages after the selector (`label_format`, `drop`, `keep`, parsers) and `label_replace`
//! may rename, rewrite or drop the policy's labels. That cannot widen access: Loki selects
//! streams by the selector first and every later stage only transforms lines and labels of
//! streams already selected, so every sample and line of the answer comes from a stream within
//! the policy. Such queries are allowed; what the answer's labels then say is the client's own
//! doing. (Hiding labels from answers is a separate step.)
//!
//! A policy that is an OR of selectors is applied as one selector in the same cases as for
//! PromQL (see [`crate::promql`]); other ORs are refused with advice to narrow the request.

mod enforce;
mod lex;
mod params;
mod parse;

pub use enforce::{LogqlEnforcer, check_within};
pub use params::{LogqlParams, check_params_within, rewrite_params};

/// Deeper nesting than this is refused: parsing is recursive and runs inside Envoy's VM.
pub const MAX_NESTING: usize = 128;
/// Longer queries are refused before lexing.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogqlError {
    #[error("{param}: cannot parse LogQL: {message}")]
    Unparsable {
        param: &'static str,
        message: String,
    },
    #[error("{param}: must be a stream selector such as {{app=\"x\"}}")]
    NotASelector { param: &'static str },
    #[error("{param}: given more than once")]
    Repeated { param: &'static str },
    #[error("{param}: {message}")]
    UnsupportedRegex {
        param: &'static str,
        message: String,
    },
    #[error(
        "{param}: the string escape {escape} encodes a value at or above 0x80, which Loki (Go) reads as a raw byte and Tollgate as a character; write the character itself, or \\u00XX"
    )]
    AmbiguousEscape { param: &'static str, escape: String },
    #[error(
        "selector {selector} can never match the label policy {policy}: its matcher on \"{label}\" excludes every value the policy allows"
    )]
    Conflict {
        selector: String,
        label: String,
        policy: String,
    },
    #[error(
        "selector {selector} can never match any stream (its matchers contradict each other); an empty selector is refused"
    )]
    SelectsNothing { selector: String },
    #[error(
        "the label policy {policy} is an OR of selectors that differ in more than one label, which one LogQL stream selector cannot express; narrow the request to one of them with x-tollgate-labels"
    )]
    PolicyNotExpressible { policy: String },
    #[error(
        "selector {selector} in the request body is not within the label policy {policy}: add the policy's matchers to every stream selector of the query, or send it as a URL parameter so that Tollgate adds them"
    )]
    BodyOutsidePolicy { selector: String, policy: String },
    #[error("the rewritten query did not verify; the request is refused")]
    VerificationFailed,
    #[error(
        "{param}: with the label policy's matchers added the query is longer than {limit} bytes, the longest Tollgate reads; shorten it",
        limit = MAX_QUERY_BYTES
    )]
    RewrittenTooLong { param: &'static str },
}

impl LogqlError {
    /// 400 for a request Loki would not accept, 403 for one the policy forbids, 500 when our own
    /// rewrite failed its check.
    pub fn status(&self) -> u16 {
        match self {
            LogqlError::Unparsable { .. }
            | LogqlError::NotASelector { .. }
            | LogqlError::Repeated { .. }
            | LogqlError::UnsupportedRegex { .. }
            | LogqlError::AmbiguousEscape { .. }
            | LogqlError::RewrittenTooLong { .. } => 400,
            LogqlError::Conflict { .. }
            | LogqlError::SelectsNothing { .. }
            | LogqlError::PolicyNotExpressible { .. }
            | LogqlError::BodyOutsidePolicy { .. } => 403,
            LogqlError::VerificationFailed => 500,
        }
    }
}

#[cfg(test)]
mod tests;
