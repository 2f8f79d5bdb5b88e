//! Where a token is checked: the one authorization sequence every caller runs (the filter,
//! ext_authz, the admin API's authentication and its access review), so no mode can drift from
//! another.
//!
//! 1. Read the credential: every `Authorization` value of the request ([`authenticate`]).
//! 2. Look the grant up by the token's hash, through the caller's [`GrantLookup`]: the server's
//!    snapshot answers found or unknown; the filter's cache may also answer "not here", and the
//!    filter then resolves the hash with the server and finishes with [`authorize_grant`].
//! 3. Decide: expiry, route, scope, tenant, label narrowing ([`decide`]).
//! 4. Rewrite: PromQL or LogQL in the URL gains the policy's matchers ([`rewrite_query_params`]).
//! 5. Answer: an [`Authorized`] (identity headers, effective policy, query rewrite; the body,
//!    which may arrive later, through [`Authorized::rewrite_body`] or [`Authorized::check_body`])
//!    or a [`Deny`], which [`crate::denial`] turns into every interface's answer.

use std::borrow::Borrow;

use crate::decision::{
    Allow, BodyView, Decision, Deny, DenyReason, Grant, RequestView, authenticate, check_form_body,
    conceal, decide, rewrite_form_body, rewrite_query_params,
};
use crate::promql::ParamRewrite;
use crate::route::{LabelEnforcement, RouteTable};
use crate::token::TokenHash;
use crate::write::{self, WriteError, WriteLimits, WriteRoute};

/// What the caller's grant source knows about a token hash.
#[derive(Debug)]
pub enum GrantLookup<G> {
    Found(G),
    /// Unknown, revoked, expired from the store: a 401.
    Unknown,
    /// Not in this cache: resolve it with the server, then finish with [`authorize_grant`].
    NotHere,
    /// Nothing can answer now (the server is unreachable and nothing cached may stand in).
    Unavailable,
}

/// The outcome of [`authorize`].
#[derive(Debug)]
pub enum Authorization<G> {
    Allowed(Authorized<G>),
    Denied(Deny),
    /// The lookup answered [`GrantLookup::NotHere`] for this hash.
    NotHere(TokenHash),
}

/// An allowed request: the grant that allowed it, what changes on its way upstream, and how its
/// body (if the route reads one) is confined.
#[derive(Debug, Clone)]
pub struct Authorized<G> {
    pub grant: G,
    pub allow: Allow,
    /// URL parameter changes (PromQL confined to the policy); empty when nothing changes.
    pub query: ParamRewrite,
}

/// Authorizes a request from its credential on: the one entry point.
pub fn authorize<G: Borrow<Grant>>(
    request: &RequestView<'_>,
    lookup: impl FnOnce(&TokenHash) -> GrantLookup<G>,
    routes: &RouteTable,
    now: u64,
) -> Authorization<G> {
    let token = match authenticate(&request.authorizations) {
        Ok(token) => token,
        Err(deny) => return Authorization::Denied(deny),
    };
    let hash = token.hash();
    match lookup(&hash) {
        GrantLookup::Found(grant) => match authorize_grant(grant, request, routes, now) {
            Ok(authorized) => Authorization::Allowed(authorized),
            Err(deny) => Authorization::Denied(deny),
        },
        GrantLookup::Unknown => Authorization::Denied(Deny::unknown_token()),
        GrantLookup::NotHere => Authorization::NotHere(hash),
        GrantLookup::Unavailable => Authorization::Denied(unavailable()),
    }
}

/// Steps 3 to 5 for a grant already in hand: [`authorize`] after the lookup, and the access
/// review of an account (which has a grant but no token).
pub fn authorize_grant<G: Borrow<Grant>>(
    grant: G,
    request: &RequestView<'_>,
    routes: &RouteTable,
    now: u64,
) -> Result<Authorized<G>, Deny> {
    // A denial for an account that hides its policy labels does not name them either.
    let allow = match decide(grant.borrow(), request, routes, now) {
        Decision::Allow(allow) => allow,
        Decision::Deny(deny) => return Err(conceal(grant.borrow(), deny)),
    };
    let query = rewrite_query_params(&allow, request.query)
        .map_err(|deny| conceal(grant.borrow(), deny))?;
    Ok(Authorized {
        grant,
        allow,
        query,
    })
}

/// The denial when nothing can answer for a token.
pub fn unavailable() -> Deny {
    Deny::new(
        DenyReason::AuthorizerUnavailable,
        "the authorization server cannot be reached; try again",
    )
}

impl<G: Borrow<Grant>> Authorized<G> {
    /// Whether the filter must hold the request for its body: one whose PromQL or LogQL form
    /// body or write body must be confined, not yet complete. (ext_authz receives the body with the
    /// request.) Unrestricted accounts' bodies are never read. A POST's body always; another
    /// method's when it has a content type: Go's `FormValue` (Prometheus) reads a multipart body
    /// on a GET too, so such a body is checked as a POST's is (refused unless it is a form), as
    /// ext_authz checks it. Not a WebSocket upgrade's stream (Loki's tail), which has none.
    pub fn needs_body(&self, method: &str, has_content_type: bool, end_of_stream: bool) -> bool {
        !end_of_stream
            && (method == "POST" || has_content_type)
            && (matches!(
                self.allow.labels,
                LabelEnforcement::PromqlQuery
                    | LabelEnforcement::PromqlMatch
                    | LabelEnforcement::LogqlQuery
                    | LabelEnforcement::LogqlOptionalQuery
                    | LabelEnforcement::LogqlSeries
            ) || WriteRoute::of(self.allow.labels).is_some())
            && !self.allow.effective_policy.is_unrestricted()
    }

    /// For a body that can be rewritten (the filter): the new body, or `None` when nothing
    /// needs to change.
    pub fn rewrite_body(
        &self,
        body: &BodyView<'_>,
        limits: &WriteLimits,
    ) -> Result<Option<Vec<u8>>, Deny> {
        let rewritten = match self.write_format(body)? {
            Some(format) => {
                let bytes = complete_body(body)?;
                let policy = &self.allow.effective_policy;
                write::force_encoded(format, body.content_encoding, policy, bytes, limits)
                    .map_err(write_deny)
            }
            None => rewrite_form_body(&self.allow, body).map(|text| text.map(String::into_bytes)),
        };
        rewritten.map_err(|deny| conceal(self.grant.borrow(), deny))
    }

    /// For a body that cannot be rewritten (ext_authz): allowed only when every PromQL selector
    /// or written series it carries already lies within the policy.
    pub fn check_body(&self, body: &BodyView<'_>, limits: &WriteLimits) -> Result<(), Deny> {
        let checked = match self.write_format(body)? {
            Some(format) => {
                let bytes = complete_body(body)?;
                let policy = &self.allow.effective_policy;
                write::check_encoded(format, body.content_encoding, policy, bytes, limits)
                    .map_err(write_deny)
            }
            None => check_form_body(&self.allow, body),
        };
        checked.map_err(|deny| conceal(self.grant.borrow(), deny))
    }

    /// The write format of a restricted account's body on a write route (checked against the
    /// headers when the request was decided, so a 415 here is only for a body view that
    /// disagrees with them).
    fn write_format(&self, body: &BodyView<'_>) -> Result<Option<write::WriteFormat>, Deny> {
        match WriteRoute::of(self.allow.labels) {
            Some(route) if !self.allow.effective_policy.is_unrestricted() => route
                .format(body.content_type, body.content_encoding)
                .map(Some)
                .map_err(|message| Deny::new(DenyReason::UnsupportedMediaType, message)),
            _ => Ok(None),
        }
    }
}

fn complete_body<'a>(body: &BodyView<'a>) -> Result<&'a [u8], Deny> {
    if body.complete {
        Ok(body.bytes)
    } else {
        Err(Deny::new(
            DenyReason::BodyUnavailable,
            "the request body was not available to authorization in full (configure with_request_body with a max_request_bytes above the body size)",
        ))
    }
}

fn write_deny(err: WriteError) -> Deny {
    let reason = match err.status() {
        413 => DenyReason::BodyTooLarge,
        403 => DenyReason::LabelPolicyViolation,
        _ => DenyReason::InvalidBody,
    };
    Deny::new(reason, err.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::scope::Role;
    use crate::selector::Policy;
    use crate::token::Token;

    fn grant(policy: &str) -> Grant {
        Grant {
            token_id: 7,
            account_id: 3,
            account: "reader".into(),
            tenant: "acme".into(),
            role: Role::Viewer.as_str().into(),
            scopes: Role::Viewer.scopes(),
            policy: Policy::parse(policy).unwrap(),
            expires_at: None,
            all_tenants: false,
            read_tenants: Default::default(),
            hide_policy_labels: false,
        }
    }

    #[test]
    fn every_lookup_answer() {
        let token = Token::generate().unwrap();
        let bearer = format!("Bearer {}", token.expose_secret());
        let mut view = RequestView::new("GET", "/api/v1/query?query=up");
        view.observe_header("authorization", &bearer);
        let routes = RouteTable::default();
        let g = grant(r#"{ns="a"}"#);

        let mut asked = None;
        let outcome = authorize(
            &view,
            |hash| {
                asked = Some(*hash);
                GrantLookup::Found(&g)
            },
            &routes,
            0,
        );
        assert_eq!(asked, Some(token.hash()), "looked up by the token's hash");
        let Authorization::Allowed(allowed) = outcome else {
            panic!("found: allowed")
        };
        assert_eq!(allowed.grant.token_id, 7);
        assert_eq!(
            allowed.query.set,
            [("query".to_owned(), r#"up{ns="a"}"#.to_owned())]
        );

        let outcome = authorize::<&Grant>(&view, |_| GrantLookup::Unknown, &routes, 0);
        assert!(
            matches!(outcome, Authorization::Denied(ref d) if d.reason == DenyReason::UnknownToken)
        );
        let outcome = authorize::<&Grant>(&view, |_| GrantLookup::NotHere, &routes, 0);
        assert!(matches!(outcome, Authorization::NotHere(h) if h == token.hash()));
        let outcome = authorize::<&Grant>(&view, |_| GrantLookup::Unavailable, &routes, 0);
        assert!(
            matches!(outcome, Authorization::Denied(ref d) if d.reason == DenyReason::AuthorizerUnavailable)
        );
    }

    #[test]
    fn the_credential_comes_first() {
        let routes = RouteTable::default();
        let lookup = |_: &TokenHash| -> GrantLookup<Grant> { panic!("no lookup without a token") };
        let view = RequestView::new("GET", "/api/v1/query");
        let Authorization::Denied(deny) = authorize(&view, lookup, &routes, 0) else {
            panic!("no credential: denied")
        };
        assert_eq!(deny.reason, DenyReason::MissingToken);

        let token = Token::generate().unwrap();
        let bearer = format!("Bearer {}", token.expose_secret());
        let mut view = RequestView::new("GET", "/api/v1/query");
        view.observe_header("authorization", &bearer);
        view.observe_header("Authorization", &bearer);
        let Authorization::Denied(deny) = authorize(&view, lookup, &routes, 0) else {
            panic!("two credentials: denied")
        };
        assert_eq!(deny.reason, DenyReason::MalformedToken);
        assert!(deny.message.contains("more than one"), "{}", deny.message);
    }

    #[test]
    fn denials_after_the_lookup_and_bodies() {
        let token = Token::generate().unwrap();
        let bearer = format!("Bearer {}", token.expose_secret());
        let routes = RouteTable::default();
        let g = grant(r#"{ns="a"}"#);
        let mut view = RequestView::new("POST", "/api/v1/write");
        view.observe_header("authorization", &bearer);
        let Authorization::Denied(deny) = authorize(&view, |_| GrantLookup::Found(&g), &routes, 0)
        else {
            panic!("a viewer cannot write")
        };
        assert_eq!(deny.reason, DenyReason::MissingScope);

        let mut view = RequestView::new("POST", "/api/v1/query");
        view.observe_header("authorization", &bearer);
        let Authorization::Allowed(allowed) =
            authorize(&view, |_| GrantLookup::Found(&g), &routes, 0)
        else {
            panic!("allowed")
        };
        assert!(allowed.needs_body("POST", false, false));
        assert!(!allowed.needs_body("POST", false, true));
        assert!(
            allowed.needs_body("GET", true, false),
            "a GET with a content type"
        );
        assert!(
            !allowed.needs_body("GET", false, false),
            "an upgrade's stream"
        );
        let body = BodyView {
            content_type: Some("application/x-www-form-urlencoded"),
            content_encoding: None,
            bytes: b"query=up",
            complete: true,
        };
        assert_eq!(
            allowed
                .rewrite_body(&body, &WriteLimits::default())
                .unwrap()
                .as_deref(),
            Some(&b"query=up%7Bns%3D%22a%22%7D"[..])
        );
        assert_eq!(
            allowed
                .check_body(&body, &WriteLimits::default())
                .unwrap_err()
                .reason,
            DenyReason::QueryNotAllowed
        );
    }
}
