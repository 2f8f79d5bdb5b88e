//! Token parsing, the Authorization header, and redaction of token-shaped text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::token::{Token, redact};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = Token::parse(text) {
        assert_eq!(token.expose_secret(), text);
        assert!(
            !format!("{token:?}").contains(text),
            "Debug shows the token"
        );
        assert!(!token.hint().contains(text), "the hint shows the token");
    }
    let _ = Token::from_authorization(text);
    // After redaction every `tgsa_` is a redaction marker: nothing token-shaped survives.
    let redacted = redact(text);
    for (at, _) in redacted.match_indices("tgsa_") {
        assert!(
            redacted[at..].starts_with("tgsa_<redacted>"),
            "unredacted token text in {redacted:?}"
        );
    }
});
