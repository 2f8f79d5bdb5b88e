//! The admin REST API: arbitrary request lines, query strings and JSON bodies on every endpoint,
//! as every kind of caller, through the real router and store. No input may produce a 5xx, and
//! no response may carry a seeded token (issued tokens appear only in the answer creating them).
#![no_main]

use axum::http::Method;
use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::harness;

/// Input: `<caller digit> <METHOD> <uri>\n<body>`. Caller 0 is the bootstrap admin, 1 to 4 the
/// seeded accounts, 5 no credential; anything else sends the rest of the first line's third
/// word onward as the credential. Seeds are readable:
/// `1 POST /api/v1/serviceaccounts\n{"name":"x","role":"viewer"}`.
fn split(data: &[u8]) -> Option<(u8, &str, &str, Option<&str>, &[u8])> {
    let newline = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (line, body) = data.split_at(newline);
    let body = body.get(1..).unwrap_or_default();
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.splitn(4, ' ');
    let caller = words.next()?.bytes().next()?.wrapping_sub(b'0');
    let method = words.next()?;
    let uri = words.next()?;
    Some((caller, method, uri, words.next(), body))
}

fuzz_target!(|data: &[u8]| {
    let Some((caller, method, uri, raw_credential, body)) = split(data) else {
        return;
    };
    let harness = harness();
    let bearer = match caller {
        0 => Some(harness.admin_token.as_str()),
        n @ 1..=4 => Some(harness.tokens[usize::from(n) - 1].as_str()),
        5 => None,
        _ => Some(raw_credential.unwrap_or_default()),
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    // The store outlives each input: changes to the harness's own accounts (ids 1 to 5) would
    // lock every later input out, so they are left to the integration tests.
    // As the router reads the id: percent-decoded, then parsed as an i64 ("%31", "+01" are 1).
    let account = uri.split('?').next().unwrap_or_default().split('/').nth(4);
    let own = account
        .and_then(|id| percent_decode(id).trim().parse::<i64>().ok())
        .is_some_and(|id| (1..=5).contains(&id));
    if own && method != Method::GET {
        return;
    }
    let Some((status, answer)) = harness.try_call(method, uri, bearer, body.to_vec()) else {
        return;
    };
    let text = String::from_utf8_lossy(&answer);
    if std::env::var_os("TOLLGATE_FUZZ_TRACE").is_some() {
        eprintln!("{status} {uri}: {text}");
    }
    assert!(!status.is_server_error(), "{status} for {uri}: {text}");
    for token in harness.tokens.iter().chain([&harness.admin_token]) {
        assert!(
            !text.contains(token.as_str()),
            "a seeded token in the answer to {uri}"
        );
    }
});

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
