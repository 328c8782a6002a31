//! Route normalisation: request targets → low-cardinality routes.
//!
//! A route is what requests are grouped by: `/users/42/posts?page=2` becomes `/users/{id}/posts`.
//! [`Router::route`] turns a raw request target into a route:
//!
//! 1. The query string and any fragment are dropped (everything from the first `?` or `#`).
//!    Percent-encoding is left as sent: `/a%2Fb` is one segment `a%2Fb`.
//! 2. Bytes that are not UTF-8 are replaced with U+FFFD, and so are control characters.
//! 3. `*` (the `OPTIONS *` target) stays `*`. An absolute-form target (`http://host/path`) is
//!    reduced to its path (`/` if it has none). Any other target that does not start with `/`
//!    (the authority form of `CONNECT host:443`, or junk) becomes [`AUTHORITY_ROUTE`].
//! 4. The first user pattern that matches the path's segments is the route, literally.
//! 5. Otherwise each identifier-like segment becomes [`ID_PLACEHOLDER`] (see [`is_id_segment`]
//!    for the exact rule) and the other segments are kept as they are.
//! 6. A route longer than [`MAX_ROUTE_LEN`] bytes is cut and ends with [`TRUNCATION_MARKER`].
//!
//! User patterns (`--route PATTERN`) are paths whose segments are literals, `{name}` (exactly one
//! non-empty segment) or, as the last segment only, `*` (the rest of the path: one or more
//! segments, possibly empty, so `/static/*` matches `/static/` and `/static/a/b.css` but not
//! `/static`). Literals match case-sensitively and without decoding.
//!
//! [`redact_query`] is the separate helper used by `--redact-query` to drop the query from the
//! stored target itself.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// Longest route, in bytes, marker included.
pub const MAX_ROUTE_LEN: usize = 256;
/// Appended to a route that was cut at [`MAX_ROUTE_LEN`].
pub const TRUNCATION_MARKER: &str = "…";
/// What identifier-like segments become.
pub const ID_PLACEHOLDER: &str = "{id}";
/// The route of targets that are neither a path, `*`, nor absolute-form.
pub const AUTHORITY_ROUTE: &str = "{authority}";
/// Bytes of a target looked at; the rest cannot change a route already longer than
/// [`MAX_ROUTE_LEN`] except through user patterns, which are bounded by that length too.
const MAX_TARGET_SCAN: usize = 8 * 1024;

/// A `--route` pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid route pattern {pattern:?}: {problem}")]
pub struct RouteError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub problem: PatternProblem,
}

/// What is wrong with a route pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternProblem {
    /// The pattern is the empty string.
    #[error("the pattern is empty")]
    Empty,
    /// The pattern does not start with `/`.
    #[error("a pattern must start with '/'")]
    NoLeadingSlash,
    /// The pattern contains `?` or `#`; routes never include a query.
    #[error("a pattern must not contain '?' or '#': routes never include the query string")]
    QueryOrFragment,
    /// Whitespace or a control character.
    #[error("a pattern must not contain whitespace or control characters")]
    InvalidCharacter,
    /// `*` somewhere other than as the whole last segment.
    #[error("'*' is only allowed as the whole last segment, as in /static/*")]
    MisplacedWildcard,
    /// A segment with braces that is not a `{name}` placeholder.
    #[error(
        "segment {segment:?} is not a placeholder: write {{name}} with letters, digits, '_' or '-' \
         as the whole segment"
    )]
    BadPlaceholder {
        /// The offending segment.
        segment: String,
    },
    /// Longer than [`MAX_ROUTE_LEN`] bytes.
    #[error("a pattern must be at most {max} bytes long", max = MAX_ROUTE_LEN)]
    TooLong,
}

/// One segment of a [`RoutePattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternSegment {
    /// Matches exactly this text.
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Param,
    /// `*` as the last segment: one or more remaining segments.
    Rest,
}

/// A validated user route pattern such as `/users/{name}/posts/{id}` or `/static/*`.
#[derive(Clone, PartialEq, Eq)]
pub struct RoutePattern {
    raw: String,
    segments: Vec<PatternSegment>,
}

impl RoutePattern {
    /// Validates `pattern`.
    pub fn parse(pattern: &str) -> Result<Self, RouteError> {
        let fail = |problem| RouteError {
            pattern: pattern.to_owned(),
            problem,
        };
        if pattern.is_empty() {
            return Err(fail(PatternProblem::Empty));
        }
        if pattern.len() > MAX_ROUTE_LEN {
            return Err(fail(PatternProblem::TooLong));
        }
        if pattern.contains(['?', '#']) {
            return Err(fail(PatternProblem::QueryOrFragment));
        }
        if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail(PatternProblem::InvalidCharacter));
        }
        let Some(path) = pattern.strip_prefix('/') else {
            return Err(fail(PatternProblem::NoLeadingSlash));
        };
        let parts: Vec<&str> = path.split('/').collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let segment = if *part == "*" {
                if i != last {
                    return Err(fail(PatternProblem::MisplacedWildcard));
                }
                PatternSegment::Rest
            } else if part.contains('*') {
                return Err(fail(PatternProblem::MisplacedWildcard));
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !valid {
                    return Err(fail(PatternProblem::BadPlaceholder {
                        segment: (*part).to_owned(),
                    }));
                }
                PatternSegment::Param
            } else if part.contains(['{', '}']) {
                return Err(fail(PatternProblem::BadPlaceholder {
                    segment: (*part).to_owned(),
                }));
            } else {
                PatternSegment::Literal((*part).to_owned())
            };
            segments.push(segment);
        }
        Ok(Self {
            raw: pattern.to_owned(),
            segments,
        })
    }

    /// The pattern as written; also the route of every target it matches.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether a path's segments (the path without its leading `/`, split at `/`) match.
    fn matches(&self, path_segments: &[&str]) -> bool {
        for (i, pattern) in self.segments.iter().enumerate() {
            let Some(segment) = path_segments.get(i) else {
                return false;
            };
            match pattern {
                PatternSegment::Rest => return true,
                PatternSegment::Param if segment.is_empty() => return false,
                PatternSegment::Param => {}
                PatternSegment::Literal(literal) if literal != segment => return false,
                PatternSegment::Literal(_) => {}
            }
        }
        path_segments.len() == self.segments.len()
    }
}

impl fmt::Debug for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RoutePattern").field(&self.raw).finish()
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for RoutePattern {
    type Err = RouteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Maps request targets to routes: user patterns first (in the order given), then the default
/// identifier normalisation. See the [module documentation](self) for the exact rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Router {
    patterns: Vec<RoutePattern>,
}

impl Router {
    /// A router with the given user patterns, validated; the first invalid one is the error.
    pub fn new<I, S>(patterns: I) -> Result<Self, RouteError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = patterns
            .into_iter()
            .map(|p| RoutePattern::parse(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// The user patterns, in matching order.
    pub fn patterns(&self) -> &[RoutePattern] {
        &self.patterns
    }

    /// The route of a raw request target (bytes as sent, or a `&str`).
    pub fn route<T: AsRef<[u8]> + ?Sized>(&self, target: &T) -> String {
        let bytes = target.as_ref();
        let bytes = bytes.get(..MAX_TARGET_SCAN).unwrap_or(bytes);
        let text = sanitize(strip_query(bytes));
        let path = match origin_path(&text) {
            OriginPath::Path(path) => path,
            OriginPath::Asterisk => return "*".to_owned(),
            OriginPath::Authority => return AUTHORITY_ROUTE.to_owned(),
        };
        let segments: Vec<&str> = path.get(1..).unwrap_or_default().split('/').collect();
        if let Some(pattern) = self.patterns.iter().find(|p| p.matches(&segments)) {
            return pattern.raw.clone();
        }
        let mut route = String::with_capacity(path.len().min(MAX_ROUTE_LEN + 8));
        for segment in &segments {
            route.push('/');
            route.push_str(if is_id_segment(segment) {
                ID_PLACEHOLDER
            } else {
                segment
            });
            if route.len() > MAX_ROUTE_LEN {
                break;
            }
        }
        bound(route)
    }
}

/// Routes already worked out, by the target's path: a busy server asks for the same few paths
/// over and over, and working a route out takes three allocations. Bounded: once it holds
/// [`RouteCache::CAPACITY`] paths (hostile traffic can send endless distinct ones), further
/// paths are worked out each time.
#[derive(Debug, Default)]
pub struct RouteCache(rustc_hash::FxHashMap<Box<[u8]>, std::sync::Arc<str>>);

impl RouteCache {
    pub const CAPACITY: usize = 4096;

    /// `router.route(target)`, from the cache when its path was seen before.
    pub fn route(&mut self, router: &Router, target: &str) -> std::sync::Arc<str> {
        let bytes = target.as_bytes();
        let path = strip_query(bytes.get(..MAX_TARGET_SCAN).unwrap_or(bytes));
        if let Some(route) = self.0.get(path) {
            return route.clone();
        }
        let route: std::sync::Arc<str> = router.route(target).into();
        if self.0.len() < Self::CAPACITY {
            self.0.insert(path.into(), route.clone());
        }
        route
    }
}

/// The target without its query string (and without a fragment, which clients should not send
/// but hostile ones may), as text with invalid UTF-8 replaced. Used when `--redact-query` is on,
/// before the target is stored anywhere. Borrows when the kept part is valid UTF-8.
pub fn redact_query<T: AsRef<[u8]> + ?Sized>(target: &T) -> Cow<'_, str> {
    String::from_utf8_lossy(strip_query(target.as_ref()))
}

/// Whether a path segment is an identifier that becomes [`ID_PLACEHOLDER`]:
///
/// * decimal: one or more ASCII digits (`42`, `2024`);
/// * a UUID in 8-4-4-4-12 hex form, any case;
/// * hex: only ASCII hex digits, and either at least 16 of them (`deadbeefdeadbeef`, a 32-char
///   hash) or at least 8 with at least one decimal digit and at least one letter (`5f3a9c01`,
///   a short commit or object id). An 8–15 character all-letter hex word such as `deadbeef` or
///   `acceded` stays, since it is as likely to be a word.
///
/// Everything else, including mixed alphanumerics such as `v2`, `user_7` or `a1b2c3` (6 chars),
/// stays as it is.
pub fn is_id_segment(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if is_uuid(bytes) {
        return true;
    }
    if !bytes.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    let has_digit = bytes.iter().any(u8::is_ascii_digit);
    let has_letter = bytes.iter().any(u8::is_ascii_alphabetic);
    bytes.len() >= 16 || (bytes.len() >= 8 && has_digit && has_letter)
}

fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Everything before the first `?` or `#`.
fn strip_query(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(bytes.len());
    bytes.get(..end).unwrap_or(bytes)
}

/// Lossy UTF-8 with control characters replaced too.
fn sanitize(bytes: &[u8]) -> Cow<'_, str> {
    let text = String::from_utf8_lossy(bytes);
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        text
    }
}

#[derive(Debug, PartialEq, Eq)]
enum OriginPath<'a> {
    Path(&'a str),
    Asterisk,
    Authority,
}

/// The path of a target with its query removed: origin form as is, absolute form reduced to its
/// path, the empty target as `/`.
fn origin_path(target: &str) -> OriginPath<'_> {
    if target.is_empty() {
        return OriginPath::Path("/");
    }
    if target == "*" {
        return OriginPath::Asterisk;
    }
    if target.starts_with('/') {
        return OriginPath::Path(target);
    }
    if let Some((scheme, rest)) = target.split_once("://") {
        let mut chars = scheme.chars();
        let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if scheme_ok {
            return OriginPath::Path(rest.find('/').map_or("/", |i| &rest[i..]));
        }
    }
    OriginPath::Authority
}

/// Cuts a route longer than [`MAX_ROUTE_LEN`] at a character boundary and marks it.
fn bound(mut route: String) -> String {
    if route.len() <= MAX_ROUTE_LEN {
        return route;
    }
    let kept = crate::units::cut(&route, MAX_ROUTE_LEN - TRUNCATION_MARKER.len()).len();
    route.truncate(kept);
    route.push_str(TRUNCATION_MARKER);
    route
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_route(target: &str) -> String {
        Router::default().route(target)
    }

    #[test]
    fn query_is_dropped_from_routes() {
        assert_eq!(default_route("/search?q=secret&page=2"), "/search");
        assert_eq!(default_route("/a#frag"), "/a");
        assert_eq!(default_route("/?x=1"), "/");
        assert_eq!(default_route("?x=1"), "/");
        assert_eq!(default_route(""), "/");
    }

    #[test]
    fn numeric_uuid_and_hex_segments_become_id() {
        assert_eq!(default_route("/users/42/posts/7"), "/users/{id}/posts/{id}");
        assert_eq!(
            default_route("/orders/3F2504E0-4F89-11D3-9A0C-0305E82C3301/items"),
            "/orders/{id}/items"
        );
        assert_eq!(
            default_route("/blob/d41d8cd98f00b204e9800998ecf8427e"),
            "/blob/{id}"
        );
        assert_eq!(default_route("/commit/5f3a9c01"), "/commit/{id}");
        assert_eq!(default_route("/hash/deadbeefdeadbeef"), "/hash/{id}");
    }

    #[test]
    fn word_like_segments_stay() {
        assert_eq!(default_route("/api/v2/deadbeef"), "/api/v2/deadbeef");
        assert_eq!(default_route("/cafe/added/facade"), "/cafe/added/facade");
        assert_eq!(default_route("/a1b2c3/user_7"), "/a1b2c3/user_7");
        assert_eq!(default_route("/items/42.json"), "/items/42.json");
        // Not quite a UUID (wrong dash position) and not all hex: kept.
        assert_eq!(
            default_route("/x/3F2504E04-F89-11D3-9A0C-0305E82C3301"),
            "/x/3F2504E04-F89-11D3-9A0C-0305E82C3301"
        );
    }

    #[test]
    fn id_rule_edges() {
        assert!(is_id_segment("0"));
        assert!(is_id_segment("1234567"));
        assert!(!is_id_segment(""));
        assert!(!is_id_segment("abc1234")); // 7 chars, too short for mixed hex
        assert!(is_id_segment("abc12345"));
        assert!(!is_id_segment("abcdefab")); // 8 hex letters, no digit
        assert!(is_id_segment("abcdefabcdefabcd")); // 16 hex letters
        assert!(!is_id_segment("abcdefabcdefabc")); // 15
        assert!(!is_id_segment("１２３")); // full-width digits are not ASCII
    }

    #[test]
    fn empty_segments_and_trailing_slash_are_kept() {
        assert_eq!(default_route("/"), "/");
        assert_eq!(default_route("/users/"), "/users/");
        assert_eq!(default_route("/a//1"), "/a//{id}");
    }

    #[test]
    fn percent_encoding_is_not_decoded() {
        assert_eq!(default_route("/files/a%2Fb/12"), "/files/a%2Fb/{id}");
        assert_eq!(default_route("/%31%32"), "/%31%32");
    }

    #[test]
    fn special_target_forms() {
        assert_eq!(default_route("*"), "*");
        assert_eq!(default_route("http://example.com/users/9?x"), "/users/{id}");
        assert_eq!(default_route("https://example.com"), "/");
        assert_eq!(default_route("example.com:443"), AUTHORITY_ROUTE);
        assert_eq!(default_route("1bad://x/y"), AUTHORITY_ROUTE);
    }

    #[test]
    fn non_utf8_and_control_bytes_are_replaced() {
        assert_eq!(
            Router::default().route(b"/caf\xe9/1".as_slice()),
            "/caf\u{FFFD}/{id}"
        );
        assert_eq!(default_route("/a\u{1}b"), "/a\u{FFFD}b");
    }

    #[test]
    fn long_routes_are_cut_with_a_marker() {
        let long = format!("/{}", "x".repeat(1000));
        let route = default_route(&long);
        assert_eq!(route.len(), MAX_ROUTE_LEN);
        assert!(route.ends_with(TRUNCATION_MARKER));
        assert_eq!(
            route,
            format!(
                "/{}{TRUNCATION_MARKER}",
                "x".repeat(MAX_ROUTE_LEN - 1 - TRUNCATION_MARKER.len())
            )
        );
        // Many short segments: cut too, and the cut lands on a character boundary.
        let many = "/é".repeat(500);
        let route = default_route(&many);
        assert!(route.len() <= MAX_ROUTE_LEN);
        assert!(route.ends_with(TRUNCATION_MARKER));
        // Exactly at the limit: kept whole.
        let exact = format!("/{}", "w".repeat(MAX_ROUTE_LEN - 1));
        assert_eq!(default_route(&exact), exact);
        // Huge targets only cost the scan limit.
        let huge = format!("/{}", "q".repeat(1 << 20));
        assert_eq!(default_route(&huge).len(), MAX_ROUTE_LEN);
    }

    #[test]
    fn user_patterns_win_in_order() {
        let router = Router::new([
            "/users/{name}/posts/{id}",
            "/static/*",
            "/users/{name}",
            "/users/admin",
        ])
        .unwrap();
        assert_eq!(
            router.route("/users/alice/posts/3?x=1"),
            "/users/{name}/posts/{id}"
        );
        assert_eq!(router.route("/users/alice"), "/users/{name}");
        // The first matching pattern wins, even when a later one is more specific.
        assert_eq!(router.route("/users/admin"), "/users/{name}");
        assert_eq!(router.route("/static/css/site.css"), "/static/*");
        assert_eq!(router.route("/static/"), "/static/*");
        // `*` needs at least one segment after the prefix; `{name}` needs a non-empty one.
        assert_eq!(router.route("/static"), "/static");
        assert_eq!(router.route("/users//posts/3"), "/users//posts/{id}");
        // No pattern matches: defaults apply.
        assert_eq!(
            router.route("/users/alice/posts/3/comments/9"),
            "/users/alice/posts/{id}/comments/{id}"
        );
        // Literals match exactly, without decoding or case folding.
        assert_eq!(router.route("/Static/a"), "/Static/a");
        assert_eq!(router.patterns().len(), 4);
        assert_eq!(router.patterns()[1].as_str(), "/static/*");
    }

    #[test]
    fn root_and_catch_all_patterns() {
        let router = Router::new(["/"]).unwrap();
        assert_eq!(router.route("/?q=1"), "/");
        assert_eq!(router.route("/x"), "/x");
        let router = Router::new(["/*"]).unwrap();
        assert_eq!(router.route("/"), "/*");
        assert_eq!(router.route("/a/b/c"), "/*");
        assert_eq!(router.route("*"), "*");
    }

    #[test]
    fn invalid_patterns_are_typed_errors() {
        let problem = |p: &str| RoutePattern::parse(p).unwrap_err().problem;
        assert_eq!(problem(""), PatternProblem::Empty);
        assert_eq!(problem("users/{id}"), PatternProblem::NoLeadingSlash);
        assert_eq!(problem("/search?q={q}"), PatternProblem::QueryOrFragment);
        assert_eq!(problem("/a b"), PatternProblem::InvalidCharacter);
        assert_eq!(problem("/a/*/b"), PatternProblem::MisplacedWildcard);
        assert_eq!(problem("/static/*.css"), PatternProblem::MisplacedWildcard);
        assert_eq!(
            problem("/users/{}"),
            PatternProblem::BadPlaceholder {
                segment: "{}".into()
            }
        );
        assert_eq!(
            problem("/users/id-{id}"),
            PatternProblem::BadPlaceholder {
                segment: "id-{id}".into()
            }
        );
        assert_eq!(
            problem("/users/{a.b}"),
            PatternProblem::BadPlaceholder {
                segment: "{a.b}".into()
            }
        );
        assert_eq!(
            problem(&format!("/{}", "a".repeat(MAX_ROUTE_LEN))),
            PatternProblem::TooLong
        );

        let err = Router::new(["/ok/{id}", "/bad/{"]).unwrap_err();
        assert_eq!(err.pattern, "/bad/{");
        assert_eq!(
            err.to_string(),
            "invalid route pattern \"/bad/{\": segment \"{\" is not a placeholder: write {name} \
             with letters, digits, '_' or '-' as the whole segment"
        );
    }

    #[test]
    fn redact_query_drops_query_and_fragment() {
        assert_eq!(redact_query("/login?password=hunter2"), "/login");
        assert!(matches!(redact_query("/login?x"), Cow::Borrowed("/login")));
        assert_eq!(redact_query("/a#b?c"), "/a");
        assert_eq!(redact_query("/plain"), "/plain");
        assert_eq!(redact_query(b"/\xff?secret".as_slice()), "/\u{FFFD}");
        assert_eq!(redact_query(&String::from("/s?t")), "/s");
    }

    #[test]
    fn debug_and_display_show_the_pattern() {
        let p: RoutePattern = "/users/{id}".parse().unwrap();
        assert_eq!(format!("{p:?}"), "RoutePattern(\"/users/{id}\")");
        assert_eq!(p.to_string(), "/users/{id}");
    }

    /// The cache answers what the router does, whatever the query, and stops growing at its
    /// bound.
    #[test]
    fn the_route_cache_answers_as_the_router_and_is_bounded() {
        let router = Router::new(["/users/{name}"]).unwrap();
        let mut cache = RouteCache::default();
        for target in [
            "/users/ann?x=1",
            "/users/ann",
            "/item/42?a",
            "/item/42",
            "*",
            "/a\u{7}b",
        ] {
            assert_eq!(
                cache.route(&router, target),
                router.route(target).into(),
                "{target}"
            );
            assert_eq!(
                cache.route(&router, target),
                router.route(target).into(),
                "{target}"
            );
        }
        for i in 0..RouteCache::CAPACITY + 10 {
            let target = format!("/p{i}");
            assert_eq!(cache.route(&router, &target), router.route(&target).into());
        }
        assert_eq!(cache.0.len(), RouteCache::CAPACITY);
    }
}
