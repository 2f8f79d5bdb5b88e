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

/// A header value as the decision reads it, in both modes: each byte that breaks UTF-8 becomes
/// `!`, one byte at a time, as Envoy's `MessageUtil::sanitizeUtf8String` does to every header
/// it puts in an ext_authz `CheckRequest`. HTTP/1.1 and HTTP/2 allow such bytes (obs-text) in
/// values; the filter reads them raw from the host and must decide on what the server would
/// see. The value passed upstream is untouched either way.
pub fn sanitize_utf8(value: Vec<u8>) -> String {
    let mut bytes = match String::from_utf8(value) {
        Ok(text) => return text,
        Err(err) => err.into_bytes(),
    };
    let mut start = 0;
    while let Err(err) = std::str::from_utf8(&bytes[start..]) {
        let bad = start + err.valid_up_to();
        bytes[bad] = b'!';
        start = bad + 1;
    }
    // Every byte that broke UTF-8 is now `!`: this is the valid text, never the lossy copy.
    String::from_utf8(bytes).unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sanitize_utf8_replaces_each_bad_byte_as_envoy_does() {
        let cases: [(&[u8], &str); 9] = [
            (b"default", "default"),
            ("caf\u{e9}".as_bytes(), "caf\u{e9}"),
            (b"caf\xe9", "caf!"),
            (b"d\xe9fault", "d!fault"),
            (b"\xff", "!"),
            // A truncated sequence: each of its bytes on its own.
            (b"\xe2\x82", "!!"),
            (b"a\xe2\x82b", "a!!b"),
            // Overlong and surrogate encodings are not UTF-8 either.
            (b"\xc0\xaf", "!!"),
            (b"\xed\xa0\x80x", "!!!x"),
        ];
        for (input, expected) in cases {
            assert_eq!(sanitize_utf8(input.to_vec()), expected, "{input:?}");
        }
    }

    proptest! {
        /// Length kept, valid text unchanged, every changed byte a `!` where the input was not
        /// UTF-8 (the upstream sees the input; the decision may not read more into it).
        #[test]
        fn sanitize_utf8_changes_only_bad_bytes(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let output = sanitize_utf8(input.clone());
            prop_assert_eq!(output.len(), input.len());
            if let Ok(text) = std::str::from_utf8(&input) {
                prop_assert_eq!(output.as_str(), text);
            }
            for (i, (a, b)) in input.iter().zip(output.bytes()).enumerate() {
                if a != &b {
                    prop_assert_eq!(b, b'!');
                    prop_assert!(*a >= 0x80, "byte {} ({:#x}) was ASCII", i, a);
                }
            }
        }
    }
}
