//! The page's files, embedded in the binary. A request path only ever selects one of these by
//! exact name: nothing from a request reaches the filesystem.

/// `(path, content type, bytes)`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../../assets/index.html"),
    ),
    (
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/app.js"),
    ),
    (
        "/assets/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/style.css"),
    ),
    (
        "/assets/vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "/assets/vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/vendor/uPlot.min.css"),
    ),
];

/// The embedded file for `path`, if there is one.
pub(super) fn lookup(path: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, ty, body)| (*ty, *body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_names_resolve() {
        assert!(lookup("/").is_some());
        assert!(lookup("/assets/app.js").is_some());
        assert!(lookup("/assets/../Cargo.toml").is_none());
        assert!(lookup("/etc/passwd").is_none());
        assert!(lookup("/assets/app.js/").is_none());
    }
}
