//! The page's files, embedded in the binary. A request path only ever selects one of these by
//! exact name: nothing from a request reaches the filesystem.

const JS: &str = "text/javascript; charset=utf-8";

/// A file under `memwatch/assets/`, served at `/assets/NAME`.
macro_rules! asset {
    ($name:literal, $ty:expr) => {
        (
            concat!("/assets/", $name),
            $ty,
            include_bytes!(concat!("../../../assets/", $name)),
        )
    };
}

/// `(path, content type, bytes)`. The page's script is ES modules: `index.html` loads `app.js`,
/// which imports the others (each must be here, or the page does not start).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../../assets/index.html"),
    ),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("chart.js", JS),
    asset!("dom.js", JS),
    asset!("flame.js", JS),
    asset!("format.js", JS),
    asset!("header.js", JS),
    asset!("live.js", JS),
    asset!("load.js", JS),
    asset!("log_lines.js", JS),
    asset!("requests.js", JS),
    asset!("routes.js", JS),
    asset!("series.js", JS),
    asset!("state.js", JS),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("vendor/uPlot.iife.min.js", JS),
    asset!("vendor/uPlot.min.css", "text/css; charset=utf-8"),
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

    /// Every module in `assets/` is served as JavaScript, and so is every module one imports
    /// (`from './NAME.js'`): a module left out of `ASSETS` would stop the page at its import.
    #[test]
    fn every_module_and_import_is_served_as_javascript() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut modules = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".js") {
                modules.push(name);
            }
        }
        assert!(modules.len() > 1, "{modules:?}");
        for (_, _, body) in ASSETS.iter().filter(|(_, ty, _)| *ty == JS) {
            let text = std::str::from_utf8(body).unwrap();
            for import in text.split("from './").skip(1) {
                modules.push(import.split('\'').next().unwrap().to_owned());
            }
        }
        for name in modules {
            let served = lookup(&format!("/assets/{name}"));
            assert_eq!(served.map(|(ty, _)| ty), Some(JS), "{name} is not served");
        }
    }
}
