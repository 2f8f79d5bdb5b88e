//! Label policies and selectors as admins and clients (`x-tollgate-labels`) write them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::{Policy, PolicyLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::parse(text) else {
        return;
    };
    let _ = policy.validate(&PolicyLimits::default());
    // The canonical text is what is stored and sent upstream in x-tollgate-labels: it must
    // parse back to the same policy, and be a valid header value.
    let canonical = policy.to_string();
    let again = Policy::parse(&canonical)
        .unwrap_or_else(|err| panic!("canonical {canonical:?} does not reparse: {err}"));
    assert_eq!(again, policy, "canonical {canonical:?}");
    assert_eq!(again.to_string(), canonical);
    assert!(
        !canonical.bytes().any(|b| b < 0x20 || b == 0x7f),
        "control character in canonical {canonical:?}"
    );
    // A policy contains itself, except one with a selector that provably selects nothing:
    // such a selector is never taken as contained (it is refused wherever it is supplied).
    assert_eq!(
        policy.contains(&policy),
        policy.selector_selecting_nothing().is_none(),
        "{canonical}: contains itself unless it has an empty selector"
    );
    assert!(Policy::unrestricted().contains(&policy));
});
