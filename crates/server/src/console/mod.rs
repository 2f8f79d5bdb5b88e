//! The web console: hand-written HTML, CSS and JavaScript (ES modules, no build step), compiled
//! into the binary and served under `/console/` on the admin port. Nothing is fetched from
//! elsewhere: the console calls the admin API of the same origin with the token the user pasted,
//! which it keeps in `sessionStorage` only.
//!
//! May use: axum. The console is a client of the admin API like the CLI; it has no server-side
//! logic of its own, so this module only serves files, each with a strict Content-Security-Policy
//! (no inline script or style, nothing from another origin) and a strong ETag.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The policy of every console response. `connect-src 'self'`: the API of this origin only;
/// `frame-ancestors 'none'`: no clickjacking; `form-action 'self'`, `base-uri 'none'`: no
/// injected form or base can send input elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/console.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/api.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/favicon.svg"),
    },
];

/// Strong ETags: the SHA-256 of each asset's bytes, computed once per process.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// The headers every console response carries, the 404 included.
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some((index, asset)) = ASSETS.iter().enumerate().find(|(_, a)| a.name == name) else {
        return secure((StatusCode::NOT_FOUND, "not found").into_response());
    };
    let etag = ETAGS.get(index).map(String::as_str).unwrap_or_default();
    // `no-cache`: the browser revalidates each load (a 304 when unchanged), so an upgraded
    // server never runs with a stale script.
    let cache = [
        (header::CACHE_CONTROL, "no-cache".to_owned()),
        (header::ETAG, etag.to_owned()),
    ];
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if matches {
        return secure((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    secure(
        (
            cache,
            [(header::CONTENT_TYPE, asset.content_type)],
            asset.body,
        )
            .into_response(),
    )
}

/// `/console/` and its assets; `/console` redirects to `/console/` so relative module paths
/// resolve.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/console",
            get(|| async { secure(Redirect::permanent("/console/").into_response()) }),
        )
        .route(
            "/console/",
            get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
        )
        .route(
            "/console/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move {
                serve(&file, &headers)
            }),
        )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn no_asset_has_inline_script_style_or_a_remote_url() {
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.body).unwrap();
            let why = asset.name;
            if asset.name.ends_with(".html") {
                assert!(!text.contains("<style"), "{why}: inline style element");
                assert!(!text.contains(" style="), "{why}: inline style attribute");
                assert!(!has_event_handler(text), "{why}: inline event handler");
                for script in text.split("<script").skip(1) {
                    assert!(script.contains("src="), "{why}: inline script");
                }
            }
            if asset.name.ends_with(".js") {
                assert!(!text.contains("innerHTML"), "{why}: innerHTML");
                assert!(!text.contains("outerHTML"), "{why}: outerHTML");
                assert!(!text.contains("insertAdjacentHTML"), "{why}: HTML strings");
                assert!(!text.contains("localStorage"), "{why}: localStorage");
                assert!(!text.contains("document.cookie"), "{why}: cookies");
                assert!(!text.contains("eval("), "{why}: eval");
            }
            // Nothing from another origin (the SVG namespace is a name, not a fetch).
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://"), "{why}: remote http URL");
            assert!(!text.contains("https://"), "{why}: remote https URL");
        }
    }

    /// An attribute such as ` onclick=`.
    fn has_event_handler(html: &str) -> bool {
        html.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        })
    }
}
