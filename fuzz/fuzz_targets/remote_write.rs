//! Prometheus remote write 1.0 bodies (the protobuf inside the snappy block) under four label
//! policies: decoded, checked, forced and decoded again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::Policy;
use tollgate_core::remote_write::{
    WriteLimits, check, decode_labels_for_tests, force, forced_labels,
};

const POLICIES: &[&str] = &[
    r#"{kube_namespace="team-a"}"#,
    r#"{kube_namespace="team-a", env=~"prod|dev"}"#,
    r#"{team="a"} or {team="b"}"#,
    r#"{secret!="yes"}"#,
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the policy; the rest is the uncompressed WriteRequest, compressed
    // here so the fuzzer searches the protobuf, not snappy.
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let Some(text) = POLICIES.get(usize::from(pick) % POLICIES.len()) else {
        return;
    };
    let Ok(policy) = Policy::parse(text) else {
        return;
    };
    let Ok(compressed) = snap::raw::Encoder::new().compress_vec(body) else {
        return;
    };
    let limits = WriteLimits::default();
    let checked = check(&policy, &compressed, &limits);
    let Ok(forced) = force(&policy, &compressed, &limits) else {
        return;
    };
    // A forced body passes the check, carries every forced label, and forcing it again
    // changes nothing.
    assert!(
        check(&policy, &forced, &limits).is_ok(),
        "a forced body fails the check"
    );
    let series = decode_labels_for_tests(&forced).expect("a forced body decodes");
    for labels in &series {
        for (name, value) in forced_labels(&policy) {
            assert!(
                labels.iter().any(|(n, v)| n == name && v == value),
                "{name}={value} missing from {labels:?}"
            );
        }
        assert!(
            labels.windows(2).all(|w| w[0].0 <= w[1].0),
            "labels not sorted: {labels:?}"
        );
    }
    let again = force(&policy, &forced, &limits).expect("forcing twice");
    assert_eq!(
        snap::raw::Decoder::new().decompress_vec(&again).ok(),
        snap::raw::Decoder::new().decompress_vec(&forced).ok(),
        "forcing is idempotent"
    );
    // What the check accepted, forcing keeps as sent (apart from label order).
    if checked.is_ok() {
        let before = decode_labels_for_tests(&compressed).expect("a checked body decodes");
        assert_eq!(before.len(), series.len());
    }
});
