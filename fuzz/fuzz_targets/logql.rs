//! LogQL enforcement: the rewrite of `query` and `match[]` and the check of bodies, under
//! several label policies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::Policy;
use tollgate_core::logql::{LogqlEnforcer, LogqlError, check_within};

const POLICIES: &[&str] = &[
    r#"{namespace="team-a"}"#,
    r#"{namespace=~"team-(a|b)", env!="prod"}"#,
    r#"{cluster!~"x.*", job="api"}"#,
    r#"{job="a"} or {job="b"}"#,
];

/// Input: a policy digit (index into POLICIES), a kind (`q` query, `s` selector, `b` body
/// check), then the text. Seeds are readable: `0qsum(rate({app="x"}[5m]))`.
fn split(data: &[u8]) -> Option<(&'static str, u8, &str)> {
    let [policy, kind, text @ ..] = data else {
        return None;
    };
    let policy = POLICIES[usize::from(policy.wrapping_sub(b'0')) % POLICIES.len()];
    Some((policy, *kind, std::str::from_utf8(text).ok()?))
}

fuzz_target!(|data: &[u8]| {
    let Some((policy, kind, text)) = split(data) else {
        return;
    };
    let policy = Policy::parse(policy).unwrap();
    let enforcer = LogqlEnforcer::new(&policy).unwrap().unwrap();
    let selector_only = kind == b's';
    let rewrite = |text: &str| {
        if selector_only {
            enforcer.rewrite_selector("match[]", text)
        } else {
            enforcer.rewrite_query("query", text)
        }
    };
    if kind == b'b' {
        // What ext_authz allows in a body, the filter would allow as a URL parameter (a
        // conflict aside: an empty selector the emptiness check could not see).
        if check_within(&policy, "query", text, false).is_ok() {
            match enforcer.rewrite_query("query", text) {
                Ok(_) | Err(LogqlError::Conflict { .. }) => {}
                Err(err) => panic!("{text:?} is within the policy but its rewrite fails: {err}"),
            }
        }
        return;
    }
    match rewrite(text) {
        Err(LogqlError::VerificationFailed) => {
            panic!("the rewrite of {text:?} failed its own verification")
        }
        Err(_) => {}
        // Every selector of the rewritten text carries the policy (verified), so rewriting it
        // again inserts nothing: the text the upstream gets is a fixed point.
        Ok(once) => match rewrite(&once) {
            Ok(twice) => assert_eq!(once, twice, "rewriting {text:?} again changed it"),
            Err(err) => panic!("the rewrite of {text:?}, {once:?}, does not rewrite: {err}"),
        },
    }
});
