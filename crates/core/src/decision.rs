//! The decision: given a grant (what a token may do) and a view of the request, allow with the
//! headers to set and remove, or deny with a status, a machine reason and a message.
//!
//! Pure and shared by the filter and the ext_authz server. PromQL and LogQL label enforcement is
//! the step after an allow: [`rewrite_query_params`] for the URL, [`rewrite_form_body`] for a
//! body that can be rewritten, [`check_form_body`] for one that cannot.

use crate::form::{self, FormPair};
use crate::headers;
use crate::logql::{self, LogqlEnforcer, LogqlError, LogqlParams};
use crate::promql::{self, ParamRewrite, PromParams, QueryError};
use crate::route::{LabelEnforcement, RouteTable, check_path};
use crate::scope::{Scope, ScopeSet};
use crate::selector::{Policy, PolicyLimits};
use crate::token::{Token, TokenError};

/// What one live token may do: the snapshot's value, keyed by the token's hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub token_id: i64,
    pub account_id: i64,
    /// The account's name, unique in its tenant; sent upstream as `x-tollgate-account`.
    /// Shared by every token of the account (a million grants, a few thousand accounts).
    pub account: std::sync::Arc<str>,
    pub tenant: std::sync::Arc<str>,
    /// The role's name (built in or the tenant's own); `scopes` are what it held when the grant
    /// was built.
    pub role: std::sync::Arc<str>,
    pub scopes: ScopeSet,
    pub policy: Policy,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<u64>,
    /// Admin API only: may act on every tenant (the bootstrap admin).
    pub all_tenants: bool,
    /// Tenants the account may read besides its own, named in `X-Scope-OrgID`.
    pub read_tenants: crate::tenants::ReadTenants,
    /// Answers leave out the labels its policy fixes (filter mode only; see [`crate::answer`]).
    pub hide_policy_labels: bool,
}

impl Grant {
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// The parts of a request a decision reads. Borrowed from the caller's request representation.
#[derive(Debug, Clone, Default)]
pub struct RequestView<'a> {
    pub method: &'a str,
    /// The path without its query string.
    pub path: &'a str,
    pub query: &'a str,
    /// Every `Authorization` value sent (more than one is ambiguous, and refused).
    pub authorizations: Vec<&'a str>,
    /// `Content-Type` and `Content-Encoding` (the last value of each): how a body this route
    /// confines must be read.
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    /// Values of `X-Forwarded-Tenant-Id` and `X-Scope-OrgID` sent by the client.
    pub tenant_ids: Vec<&'a str>,
    /// Values of client-sent `x-tollgate-labels` (normally zero or one).
    pub labels: Vec<&'a str>,
    /// Names of client-sent `x-tollgate-*` and `x-prom-label-policy` headers, and underscore
    /// spellings of any header Tollgate sets or reads, lower case: all removed before the
    /// request goes upstream.
    pub tollgate_headers: Vec<String>,
}

impl<'a> RequestView<'a> {
    /// `path` may carry a query string (Envoy's `:path`); it is split off.
    pub fn new(method: &'a str, path: &'a str) -> RequestView<'a> {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        RequestView {
            method,
            path,
            query,
            ..RequestView::default()
        }
    }

    /// Records a request header if it matters to the decision; any other header is ignored.
    pub fn observe_header(&mut self, name: &'a str, value: &'a str) {
        if headers::is_underscore_alias(name) {
            // Removed like a spoofed x-tollgate-* header (the bootstraps also reject them).
            self.tollgate_headers.push(name.to_ascii_lowercase());
            return;
        }
        if name.eq_ignore_ascii_case(headers::AUTHORIZATION) {
            self.authorizations.push(value);
            return;
        }
        if name.eq_ignore_ascii_case("content-type") {
            self.content_type = Some(value);
            return;
        }
        if name.eq_ignore_ascii_case("content-encoding") {
            self.content_encoding = Some(value);
            return;
        }
        if name.eq_ignore_ascii_case(headers::FORWARDED_TENANT_ID)
            || name.eq_ignore_ascii_case(headers::SCOPE_ORG_ID)
        {
            self.tenant_ids.push(value);
        }
        if name.eq_ignore_ascii_case(headers::LABEL_POLICY) {
            // Only Tollgate speaks for the policy: a client's copy could widen an LBAC upstream.
            self.tollgate_headers.push(headers::LABEL_POLICY.to_owned());
            return;
        }
        if name.len() >= headers::TOLLGATE_PREFIX.len()
            && name.as_bytes()[..headers::TOLLGATE_PREFIX.len()]
                .eq_ignore_ascii_case(headers::TOLLGATE_PREFIX.as_bytes())
        {
            if name.eq_ignore_ascii_case(headers::LABELS) {
                self.labels.push(value);
            }
            self.tollgate_headers.push(name.to_ascii_lowercase());
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allow(Allow),
    Deny(Deny),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Allow {
    /// The scope the matched route needed.
    pub scope: Scope,
    /// Headers to set upstream, overwriting any client value.
    pub set_headers: Vec<(&'static str, String)>,
    /// Headers to remove before the request goes upstream.
    pub remove_headers: Vec<String>,
    /// The selector the request is confined to: the client's narrowing (ANDed with the policy
    /// selector that contains it) if it sent one, else the account's policy. Query enforcement
    /// rewrites against this.
    pub effective_policy: Policy,
    /// How the matched route confines the request to `effective_policy`.
    pub labels: LabelEnforcement,
    /// The answer's shape and the labels to remove, when the account hides its policy labels.
    pub answer: Option<crate::answer::HiddenAnswer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    pub reason: DenyReason,
    /// For the client. Never contains a token.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    MissingToken,
    MalformedToken,
    /// Unknown, revoked, or belonging to a disabled or deleted account: indistinguishable by
    /// design, since only live hashes are kept.
    UnknownToken,
    ExpiredToken,
    InvalidPath,
    RouteNotAllowed,
    MissingScope,
    TenantMismatch,
    InvalidLabels,
    LabelPolicyViolation,
    /// The route has no way to confine a label-restricted account.
    LabelsNotEnforceable,
    /// A PromQL parameter or the query string does not parse.
    InvalidQuery,
    /// A PromQL query contradicts the policy, or a body query lies outside it.
    QueryNotAllowed,
    /// A POST body must be seen to be checked, and it was not (or only partly).
    BodyUnavailable,
    /// Our own rewrite failed its verification: refused, never passed on.
    RewriteFailed,
    /// The authorization server cannot be reached and nothing cached may stand in for it.
    AuthorizerUnavailable,
    /// A body this route must confine is in a format it cannot read (a write's content type or
    /// encoding).
    UnsupportedMediaType,
    /// A write body that does not decode.
    InvalidBody,
    /// A write body over a configured limit.
    BodyTooLarge,
}

impl DenyReason {
    pub const ALL: [DenyReason; 19] = [
        DenyReason::MissingToken,
        DenyReason::MalformedToken,
        DenyReason::UnknownToken,
        DenyReason::ExpiredToken,
        DenyReason::InvalidPath,
        DenyReason::RouteNotAllowed,
        DenyReason::MissingScope,
        DenyReason::TenantMismatch,
        DenyReason::InvalidLabels,
        DenyReason::LabelPolicyViolation,
        DenyReason::LabelsNotEnforceable,
        DenyReason::InvalidQuery,
        DenyReason::QueryNotAllowed,
        DenyReason::BodyUnavailable,
        DenyReason::RewriteFailed,
        DenyReason::AuthorizerUnavailable,
        DenyReason::UnsupportedMediaType,
        DenyReason::InvalidBody,
        DenyReason::BodyTooLarge,
    ];

    /// The machine code in `{"reason": ...}` and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::MissingToken => "missing_token",
            DenyReason::MalformedToken => "malformed_token",
            DenyReason::UnknownToken => "unknown_token",
            DenyReason::ExpiredToken => "expired_token",
            DenyReason::InvalidPath => "invalid_path",
            DenyReason::RouteNotAllowed => "route_not_allowed",
            DenyReason::MissingScope => "missing_scope",
            DenyReason::TenantMismatch => "tenant_mismatch",
            DenyReason::InvalidLabels => "invalid_labels",
            DenyReason::LabelPolicyViolation => "label_policy_violation",
            DenyReason::LabelsNotEnforceable => "labels_not_enforceable",
            DenyReason::InvalidQuery => "invalid_query",
            DenyReason::QueryNotAllowed => "query_not_allowed",
            DenyReason::BodyUnavailable => "body_unavailable",
            DenyReason::RewriteFailed => "rewrite_failed",
            DenyReason::AuthorizerUnavailable => "authorizer_unavailable",
            DenyReason::UnsupportedMediaType => "unsupported_media_type",
            DenyReason::InvalidBody => "invalid_body",
            DenyReason::BodyTooLarge => "body_too_large",
        }
    }

    /// Denials of a PromQL request answer in the Prometheus API's error shape, so Grafana and
    /// other clients show the message.
    pub fn is_query_error(self) -> bool {
        matches!(
            self,
            DenyReason::InvalidQuery
                | DenyReason::QueryNotAllowed
                | DenyReason::BodyUnavailable
                | DenyReason::RewriteFailed
        )
    }
}

impl Deny {
    /// The message is redacted: it may echo client input, and must never carry a token.
    pub fn new(reason: DenyReason, message: impl Into<String>) -> Deny {
        let message = message.into();
        let message = match crate::token::redact(&message) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(redacted) => redacted,
        };
        Deny { reason, message }
    }

    pub fn unknown_token() -> Deny {
        Deny::new(
            DenyReason::UnknownToken,
            "token is unknown or has been revoked",
        )
    }

    /// The JSON body of a denial: `{"error": message, "reason": code}`, or for PromQL requests
    /// the Prometheus shape `{"status":"error","errorType":...,"error":...}` plus the reason.
    pub fn json_body(&self) -> String {
        let mut body = String::with_capacity(self.message.len() + 80);
        if self.reason.is_query_error() {
            let error_type = match self.status() {
                400 => "bad_data",
                500 => "internal",
                _ => "forbidden",
            };
            body.push_str("{\"status\":\"error\",\"errorType\":\"");
            body.push_str(error_type);
            body.push_str("\",");
        } else {
            body.push('{');
        }
        body.push_str("\"error\":");
        push_json_string(&mut body, &self.message);
        body.push_str(",\"reason\":\"");
        body.push_str(self.reason.as_str());
        body.push_str("\"}");
        body
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Reads the bearer token from the request's `Authorization` values, or says why there is none.
/// Two credentials are ambiguous: malformed, not a choice.
pub fn authenticate(authorizations: &[&str]) -> Result<Token, Deny> {
    let header = match authorizations {
        [] => {
            return Err(Deny::new(
                DenyReason::MissingToken,
                "missing bearer token in the Authorization header",
            ));
        }
        [one] => *one,
        _ => {
            return Err(Deny::new(
                DenyReason::MalformedToken,
                "more than one Authorization header: send exactly one bearer token",
            ));
        }
    };
    match Token::from_authorization(header) {
        None => Err(Deny::new(
            DenyReason::MissingToken,
            "the Authorization header is not a bearer credential",
        )),
        Some(Err(TokenError::Randomness)) | Some(Err(TokenError::BadPrefix)) => Err(Deny::new(
            DenyReason::MalformedToken,
            "bearer token is not a Tollgate token",
        )),
        Some(Err(err)) => Err(Deny::new(
            DenyReason::MalformedToken,
            format!("malformed bearer token: {err}"),
        )),
        Some(Ok(token)) => Ok(token),
    }
}

/// Decides a request for a known token. `now` is Unix seconds. A step of
/// [`crate::pipeline::authorize`], which every caller uses.
pub fn decide(grant: &Grant, request: &RequestView<'_>, routes: &RouteTable, now: u64) -> Decision {
    match check(grant, request, routes, now) {
        Ok(allow) => Decision::Allow(allow),
        Err(deny) => Decision::Deny(deny),
    }
}

fn check(
    grant: &Grant,
    request: &RequestView<'_>,
    routes: &RouteTable,
    now: u64,
) -> Result<Allow, Deny> {
    if grant.is_expired(now) {
        return Err(Deny::new(DenyReason::ExpiredToken, "token has expired"));
    }
    check_path(request.path).map_err(|err| {
        Deny::new(
            DenyReason::InvalidPath,
            format!("invalid request path: {err}"),
        )
    })?;
    let rule = routes.find(request.method, request.path).ok_or_else(|| {
        Deny::new(
            DenyReason::RouteNotAllowed,
            format!(
                "{} {} is not an allowed route",
                request.method, request.path
            ),
        )
    })?;
    if !grant.scopes.contains(rule.scope) {
        return Err(Deny::new(
            DenyReason::MissingScope,
            format!("role {} lacks scope {}", grant.role, rule.scope),
        ));
    }
    let org_id = crate::tenants::scope_org_id(grant, &request.tenant_ids, rule.scope)?;
    let effective_policy = effective_policy(&grant.policy, &request.labels)?;
    if let Some(route) = crate::write::WriteRoute::of(rule.labels)
        && !effective_policy.is_unrestricted()
    {
        route
            .format(request.content_type, request.content_encoding)
            .map_err(|message| Deny::new(DenyReason::UnsupportedMediaType, message))?;
    }
    if rule.labels == LabelEnforcement::Deny && !effective_policy.is_unrestricted() {
        return Err(Deny::new(
            DenyReason::LabelsNotEnforceable,
            format!(
                "{} {} cannot be confined to a label policy; label-restricted accounts may not use it",
                request.method, request.path
            ),
        ));
    }

    let answer = hidden_answer(grant, rule, request)?;
    let (set_headers, remove_headers) = identity_headers(
        grant,
        &effective_policy,
        request,
        org_id,
        rule.label_policy_header,
    );
    Ok(Allow {
        scope: rule.scope,
        set_headers,
        remove_headers,
        effective_policy,
        labels: rule.labels,
        answer,
    })
}

/// For an account that hides its policy labels: the shape of a read's answer, which the filter
/// rewrites. A read whose answer cannot be rewritten is refused; writes and answers without
/// series data need nothing.
fn hidden_answer(
    grant: &Grant,
    rule: &crate::route::RouteRule,
    request: &RequestView<'_>,
) -> Result<Option<crate::answer::HiddenAnswer>, Deny> {
    if !grant.hide_policy_labels
        || !rule.scope.is_telemetry_read()
        || rule.labels == LabelEnforcement::NoSeriesData
    {
        return Ok(None);
    }
    let hidden = crate::answer::HiddenLabels::of(&grant.policy);
    if hidden.is_empty() {
        return Ok(None);
    }
    let shape = crate::answer::Answer::of(request.path).ok_or_else(|| {
        Deny::new(
            DenyReason::LabelsNotEnforceable,
            format!(
                "the answer of {} {} cannot have the account's policy labels removed; accounts that hide them may not use it",
                request.method, request.path
            ),
        )
    })?;
    Ok(Some(crate::answer::HiddenAnswer { shape, hidden }))
}

/// A hiding account's query may not copy a hidden label's value into another label or the log
/// line (`label_replace`, `label_join`, `label_format`, `line_format`): it would survive the
/// answer's rewrite under another name.
fn check_hidden_copies(allow: &Allow, pairs: &[FormPair<'_>]) -> Result<(), Deny> {
    let Some(answer) = &allow.answer else {
        return Ok(());
    };
    if pairs
        .iter()
        .any(|pair| answer.hidden.may_be_copied_by(&pair.value))
    {
        return Err(Deny::new(
            DenyReason::QueryNotAllowed,
            "this account's answers hide labels of its policy, and the query may copy one of them elsewhere (label_replace, label_join, label_format, line_format)",
        ));
    }
    Ok(())
}

/// A denial for a hiding account names nothing of its policy: every hidden name and value in
/// the message becomes `<hidden>`.
pub fn conceal(grant: &Grant, deny: Deny) -> Deny {
    if !grant.hide_policy_labels {
        return deny;
    }
    let hidden = crate::answer::HiddenLabels::of(&grant.policy);
    Deny {
        message: hidden.scrub(&deny.message),
        ..deny
    }
}

/// The headers an allowed request carries upstream (identity, tenant, effective policy, and
/// on routes that ask for it the policy for Mimir's and Loki's LBAC), and those removed: the
/// credential and every client-sent copy of ours.
fn identity_headers(
    grant: &Grant,
    effective_policy: &Policy,
    request: &RequestView<'_>,
    org_id: String,
    label_policy_header: bool,
) -> (Vec<(&'static str, String)>, Vec<String>) {
    // Room for every header set below: one allocation.
    let mut set_headers = Vec::with_capacity(5);
    set_headers.push((headers::ACCOUNT, String::from(&*grant.account)));
    set_headers.push((headers::TENANT, String::from(&*grant.tenant)));
    if !effective_policy.is_unrestricted() {
        set_headers.push((headers::LABELS, effective_policy.text().to_owned()));
        if label_policy_header {
            let value = label_policy_value(&org_id, effective_policy);
            set_headers.push((headers::LABEL_POLICY, value));
        }
    }
    set_headers.insert(2, (headers::SCOPE_ORG_ID, org_id));
    let mut remove_headers = vec![headers::AUTHORIZATION.to_owned()];
    for name in &request.tollgate_headers {
        let overwritten = set_headers.iter().any(|(set, _)| set == name);
        if !overwritten && !remove_headers.contains(name) {
            remove_headers.push(name.clone());
        }
    }
    (set_headers, remove_headers)
}

/// The `X-Prom-Label-Policy` field: one list element per tenant of the request's
/// `X-Scope-OrgID` (`a|b` when a cross-tenant reader federates) and selector of the policy,
/// `<tenant>:<selector>` with the selector percent-encoded (so no `,` is left in it), joined
/// by `,`. Mimir and Loki AND the matchers of one element and OR the elements of a tenant; a
/// tenant without an element would be read unrestricted, so every tenant read gets them all.
/// One field line rather than several: RFC 9110 makes them equivalent, Mimir documents both,
/// and Envoy 1.40's ext_authz keeps only the last of several values a server sets for one name
/// (measured).
pub fn label_policy_value(org_id: &str, policy: &Policy) -> String {
    let mut value = String::new();
    for tenant in org_id.split('|') {
        for selector in policy.selectors() {
            if !value.is_empty() {
                value.push(',');
            }
            value.push_str(tenant);
            value.push(':');
            value.push_str(&form::encode(&selector.to_string()));
        }
    }
    value
}

/// The parameters a route's query language uses: PromQL or LogQL.
#[derive(Clone, Copy)]
enum QueryParams {
    Prom(PromParams),
    Logql(LogqlParams),
}

fn query_params(labels: LabelEnforcement) -> Option<QueryParams> {
    match labels {
        LabelEnforcement::LogqlQuery => Some(QueryParams::Logql(LogqlParams::Query)),
        LabelEnforcement::LogqlOptionalQuery => {
            Some(QueryParams::Logql(LogqlParams::OptionalQuery))
        }
        LabelEnforcement::LogqlSeries => Some(QueryParams::Logql(LogqlParams::Series)),
        other => prom_params(other).map(QueryParams::Prom),
    }
}

fn prom_params(labels: LabelEnforcement) -> Option<PromParams> {
    match labels {
        LabelEnforcement::PromqlQuery => Some(PromParams::Query),
        LabelEnforcement::PromqlMatch => Some(PromParams::Match),
        _ => None,
    }
}

fn query_deny(err: QueryError) -> Deny {
    status_deny(err.status(), err.to_string())
}

fn logql_deny(err: LogqlError) -> Deny {
    status_deny(err.status(), err.to_string())
}

fn status_deny(status: u16, message: String) -> Deny {
    let reason = match status {
        400 => DenyReason::InvalidQuery,
        500 => DenyReason::RewriteFailed,
        _ => DenyReason::QueryNotAllowed,
    };
    Deny::new(reason, message)
}

/// Rewrites the query parameters among `pairs` (a query string or a form body) in the route's
/// query language; `None` when the policy is unrestricted.
fn rewrite_pairs(
    policy: &Policy,
    params: QueryParams,
    pairs: &[FormPair<'_>],
) -> Result<Option<ParamRewrite>, Deny> {
    match params {
        QueryParams::Prom(params) => match policy.enforcer().map_err(query_deny)? {
            None => Ok(None),
            Some(enforcer) => promql::rewrite_params(enforcer, params, pairs)
                .map(Some)
                .map_err(query_deny),
        },
        QueryParams::Logql(params) => match LogqlEnforcer::new(policy).map_err(logql_deny)? {
            None => Ok(None),
            Some(enforcer) => logql::rewrite_params(&enforcer, params, pairs)
                .map(Some)
                .map_err(logql_deny),
        },
    }
}

/// The URL parameter changes that confine an allowed request to its policy: PromQL in `query`
/// or `match[]`, or LogQL in `query` or `match[]`, gains the policy's matchers. Empty when
/// there is nothing to enforce.
pub fn rewrite_query_params(allow: &Allow, query_string: &str) -> Result<ParamRewrite, Deny> {
    let Some(params) = query_params(allow.labels) else {
        return Ok(ParamRewrite::default());
    };
    if allow.effective_policy.is_unrestricted() {
        return Ok(ParamRewrite::default());
    }
    let pairs = form::parse(query_string)
        .map_err(|err| Deny::new(DenyReason::InvalidQuery, err.to_string()))?;
    check_hidden_copies(allow, &pairs)?;
    Ok(rewrite_pairs(&allow.effective_policy, params, &pairs)?.unwrap_or_default())
}

/// What the authorizer could see of a request body.
#[derive(Debug, Clone, Copy)]
pub struct BodyView<'a> {
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    /// The body bytes as received; empty for no body.
    pub bytes: &'a [u8],
    /// False when the request has a body that was not (entirely) forwarded for checking.
    pub complete: bool,
}

/// For a body that can be rewritten (the filter): the new form body with the policy's matchers
/// in every PromQL or LogQL parameter, or `None` when nothing needs to change.
pub fn rewrite_form_body(allow: &Allow, body: &BodyView<'_>) -> Result<Option<String>, Deny> {
    let Some(params) = query_params(allow.labels) else {
        return Ok(None);
    };
    if allow.effective_policy.is_unrestricted() {
        return Ok(None);
    }
    let Some(text) = form_text(body)? else {
        return Ok(None);
    };
    let pairs: Vec<FormPair<'_>> =
        form::parse(text).map_err(|err| Deny::new(DenyReason::InvalidQuery, err.to_string()))?;
    check_hidden_copies(allow, &pairs)?;
    // A missing parameter is added to the URL, not the body: only rewrite what the body carries.
    let keys: &[&str] = match params {
        QueryParams::Prom(PromParams::Query) => &["query"],
        QueryParams::Prom(PromParams::Match) => &["match[]"],
        QueryParams::Logql(params) => params.keys().0,
    };
    if !pairs.iter().any(|p| keys.contains(&p.key.as_str())) {
        return Ok(None);
    }
    let rewrite = rewrite_pairs(&allow.effective_policy, params, &pairs)?;
    Ok(rewrite.map(|rewrite| rewrite.apply(text)))
}

/// The body as form text: `None` for no body; an error for an incomplete, non-form or non-UTF-8
/// body, which Prometheus could read in a way we did not check.
fn form_text<'a>(body: &BodyView<'a>) -> Result<Option<&'a str>, Deny> {
    if !body.complete {
        return Err(Deny::new(
            DenyReason::BodyUnavailable,
            "the request body was not available to authorization in full (configure with_request_body with a max_request_bytes above the body size)",
        ));
    }
    if body.bytes.is_empty() {
        return Ok(None);
    }
    let form_type = body.content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form_type {
        return Err(Deny::new(
            DenyReason::InvalidQuery,
            "a request body to this API must be application/x-www-form-urlencoded",
        ));
    }
    std::str::from_utf8(body.bytes).map(Some).map_err(|_| {
        Deny::new(
            DenyReason::InvalidQuery,
            form::FormError::NotUtf8.to_string(),
        )
    })
}

/// For a body that cannot be rewritten (ext_authz): allow only when every PromQL or LogQL
/// selector it carries already lies within the policy. Prometheus and Loki read
/// `application/x-www-form-urlencoded` bodies (and multipart ones, which we refuse rather
/// than parse).
pub fn check_form_body(allow: &Allow, body: &BodyView<'_>) -> Result<(), Deny> {
    let Some(params) = query_params(allow.labels) else {
        return Ok(());
    };
    if allow.effective_policy.is_unrestricted() {
        return Ok(());
    }
    let Some(text) = form_text(body)? else {
        return Ok(());
    };
    let pairs: Vec<FormPair<'_>> =
        form::parse(text).map_err(|err| Deny::new(DenyReason::InvalidQuery, err.to_string()))?;
    check_hidden_copies(allow, &pairs)?;
    let policy = &allow.effective_policy;
    match params {
        QueryParams::Prom(params) => {
            promql::check_params_within(policy, params, &pairs).map_err(query_deny)
        }
        QueryParams::Logql(params) => {
            logql::check_params_within(policy, params, &pairs).map_err(logql_deny)
        }
    }
}

/// Longer `x-tollgate-labels` values are refused before they are read.
const MAX_LABELS_HEADER_BYTES: usize = 4096;

/// A client may narrow its scope with `x-tollgate-labels`, never widen it. The header is held
/// to the limits of a stored policy (selectors, matchers per selector; a label may repeat) and
/// to a length, checked before it is parsed: parsing compiles every regex, and a policy's size
/// sets the cost of each request it confines (a 55 KB header of 5,000 labels made forcing a
/// 100-series write take 3.6 s; 1,000 regexes took 13 s to compile).
fn effective_policy(policy: &Policy, sent: &[&str]) -> Result<Policy, Deny> {
    let requested = match sent {
        [] => return Ok(policy.clone()),
        [one] => *one,
        _ => {
            return Err(Deny::new(
                DenyReason::InvalidLabels,
                "x-tollgate-labels was sent more than once",
            ));
        }
    };
    let invalid = |message: String| Deny::new(DenyReason::InvalidLabels, message);
    if requested.len() > MAX_LABELS_HEADER_BYTES {
        return Err(invalid(format!(
            "x-tollgate-labels is longer than {MAX_LABELS_HEADER_BYTES} bytes"
        )));
    }
    let limits = PolicyLimits {
        unique_label_names: false,
        ..PolicyLimits::default()
    };
    // Every matcher has an `=` in its operator but `!~`: an upper bound on the matchers before
    // any regex is compiled.
    let most = limits.max_selectors * limits.max_matchers_per_selector;
    let matchers =
        requested.bytes().filter(|&b| b == b'=').count() + requested.matches("!~").count();
    if matchers > most {
        return Err(invalid(format!(
            "x-tollgate-labels has more than {most} matchers"
        )));
    }
    let requested = Policy::parse(requested)
        .map_err(|err| invalid(format!("x-tollgate-labels is not a valid selector: {err}")))?;
    if requested.is_unrestricted() {
        return Ok(policy.clone());
    }
    if let Some(empty) = requested.selector_selecting_nothing() {
        return Err(Deny::new(
            DenyReason::LabelPolicyViolation,
            format!(
                "x-tollgate-labels selector {empty} can never match any series (its matchers contradict each other); an empty narrowing is refused"
            ),
        ));
    }
    requested
        .validate(&limits)
        .map_err(|err| invalid(format!("x-tollgate-labels: {err}")))?;
    policy.narrowed_by(&requested).ok_or_else(|| {
        Deny::new(
            DenyReason::LabelPolicyViolation,
            format!(
                "x-tollgate-labels {requested} is not within the account's label policy {policy}"
            ),
        )
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]
mod tests {
    use super::*;
    use crate::scope::Role;

    const NOW: u64 = 1_800_000_000;

    fn grant(role: Role, policy: &str) -> Grant {
        Grant {
            token_id: 7,
            account_id: 3,
            account: "ci-reader".into(),
            tenant: "acme".into(),
            role: role.as_str().into(),
            scopes: role.scopes(),
            policy: Policy::parse(policy).unwrap(),
            expires_at: Some(NOW + 60),
            all_tenants: false,
            read_tenants: crate::tenants::ReadTenants::Home,
            hide_policy_labels: false,
        }
    }

    fn run(grant: &Grant, method: &str, path: &str, headers: &[(&str, &str)]) -> Decision {
        let mut view = RequestView::new(method, path);
        for (name, value) in headers {
            view.observe_header(name, value);
        }
        decide(grant, &view, &RouteTable::default(), NOW)
    }

    fn outcome(decision: &Decision) -> Result<(), DenyReason> {
        match decision {
            Decision::Allow(_) => Ok(()),
            Decision::Deny(deny) => Err(deny.reason),
        }
    }

    #[test]
    fn decision_table() {
        use DenyReason::*;
        let viewer = grant(Role::Viewer, r#"{kube_namespace="prometheus"}"#);
        let writer = grant(Role::Writer, "");
        let mut expired = viewer.clone();
        expired.expires_at = Some(NOW);
        let cases: Vec<(
            &Grant,
            &str,
            &str,
            Vec<(&str, &str)>,
            Result<(), DenyReason>,
            &str,
        )> = vec![
            (
                &viewer,
                "GET",
                "/api/v1/query?query=up",
                vec![],
                Ok(()),
                "viewer reads",
            ),
            (
                &viewer,
                "POST",
                "/api/v1/write",
                vec![],
                Err(MissingScope),
                "viewer cannot write",
            ),
            (
                &writer,
                "POST",
                "/api/v1/write",
                vec![],
                Ok(()),
                "writer writes",
            ),
            (
                &writer,
                "GET",
                "/api/v1/query",
                vec![],
                Err(MissingScope),
                "writer cannot read",
            ),
            (
                &expired,
                "GET",
                "/api/v1/query",
                vec![],
                Err(ExpiredToken),
                "expiry is exclusive",
            ),
            (
                &viewer,
                "GET",
                "/api/v1/status/tsdb",
                vec![],
                Err(RouteNotAllowed),
                "unmatched route",
            ),
            (
                &viewer,
                "GET",
                "/loki/api/v1/../../api/v1/query",
                vec![],
                Err(InvalidPath),
                "dot segments",
            ),
            (
                &viewer,
                "GET",
                "/api/v1/query",
                vec![("X-Scope-OrgID", "acme")],
                Ok(()),
                "own tenant",
            ),
            (
                &viewer,
                "GET",
                "/api/v1/query",
                vec![("X-Scope-OrgID", "other")],
                Err(TenantMismatch),
                "other tenant",
            ),
            (
                &viewer,
                "GET",
                "/api/v1/query",
                vec![("x-forwarded-tenant-id", "acme"), ("x-scope-orgid", "evil")],
                Err(TenantMismatch),
                "every tenant header must match",
            ),
            (
                &viewer,
                "GET",
                "/api/v1/query",
                vec![(
                    "x-tollgate-labels",
                    r#"{kube_namespace="prometheus", job="x"}"#,
                )],
                Ok(()),
                "narrowing",
            ),
            (
                &viewer,
                "GET",
                "/api/v1/query",
                vec![("x-tollgate-labels", r#"{kube_namespace=~".*"}"#)],
                Err(LabelPolicyViolation),
                "widening",
            ),
            (
                &viewer,
                "GET",
                "/api/v1/query",
                vec![("x-tollgate-labels", "{oops")],
                Err(InvalidLabels),
                "bad selector",
            ),
            (
                &viewer,
                "GET",
                "/api/v1/query",
                vec![
                    ("x-tollgate-labels", "{a=\"b\"}"),
                    ("x-tollgate-labels", "{a=\"b\"}"),
                ],
                Err(InvalidLabels),
                "repeated header",
            ),
            (
                &writer,
                "POST",
                "/v1/logs",
                vec![("x-tollgate-labels", r#"{team="a"}"#)],
                Err(UnsupportedMediaType),
                "a narrowed write is restricted, and restricted writes must be a known format",
            ),
        ];
        for (grant, method, path, headers, want, why) in cases {
            let decision = run(grant, method, path, &headers);
            assert_eq!(outcome(&decision), want, "{why}");
        }
    }

    /// The narrowing header is held to a stored policy's limits, and to a length, before it
    /// is parsed (its regexes compiled); a label may repeat, as in a narrowing like
    /// `{ns=~"a.*", ns!="ab"}`.
    #[test]
    fn narrowing_is_held_to_the_policy_limits() {
        let viewer = grant(Role::Viewer, r#"{kube_namespace="prometheus"}"#);
        let matchers = |n: usize| {
            let list: Vec<String> = (0..n).map(|i| format!("l{i}=\"x\"")).collect();
            format!("{{kube_namespace=\"prometheus\", {}}}", list.join(", "))
        };
        let selectors = (0..9)
            .map(|i| format!("{{kube_namespace=\"prometheus\", l=\"{i}\"}}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let long = format!("{{kube_namespace=~\"{}\"}}", "a".repeat(5000));
        for (header, why) in [
            (matchers(10), "11 matchers in a selector"),
            (selectors, "9 selectors"),
            (long, "longer than 4096 bytes"),
            (
                "{a=~\"x\"} or ".repeat(90) + "{a=\"x\"}",
                "more than 80 matchers",
            ),
        ] {
            let decision = run(
                &viewer,
                "GET",
                "/api/v1/query?query=up",
                &[("x-tollgate-labels", &header)],
            );
            assert_eq!(outcome(&decision), Err(DenyReason::InvalidLabels), "{why}");
        }
        let repeated = r#"{kube_namespace="prometheus", team=~"a.*", team!="ab"}"#;
        let decision = run(
            &viewer,
            "GET",
            "/api/v1/query?query=up",
            &[("x-tollgate-labels", repeated)],
        );
        assert!(
            outcome(&decision).is_ok(),
            "a label may repeat in a narrowing"
        );
    }

    /// The narrowing header is judged as Prometheus (Go's RE2) would run it: constructs the two
    /// dialects read differently are 400, a provably empty selector is 403, and what is allowed
    /// is ANDed with the policy.
    #[test]
    fn narrowing_is_judged_in_the_upstream_dialect() {
        let viewer = grant(Role::Viewer, r#"{kube_namespace="prometheus"}"#);
        let deny_list = grant(Role::Viewer, r#"{team!="secret"}"#);
        let cases: &[(&Grant, &str, DenyReason, &str)] = &[
            (
                &viewer,
                r#"{kube_namespace="other", kube_namespace=~"[o&&p]ther"}"#,
                DenyReason::InvalidLabels,
                "class set operation",
            ),
            (
                &viewer,
                r#"{kube_namespace="other", kube_namespace=~"[o--p]ther"}"#,
                DenyReason::InvalidLabels,
                "class set operation",
            ),
            (
                &deny_list,
                r#"{team!~"[[s]]ecret"}"#,
                DenyReason::InvalidLabels,
                "nested class",
            ),
            (
                &viewer,
                r#"{kube_namespace="other", kube_namespace="prometheus"}"#,
                DenyReason::LabelPolicyViolation,
                "can never match",
            ),
            (
                &viewer,
                r#"{kube_namespace="other", kube_namespace!~"other|x"}"#,
                DenyReason::LabelPolicyViolation,
                "can never match",
            ),
            (
                &viewer,
                r#"{kube_namespace=~"prom\\d+"}"#,
                DenyReason::LabelPolicyViolation,
                "not within",
            ),
        ];
        for (grant, labels, reason, says) in cases {
            let decision = run(
                grant,
                "GET",
                "/api/v1/series",
                &[("x-tollgate-labels", labels)],
            );
            let Decision::Deny(deny) = decision else {
                panic!("{labels} should be denied, got {decision:?}")
            };
            assert_eq!(deny.reason, *reason, "{labels}: {}", deny.message);
            assert!(deny.message.contains(says), "{labels}: {}", deny.message);
        }

        let regex_policy = grant(Role::Viewer, r#"{kube_namespace=~"prometheus|monitoring"}"#);
        let Decision::Allow(allow) = run(
            &regex_policy,
            "GET",
            "/api/v1/series",
            &[("x-tollgate-labels", r#"{kube_namespace="monitoring"}"#)],
        ) else {
            panic!("a narrowing within the policy is allowed")
        };
        assert_eq!(
            allow.effective_policy.to_string(),
            r#"{kube_namespace="monitoring", kube_namespace=~"prometheus|monitoring"}"#,
            "the policy's own matcher stays in the effective selector"
        );
    }

    #[test]
    fn underscore_spellings_of_our_headers_are_removed() {
        let viewer = grant(Role::Viewer, "");
        let Decision::Allow(allow) = run(
            &viewer,
            "GET",
            "/api/v1/query",
            &[
                ("x_tollgate_account", "admin"),
                ("X_Scope_OrgID", "other"),
                ("authorization_", "x"),
                ("x_custom", "kept"),
            ],
        ) else {
            panic!("expected allow")
        };
        assert_eq!(
            allow.remove_headers,
            vec!["authorization", "x_tollgate_account", "x_scope_orgid"]
        );
    }

    #[test]
    fn allow_sets_identity_and_strips_spoofing() {
        let viewer = grant(Role::Viewer, r#"{kube_namespace="prometheus"}"#);
        let decision = run(
            &viewer,
            "GET",
            "/api/v1/query?query=up",
            &[
                ("x-tollgate-account", "admin"),
                ("X-Tollgate-Debug", "1"),
                (
                    "x-tollgate-labels",
                    r#"{job="a", kube_namespace="prometheus"}"#,
                ),
            ],
        );
        let Decision::Allow(allow) = decision else {
            panic!("expected allow")
        };
        assert_eq!(allow.scope, Scope::MetricsRead);
        assert_eq!(
            allow.set_headers,
            vec![
                ("x-tollgate-account", "ci-reader".to_owned()),
                ("x-tollgate-tenant", "acme".to_owned()),
                ("x-scope-orgid", "acme".to_owned()),
                (
                    "x-tollgate-labels",
                    r#"{job="a", kube_namespace="prometheus"}"#.to_owned()
                ),
            ]
        );
        assert_eq!(
            allow.remove_headers,
            vec!["authorization", "x-tollgate-debug"]
        );
        assert_eq!(
            allow.effective_policy.to_string(),
            r#"{job="a", kube_namespace="prometheus"}"#
        );

        let unrestricted = grant(Role::Viewer, "");
        let Decision::Allow(allow) = run(
            &unrestricted,
            "GET",
            "/api/v1/query",
            &[("x-tollgate-labels", "")],
        ) else {
            panic!("expected allow")
        };
        assert!(allow.effective_policy.is_unrestricted());
        assert!(
            allow
                .set_headers
                .iter()
                .all(|(name, _)| *name != "x-tollgate-labels")
        );
        assert!(
            allow
                .remove_headers
                .contains(&"x-tollgate-labels".to_owned())
        );
    }

    #[test]
    fn deny_statuses_and_bodies() {
        for reason in DenyReason::ALL {
            let deny = Deny::new(reason, "a \"quoted\"\nmessage");
            let body: serde_json::Value = serde_json::from_str(&deny.json_body()).unwrap();
            assert_eq!(body["reason"], reason.as_str());
            assert_eq!(body["error"], "a \"quoted\"\nmessage");
            assert!([400, 401, 403, 413, 415, 500, 503].contains(&deny.status()));
            if reason.is_query_error() {
                assert_eq!(body["status"], "error", "Prometheus shape for {reason:?}");
                assert!(body["errorType"].is_string());
            } else {
                assert!(body.get("status").is_none());
            }
        }
        assert_eq!(Deny::new(DenyReason::ExpiredToken, "").status(), 401);
        assert_eq!(
            Deny::new(DenyReason::LabelPolicyViolation, "").status(),
            403
        );
    }

    #[test]
    fn authentication_outcomes() {
        let token = Token::generate().unwrap();
        let good = format!("Bearer {}", token.expose_secret());
        let mut bad = good.clone();
        bad.pop();
        bad.push(if good.ends_with('0') { '1' } else { '0' });
        let cases = [
            (None, Err(DenyReason::MissingToken), "no header"),
            (
                Some("Basic abc"),
                Err(DenyReason::MissingToken),
                "other scheme",
            ),
            (
                Some("Bearer abc"),
                Err(DenyReason::MalformedToken),
                "not ours",
            ),
            (
                Some(bad.as_str()),
                Err(DenyReason::MalformedToken),
                "bad checksum",
            ),
            (Some(good.as_str()), Ok(()), "valid"),
        ];
        for (header, want, why) in cases {
            let headers: Vec<&str> = header.into_iter().collect();
            let got = authenticate(&headers).map(|_| ()).map_err(|d| d.reason);
            assert_eq!(got, want, "{why}");
            if let Err(deny) = authenticate(&headers) {
                assert!(!deny.message.contains(&token.expose_secret()[5..37]));
            }
        }
    }

    #[test]
    fn label_policy_header_covers_every_tenant_read() {
        let policy = Policy::parse(r#"{ns="x"} or {team="y"}"#).unwrap();
        let one = label_policy_value("ops", &policy);
        assert_eq!(one.split(',').count(), 2, "{one}");
        let both = label_policy_value("ops|dev", &policy);
        let tenants: Vec<&str> = both
            .split(',')
            .map(|e| e.split_once(':').unwrap().0)
            .collect();
        assert_eq!(tenants, ["ops", "ops", "dev", "dev"], "{both}");
    }

    #[test]
    fn hiding_accounts_read_only_what_can_be_rewritten() {
        use crate::answer::Answer;
        let hiding = Grant {
            hide_policy_labels: true,
            ..grant(Role::Editor, r#"{kube_namespace="prometheus"}"#)
        };
        let cases = [
            ("GET", "/api/v1/query", Ok(Some(Answer::QueryResult))),
            (
                "GET",
                "/prometheus/api/v1/label/job/values",
                Ok(Some(Answer::LabelValues("job".into()))),
            ),
            ("GET", "/federate", Ok(Some(Answer::Federate))),
            ("GET", "/api/v1/status/buildinfo", Ok(None)),
            ("POST", "/otlp/v1/metrics", Ok(None)),
            (
                "GET",
                "/loki/api/v1/tail",
                Err(DenyReason::LabelsNotEnforceable),
            ),
        ];
        for (method, path, want) in cases {
            let json = [("content-type", "application/json")];
            let got = match run(&hiding, method, path, &json) {
                Decision::Allow(allow) => Ok(allow.answer.map(|a| a.shape)),
                Decision::Deny(deny) => Err(deny.reason),
            };
            assert_eq!(got, want, "{method} {path}");
        }
        // Its denials do not name the policy, and its queries may not copy a hidden label.
        let conflict = crate::pipeline::authorize_grant(
            &hiding,
            &RequestView::new(
                "GET",
                "/api/v1/query?query=up%7Bkube_namespace%3D%22x%22%7D",
            ),
            &RouteTable::default(),
            NOW,
        )
        .unwrap_err();
        assert_eq!(conflict.reason, DenyReason::QueryNotAllowed);
        assert!(
            !conflict.message.contains("kube_namespace")
                && !conflict.message.contains("prometheus"),
            "{}",
            conflict.message
        );
        for query in [
            "label_replace(up%2C%22x%22%2C%22%241%22%2C%22kube_namespace%22%2C%22(.*)%22)",
            "label_join(up%2C%22x%22%2C%22%2C%22%2C%22kube_namespace%22)",
        ] {
            let copy = crate::pipeline::authorize_grant(
                &hiding,
                &RequestView::new("GET", &format!("/api/v1/query?query={query}")),
                &RouteTable::default(),
                NOW,
            )
            .unwrap_err();
            assert_eq!(copy.reason, DenyReason::QueryNotAllowed, "{query}");
        }
        let open = Grant {
            hide_policy_labels: true,
            ..grant(Role::Viewer, "")
        };
        assert!(
            matches!(run(&open, "GET", "/api/v1/query", &[]), Decision::Allow(a) if a.answer.is_none())
        );
    }

    fn allow(grant: &Grant, method: &str, path: &str) -> Allow {
        match run(grant, method, path, &[]) {
            Decision::Allow(allow) => allow,
            Decision::Deny(deny) => panic!("expected allow: {deny:?}"),
        }
    }

    #[test]
    fn label_enforcement_by_route() {
        let viewer = grant(Role::Viewer, r#"{kube_namespace="prometheus"}"#);
        let decision = run(&viewer, "GET", "/loki/api/v1/format_query", &[]);
        assert_eq!(
            outcome(&decision),
            Err(DenyReason::LabelsNotEnforceable),
            "Loki paths without LogQL enforcement stay denied"
        );
        let unrestricted = grant(Role::Viewer, "");
        assert_eq!(
            outcome(&run(&unrestricted, "GET", "/loki/api/v1/query_range", &[])),
            Ok(())
        );

        let query = allow(&viewer, "GET", "/api/v1/query");
        let rewrite = rewrite_query_params(&query, "query=up&time=5").unwrap();
        assert_eq!(
            rewrite.set,
            [(
                "query".to_owned(),
                r#"up{kube_namespace="prometheus"}"#.to_owned()
            )]
        );
        let err =
            rewrite_query_params(&query, "query=up%7Bkube_namespace%3D%22other%22%7D").unwrap_err();
        assert_eq!(
            (err.reason, err.status()),
            (DenyReason::QueryNotAllowed, 403)
        );
        assert!(
            err.json_body().contains("\"errorType\":\"forbidden\""),
            "{}",
            err.json_body()
        );
        let err = rewrite_query_params(&query, "query=sum(").unwrap_err();
        assert_eq!((err.reason, err.status()), (DenyReason::InvalidQuery, 400));
        assert_eq!(
            rewrite_query_params(&query, "query=%zz")
                .unwrap_err()
                .reason,
            DenyReason::InvalidQuery
        );

        let series = allow(&viewer, "GET", "/api/v1/series");
        let rewrite = rewrite_query_params(&series, "").unwrap();
        assert_eq!(
            rewrite.set,
            [(
                "match[]".to_owned(),
                r#"{kube_namespace="prometheus"}"#.to_owned()
            )],
            "default match[]"
        );

        // Upstreams ignore x-tollgate-labels on writes: a restricted writer may only send what
        // Tollgate can confine in the body itself, in a format it reads.
        let restricted_writer = grant(Role::Writer, r#"{team="a"}"#);
        for path in ["/api/v1/write", "/api/v1/push"] {
            let remote_write = [
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "snappy"),
            ];
            let allowed = run(&restricted_writer, "POST", path, &remote_write);
            let Decision::Allow(allow) = allowed else {
                panic!("{path}: remote write 1.0 is confined in the body: {allowed:?}")
            };
            assert_eq!(allow.labels, LabelEnforcement::RemoteWrite);
            for headers in [
                &[("content-type", "application/x-protobuf")][..],
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", "snappy"),
                ],
                &[],
            ] {
                assert_eq!(
                    outcome(&run(&restricted_writer, "POST", path, headers)),
                    Err(DenyReason::UnsupportedMediaType),
                    "{path} {headers:?}"
                );
            }
        }
        for (path, labels, content_type) in [
            (
                "/api/v1/otlp/v1/metrics",
                LabelEnforcement::OtlpMetrics,
                "application/x-protobuf",
            ),
            (
                "/otlp/v1/metrics",
                LabelEnforcement::OtlpMetrics,
                "application/json",
            ),
            (
                "/v1/metrics",
                LabelEnforcement::OtlpMetrics,
                "application/json",
            ),
            (
                "/v1/logs",
                LabelEnforcement::OtlpLogs,
                "application/x-protobuf",
            ),
            (
                "/otlp/v1/logs",
                LabelEnforcement::OtlpLogs,
                "application/x-protobuf",
            ),
            (
                "/v1/traces",
                LabelEnforcement::OtlpTraces,
                "application/json",
            ),
            (
                "/loki/api/v1/push",
                LabelEnforcement::LokiPush,
                "application/x-protobuf",
            ),
            (
                "/loki/api/v1/push",
                LabelEnforcement::LokiPush,
                "application/json",
            ),
        ] {
            let decision = run(
                &restricted_writer,
                "POST",
                path,
                &[("content-type", content_type)],
            );
            let Decision::Allow(allow) = decision else {
                panic!("{path} {content_type}: confined in the body: {decision:?}")
            };
            assert_eq!(allow.labels, labels, "{path}");
            for headers in [
                &[("content-type", "text/plain")][..],
                &[("content-type", content_type), ("content-encoding", "br")],
                &[],
            ] {
                assert_eq!(
                    outcome(&run(&restricted_writer, "POST", path, headers)),
                    Err(DenyReason::UnsupportedMediaType),
                    "{path} {headers:?}"
                );
            }
        }
        // Endpoints Grafana calls: those without series data are open to restricted accounts,
        // the metadata ones are not (they answer for every series); both under Mimir's prefix.
        let restricted_reader = grant(Role::Viewer, r#"{team="a"}"#);
        for prefix in ["", "/prometheus"] {
            for path in [
                "/api/v1/status/buildinfo",
                "/api/v1/format_query?query=up",
                "/api/v1/parse_query?query=up",
            ] {
                let path = format!("{prefix}{path}");
                let decision = run(&restricted_reader, "GET", &path, &[]);
                let Decision::Allow(allow) = decision else {
                    panic!("{path}: no series data, allowed: {decision:?}")
                };
                assert_eq!(allow.labels, LabelEnforcement::NoSeriesData, "{path}");
            }
            for path in [
                "/api/v1/metadata",
                "/api/v1/rules",
                "/api/v1/alerts",
                "/api/v1/targets",
            ] {
                let path = format!("{prefix}{path}");
                assert_eq!(
                    outcome(&run(&restricted_reader, "GET", &path, &[])),
                    Err(DenyReason::LabelsNotEnforceable),
                    "{path}"
                );
                assert!(
                    outcome(&run(&grant(Role::Viewer, ""), "GET", &path, &[])).is_ok(),
                    "{path}: unrestricted accounts reach it"
                );
            }
        }
        let query = allow(&restricted_reader, "GET", "/prometheus/api/v1/query");
        assert_eq!(
            rewrite_query_params(&query, "query=up").unwrap().set,
            [("query".to_owned(), r#"up{team="a"}"#.to_owned())],
            "Mimir's prefix is rewritten like the root"
        );

        let write = allow(&grant(Role::Writer, ""), "POST", "/api/v1/write");
        assert_eq!(
            rewrite_query_params(&write, "query=anything").unwrap(),
            ParamRewrite::default(),
            "unrestricted writes go to the upstream as sent"
        );
        assert_eq!(
            allow(&unrestricted, "GET", "/api/v1/query").labels,
            LabelEnforcement::PromqlQuery
        );
        assert_eq!(
            rewrite_query_params(&allow(&unrestricted, "GET", "/api/v1/query"), "query=up")
                .unwrap(),
            ParamRewrite::default()
        );
    }

    /// Loki's reads for a label-restricted account: which routes allow it, what each rewrites.
    #[test]
    fn loki_reads_by_route() {
        let viewer = grant(Role::Viewer, r#"{namespace="a"}"#);
        let q = form::encode(r#"{app="x"} |= "{b=\"c\"}""#);
        let confined = r#"{app="x", namespace="a"} |= "{b=\"c\"}""#;
        let cases: &[(&str, &str, Result<&[(&str, &str)], DenyReason>)] = &[
            ("GET", "/loki/api/v1/query", Ok(&[])),
            ("GET", "/loki/api/v1/query_range", Ok(&[])),
            ("GET", "/loki/api/v1/tail", Ok(&[])),
            (
                "GET",
                "/loki/api/v1/labels",
                Ok(&[("query", r#"{namespace="a"}"#)]),
            ),
            (
                "GET",
                "/loki/api/v1/label/app/values",
                Ok(&[("query", r#"{namespace="a"}"#)]),
            ),
            (
                "GET",
                "/loki/api/v1/series",
                Ok(&[("match[]", r#"{namespace="a"}"#)]),
            ),
            (
                "GET",
                "/loki/api/v1/index/stats",
                Ok(&[("query", r#"{namespace="a"}"#)]),
            ),
            (
                "GET",
                "/loki/api/v1/index/volume",
                Ok(&[("query", r#"{namespace="a"}"#)]),
            ),
            (
                "GET",
                "/loki/api/v1/index/volume_range",
                Ok(&[("query", r#"{namespace="a"}"#)]),
            ),
            (
                "GET",
                "/loki/api/v1/patterns",
                Ok(&[("query", r#"{namespace="a"}"#)]),
            ),
            (
                "GET",
                "/loki/api/v1/detected_fields",
                Ok(&[("query", r#"{namespace="a"}"#)]),
            ),
            (
                "GET",
                "/loki/api/v1/detected_field/level/values",
                Ok(&[("query", r#"{namespace="a"}"#)]),
            ),
            (
                "GET",
                "/loki/api/v1/detected_labels",
                Ok(&[("query", r#"{namespace="a"}"#)]),
            ),
            (
                "GET",
                "/loki/api/v1/format_query",
                Err(DenyReason::LabelsNotEnforceable),
            ),
            (
                "POST",
                "/loki/api/v1/tail",
                Err(DenyReason::RouteNotAllowed),
            ),
            (
                "POST",
                "/loki/api/v1/delete",
                Err(DenyReason::RouteNotAllowed),
            ),
            (
                "GET",
                "/loki/api/v1/rules",
                Err(DenyReason::RouteNotAllowed),
            ),
            (
                "GET",
                "/loki/api/v1/status/buildinfo",
                Err(DenyReason::RouteNotAllowed),
            ),
        ];
        for (method, path, want) in cases {
            let decision = run(&viewer, method, path, &[]);
            let Ok(default_params) = want else {
                assert_eq!(
                    outcome(&decision),
                    Err(*want.as_ref().unwrap_err()),
                    "{path}"
                );
                continue;
            };
            let Decision::Allow(allow) = decision else {
                panic!("{method} {path}: {decision:?}")
            };
            let rewrite = rewrite_query_params(&allow, "limit=10").unwrap();
            let want: Vec<(String, String)> = default_params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            assert_eq!(rewrite.set, want, "{path}: absent parameter");
            let key = if path.ends_with("/series") {
                "match[]"
            } else {
                "query"
            };
            let selector = form::encode(r#"{app="x"}"#);
            let sent = if key == "query" { q.clone() } else { selector };
            let rewrite = rewrite_query_params(&allow, &format!("{key}={sent}")).unwrap();
            let want = if key == "query" {
                confined
            } else {
                r#"{app="x", namespace="a"}"#
            };
            assert_eq!(rewrite.set, [(key.to_owned(), want.to_owned())], "{path}");
            let conflict = form::encode(r#"{namespace="b"}"#);
            let err = rewrite_query_params(&allow, &format!("{key}={conflict}")).unwrap_err();
            assert_eq!(
                (err.reason, err.status()),
                (DenyReason::QueryNotAllowed, 403)
            );
            let err = rewrite_query_params(&allow, &format!("{key}=%7B")).unwrap_err();
            assert_eq!((err.reason, err.status()), (DenyReason::InvalidQuery, 400));
        }

        // Bodies: rewritten by the filter, checked by ext_authz.
        let post = allow(&viewer, "POST", "/loki/api/v1/query_range");
        let form_type = Some("application/x-www-form-urlencoded");
        let body = format!("query={q}&limit=5");
        let view = BodyView {
            content_type: form_type,
            content_encoding: None,
            bytes: body.as_bytes(),
            complete: true,
        };
        let rewritten = rewrite_form_body(&post, &view).unwrap().unwrap();
        let pairs = form::parse(&rewritten).unwrap();
        let value = |key: &str| {
            pairs
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value.as_str())
        };
        assert_eq!(
            (value("query"), value("limit")),
            (Some(confined), Some("5"))
        );
        assert_eq!(
            check_form_body(&post, &view).unwrap_err().reason,
            DenyReason::QueryNotAllowed
        );
        let within = format!("query={}", form::encode(confined));
        let view = BodyView {
            bytes: within.as_bytes(),
            ..view
        };
        assert!(check_form_body(&post, &view).is_ok());
        let labels = allow(&viewer, "POST", "/loki/api/v1/labels");
        let view = BodyView {
            bytes: b"start=1",
            ..view
        };
        assert_eq!(
            rewrite_form_body(&labels, &view).unwrap(),
            None,
            "a query absent from the body is added to the URL"
        );
    }

    #[test]
    fn label_policy_header() {
        let policy_values = |decision: &Decision| match decision {
            Decision::Allow(allow) => allow
                .set_headers
                .iter()
                .filter(|(name, _)| *name == headers::LABEL_POLICY)
                .map(|(_, value)| value.clone())
                .collect::<Vec<_>>(),
            Decision::Deny(deny) => panic!("{deny:?}"),
        };
        let removed = |decision: &Decision| match decision {
            Decision::Allow(allow) => allow.remove_headers.clone(),
            Decision::Deny(deny) => panic!("{deny:?}"),
        };
        let one = grant(Role::Viewer, r#"{namespace="a", env=~"prod|dev"}"#);
        let decision = run(&one, "GET", "/loki/api/v1/query_range", &[]);
        assert_eq!(
            policy_values(&decision),
            ["acme:%7Benv%3D~%22prod%7Cdev%22%2C%20namespace%3D%22a%22%7D"],
            "<tenant>:<URL-encoded selector>"
        );
        let two = grant(Role::Viewer, r#"{namespace="a"} or {team="b"}"#);
        let decision = run(&two, "GET", "/prometheus/api/v1/query", &[]);
        assert_eq!(
            policy_values(&decision),
            ["acme:%7Bnamespace%3D%22a%22%7D,acme:%7Bteam%3D%22b%22%7D"],
            "one list element per selector of an OR (Mimir and Loki OR them), one field line"
        );
        let narrowed = run(
            &one,
            "GET",
            "/loki/api/v1/labels",
            &[("x-tollgate-labels", r#"{namespace="a", env="prod"}"#)],
        );
        assert_eq!(
            policy_values(&narrowed),
            ["acme:%7Benv%3D%22prod%22%2C%20env%3D~%22prod%7Cdev%22%2C%20namespace%3D%22a%22%7D"],
            "the effective (narrowed) policy"
        );

        let spoofed = [
            ("X-Prom-Label-Policy", "acme:%7B%7D"),
            ("x_prom_label_policy", "acme:%7B%7D"),
        ];
        for (path, grant, sent) in [
            ("/loki/api/v1/query", &one, true),
            ("/api/v1/query", &one, false),
            ("/loki/api/v1/query", &grant(Role::Viewer, ""), false),
        ] {
            let decision = run(grant, "GET", path, &spoofed);
            assert_eq!(!policy_values(&decision).is_empty(), sent, "{path}");
            let removed = removed(&decision);
            assert!(
                removed.contains(&"x_prom_label_policy".to_owned()),
                "{path}"
            );
            assert_eq!(
                removed.contains(&"x-prom-label-policy".to_owned()),
                !sent,
                "{path}: a client's copy is removed, or overwritten by ours"
            );
        }
    }

    #[test]
    fn form_bodies() {
        let viewer = grant(Role::Viewer, r#"{kube_namespace="prometheus"}"#);
        let query = allow(&viewer, "POST", "/api/v1/query");
        let form = Some("application/x-www-form-urlencoded; charset=utf-8");
        let within = format!(
            "query={}",
            form::encode(r#"rate(x{kube_namespace="prometheus"}[5m])"#)
        );
        let cases: Vec<(Option<&str>, &[u8], bool, Result<(), DenyReason>, &str)> = vec![
            (form, within.as_bytes(), true, Ok(()), "within the policy"),
            (
                form,
                b"query=up",
                true,
                Err(DenyReason::QueryNotAllowed),
                "outside the policy",
            ),
            (
                form,
                b"query=sum(",
                true,
                Err(DenyReason::InvalidQuery),
                "unparsable",
            ),
            (
                form,
                within.as_bytes(),
                false,
                Err(DenyReason::BodyUnavailable),
                "partial body",
            ),
            (None, b"", true, Ok(()), "no body"),
            (
                None,
                b"",
                false,
                Err(DenyReason::BodyUnavailable),
                "a body that was not forwarded",
            ),
            (
                Some("multipart/form-data; boundary=x"),
                b"--x",
                true,
                Err(DenyReason::InvalidQuery),
                "multipart is refused",
            ),
            (
                form,
                b"query=%ff",
                true,
                Err(DenyReason::InvalidQuery),
                "not utf-8",
            ),
        ];
        for (content_type, bytes, complete, want, why) in cases {
            let body = BodyView {
                content_type,
                content_encoding: None,
                bytes,
                complete,
            };
            assert_eq!(
                check_form_body(&query, &body).map_err(|d| d.reason),
                want,
                "{why}"
            );
        }
        let err = check_form_body(
            &query,
            &BodyView {
                content_type: form,
                content_encoding: None,
                bytes: b"query=up",
                complete: true,
            },
        )
        .unwrap_err();
        assert!(
            err.message.contains("add the policy's matchers"),
            "tells how to comply: {}",
            err.message
        );
    }
}
