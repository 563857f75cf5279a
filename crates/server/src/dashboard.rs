//! The dashboard: the single-page app in `web/` (plain JS modules, CSS and
//! the vendored MQTT.js and uPlot), embedded into the binary at build time
//! and served at `/` (the page) and under `/ui/` (everything it loads).
//!
//! The page talks to the broker like any browser would: MQTT over WebSocket
//! on `/mqtt` and the management API; this module only serves files, gzip
//! compressed for browsers that accept it (MQTT.js is 330 KB, 95 KB
//! compressed: it matters on a phone), each compressed once per process.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file of `web/`.
struct Asset {
    /// Path below `web/`, as requested below `/ui/`.
    path: &'static str,
    bytes: &'static [u8],
}

/// Lists the files of `web/` to embed. `include_bytes!` makes cargo rebuild
/// when one changes; a test fails when a file of `web/` is missing here.
macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset {
            path: $path,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $path)),
        }),*]
    };
}

static ASSETS: &[Asset] = assets![
    "index.html",
    "favicon.svg",
    "style.css",
    "js/app.js",
    "js/chart.js",
    "js/client.js",
    "js/clients.js",
    "js/dom.js",
    "js/monitor.js",
    "js/overview.js",
    "js/session.js",
    "js/stats.js",
    "js/topics.js",
    "js/topictree.js",
    "vendor/README.md",
    "vendor/LICENSE-mqtt.md",
    "vendor/LICENSE-uplot.txt",
    "vendor/mqtt.min.js",
    "vendor/uPlot.iife.min.js",
    "vendor/uPlot.min.css",
];

/// The page's Content-Security-Policy: its own scripts and styles only;
/// WebSocket and HTTP to anywhere, because the built-in client may connect
/// to another broker; blob: workers, which MQTT.js uses for timers that
/// background tabs do not throttle (keep alive).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self' ws: wss: http: https:; worker-src 'self' blob:; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The dashboard's routes, to merge into the HTTP port's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// The file at `path` (below `web/`), or 404; 304 when the browser's copy
/// (`If-None-Match`) is current.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such dashboard file\n",
        )
            .into_response();
    };
    let asset = &ASSETS[index];
    let gzip = accepts_gzip(headers)
        .then(|| gzipped()[index].as_deref())
        .flatten();
    // Each representation has its own strong tag.
    let etag = match gzip {
        Some(_) => &gzip_etags()[index],
        None => &etags()[index],
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag.as_str()));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        gzip.unwrap_or(asset.bytes).into_response()
    };
    let h = response.headers_mut();
    if gzip.is_some() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    // Caches must keep the two representations apart.
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(asset.path)),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidate every time: the files change with the binary, and a
    // revalidation costs one 304.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.path == "index.html" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}

/// A strong ETag per asset (same order as [`ASSETS`]), hashed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                // DefaultHasher::new() has fixed keys: the same bytes give
                // the same tag in every process of this build.
                let mut h = DefaultHasher::new();
                a.bytes.hash(&mut h);
                format!("\"{:016x}-{:x}\"", h.finish(), a.bytes.len())
            })
            .collect()
    })
}

/// Whether the request's `Accept-Encoding` takes gzip (not with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// Each asset gzip-compressed (same order as [`ASSETS`]), compressed on
/// first use; `None` where compression does not save a tenth (the SVG
/// icon, already small files).
fn gzipped() -> &'static [Option<Vec<u8>>] {
    static GZIPPED: OnceLock<Vec<Option<Vec<u8>>>> = OnceLock::new();
    GZIPPED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                use std::io::Write;
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                // Writing to a Vec cannot fail.
                enc.write_all(a.bytes).ok()?;
                let z = enc.finish().ok()?;
                (z.len() * 10 < a.bytes.len() * 9).then_some(z)
            })
            .collect()
    })
}

/// The ETags of the compressed representations.
fn gzip_etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        etags()
            .iter()
            .map(|t| format!("{}-gz\"", t.trim_end_matches('"')))
            .collect()
    })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("md" | "txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, etag: Option<&str>) -> Response {
        get_encoded(path, etag, None).await
    }

    async fn get_encoded(path: &str, etag: Option<&str>, accept: Option<&str>) -> Response {
        let mut req = Request::builder().uri(path);
        if let Some(t) = etag {
            req = req.header(header::IF_NONE_MATCH, t);
        }
        if let Some(a) = accept {
            req = req.header(header::ACCEPT_ENCODING, a);
        }
        let req = req.body(Body::empty()).unwrap();
        router::<()>().oneshot(req).await.unwrap()
    }

    async fn body(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), 10 << 20)
            .await
            .unwrap()
            .to_vec()
    }

    fn header_of(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn index_is_the_page_with_a_strict_policy() {
        let r = get("/", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header_of(&r, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert!(header_of(&r, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
        let html = String::from_utf8(body(r).await).unwrap();
        assert!(html.contains("<title>midge</title>"), "{html}");
        assert!(html.contains("ui/js/app.js"));
    }

    #[tokio::test]
    async fn assets_have_their_types_and_bytes() {
        for (path, ty) in [
            ("/ui/js/app.js", "text/javascript; charset=utf-8"),
            ("/ui/style.css", "text/css; charset=utf-8"),
            ("/ui/favicon.svg", "image/svg+xml"),
            ("/ui/vendor/mqtt.min.js", "text/javascript; charset=utf-8"),
        ] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header_of(&r, header::CONTENT_TYPE), ty, "{path}");
            assert_eq!(header_of(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            let want = ASSETS
                .iter()
                .find(|a| format!("/ui/{}", a.path) == path)
                .unwrap();
            assert_eq!(body(r).await, want.bytes, "{path}");
        }
    }

    #[tokio::test]
    async fn unknown_and_escaping_paths_are_404() {
        for path in [
            "/ui/nope.js",
            "/ui/../Cargo.toml",
            "/ui/%2e%2e/Cargo.toml",
            "/ui/",
            "/ui/js",
        ] {
            assert_eq!(
                get(path, None).await.status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn a_current_etag_gets_304_and_a_stale_one_the_file() {
        let r = get("/ui/js/app.js", None).await;
        let etag = header_of(&r, header::ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.len() > 4, "{etag}");
        let again = get("/ui/js/app.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(body(again).await.is_empty());
        let listed = get("/ui/js/app.js", Some(&format!("\"x\", {etag}"))).await;
        assert_eq!(listed.status(), StatusCode::NOT_MODIFIED);
        let stale = get("/ui/js/app.js", Some("\"0-0\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
        assert!(!body(stale).await.is_empty());
    }

    fn gunzip(z: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[tokio::test]
    async fn browsers_that_accept_gzip_get_it_and_the_same_bytes() {
        let want = ASSETS
            .iter()
            .find(|a| a.path == "vendor/mqtt.min.js")
            .unwrap()
            .bytes;
        let plain = get("/ui/vendor/mqtt.min.js", None).await;
        assert_eq!(header_of(&plain, header::CONTENT_ENCODING), "");
        assert_eq!(header_of(&plain, header::VARY), "accept-encoding");
        let plain_tag = header_of(&plain, header::ETAG).to_owned();
        let r = get_encoded("/ui/vendor/mqtt.min.js", None, Some("gzip, deflate, br")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, header::CONTENT_ENCODING), "gzip");
        assert_eq!(
            header_of(&r, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        let tag = header_of(&r, header::ETAG).to_owned();
        assert_ne!(tag, plain_tag, "each representation has its own tag");
        let z = body(r).await;
        assert!(z.len() * 2 < want.len(), "{} of {}", z.len(), want.len());
        assert_eq!(gunzip(&z), want);
        // Revalidation per representation.
        let again = get_encoded("/ui/vendor/mqtt.min.js", Some(&tag), Some("gzip")).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            get("/ui/vendor/mqtt.min.js", Some(&tag)).await.status(),
            StatusCode::OK
        );
        // The index page too, with its policy.
        let page = get_encoded("/", None, Some("gzip")).await;
        assert!(header_of(&page, header::CONTENT_SECURITY_POLICY).contains("script-src"));
        let html = String::from_utf8(gunzip(&body(page).await)).unwrap();
        assert!(html.contains("<title>midge</title>"));
    }

    #[tokio::test]
    async fn gzip_refused_or_not_asked_for_gets_the_plain_file() {
        for accept in ["gzip;q=0", "identity", "br", "deflate, gzip; q=0.0"] {
            let r = get_encoded("/ui/vendor/mqtt.min.js", None, Some(accept)).await;
            assert_eq!(header_of(&r, header::CONTENT_ENCODING), "", "{accept}");
        }
        for accept in ["GZIP", "*", "br;q=1, gzip;q=0.5"] {
            let r = get_encoded("/ui/vendor/mqtt.min.js", None, Some(accept)).await;
            assert_eq!(header_of(&r, header::CONTENT_ENCODING), "gzip", "{accept}");
        }
    }

    /// Every file under `web/` is embedded, and every embedded file exists:
    /// a file added to `web/` but not to [`ASSETS`] would be a 404 in the
    /// browser only.
    #[test]
    fn every_file_of_web_is_embedded() {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else {
                    let rel = p.strip_prefix(root).unwrap();
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
        let mut on_disk = Vec::new();
        walk(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn index_links_only_embedded_files() {
        let html = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        for part in html.split(['"', '\'']) {
            if let Some(rest) = part.strip_prefix("ui/") {
                assert!(
                    ASSETS.iter().any(|a| a.path == rest),
                    "index.html links {part}, which is not embedded"
                );
            }
        }
    }
}
