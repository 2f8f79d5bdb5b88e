//! Header names Tollgate reads and writes. All lower case, as HTTP/2 and Envoy present them.

/// Credentials; removed before the request goes upstream.
pub const AUTHORIZATION: &str = "authorization";
/// Every header with this prefix is Tollgate's to set: client-sent ones are removed.
pub const TOLLGATE_PREFIX: &str = "x-tollgate-";
pub const ACCOUNT: &str = "x-tollgate-account";
pub const TENANT: &str = "x-tollgate-tenant";
/// The effective label selector (canonical). A client may send one to narrow its scope.
pub const LABELS: &str = "x-tollgate-labels";
/// Mimir / Loki / Tempo tenant header; always set to the token's tenant.
pub const SCOPE_ORG_ID: &str = "x-scope-orgid";
pub const FORWARDED_TENANT_ID: &str = "x-forwarded-tenant-id";
/// Mimir's and Loki's label-based access control: `<tenant>:<URL-encoded selector>`, one value
/// per selector (ORed). Set from the effective policy on routes that ask for it; a client-sent
/// copy is always removed.
pub const LABEL_POLICY: &str = "x-prom-label-policy";

/// Whether `name` is an underscore spelling of a header Tollgate sets or reads
/// (`x_tollgate_account`, `X_Scope_OrgID`): upstreams that fold `_` into `-` (CGI, many
/// frameworks) would take it for the real one. Such headers are removed, never passed on.
pub fn is_underscore_alias(name: &str) -> bool {
    // A byte loop: header names are short, and most have no `_`.
    if !name.bytes().any(|b| b == b'_') {
        return false;
    }
    let folded: String = name
        .chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    folded.starts_with(TOLLGATE_PREFIX)
        || [
            AUTHORIZATION,
            SCOPE_ORG_ID,
            FORWARDED_TENANT_ID,
            LABEL_POLICY,
        ]
        .contains(&folded.as_str())
}
