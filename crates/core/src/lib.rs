//! Tollgate's pure decision core, shared by the proxy-wasm filter and the server so that both
//! decide the same way. No IO, no async, no host calls: it builds natively and for `wasm32-wasip1`.

pub mod answer;
pub mod decision;
pub mod denial;
pub mod form;
pub mod headers;
pub mod logql;
pub mod membership;
pub mod pipeline;
pub mod promql;
pub mod regex_dialect;
pub mod route;
pub mod scope;
pub mod selector;
pub mod tenants;
pub mod token;
pub mod write;

pub use decision::{Allow, Decision, Deny, DenyReason, Grant, RequestView, decide};
pub use pipeline::{Authorization, Authorized, GrantLookup, authorize, authorize_grant};
pub use route::{RouteRule, RouteTable};
pub use scope::{Role, Scope, ScopeSet};
pub use selector::{Policy, PolicyLimits};
pub use tenants::ReadTenants;
pub use token::{Token, TokenError, TokenHash};
