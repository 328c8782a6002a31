//! `GET /api/stacks`: retained memory by call site (the page's icicle), for one route's
//! requests or all of them.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{
    ApiResult, answer, ms,
    query::{BadParam, Checked, Given},
};
use crate::{
    recording::{Recording, query::Range},
    views::{
        flame,
        server::{ApiError, AppState},
    },
};

pub(super) async fn handler(
    State(state): State<Arc<AppState>>,
    Checked(q): Checked<StacksQuery>,
) -> ApiResult<Stacks> {
    answer(&state, move |rec| {
        Stacks::read(rec, q.range, q.route.as_deref(), q.method.as_deref())
    })
    .await
}

/// `from`, `to`, and `route` and `method` to keep one route's requests (any text).
#[derive(Debug, Deserialize)]
#[serde(try_from = "Given")]
pub(super) struct StacksQuery {
    range: Range,
    route: Option<String>,
    method: Option<String>,
}

impl TryFrom<Given> for StacksQuery {
    type Error = BadParam;

    fn try_from(mut p: Given) -> Result<Self, BadParam> {
        Ok(Self {
            range: p.range()?,
            route: p.text("route"),
            method: p.text("method"),
        })
    }
}

/// `GET /api/stacks`.
#[derive(Debug, Serialize)]
pub(crate) struct Stacks {
    /// Call sites that retain something and were left out by the bounds (their bytes count in
    /// their callers').
    pub folded_nodes: u64,
    /// What the outermost of those retain.
    pub folded_retained_bytes: i64,
    pub from_ms: Option<i64>,
    /// Over every call site of the range (and route).
    pub grown_bytes: i64,
    /// Whether the recording was made with `record --stacks`.
    pub recorded: bool,
    pub retained_bytes: i64,
    /// The outermost frames, most retained first.
    pub roots: Vec<StackNode>,
    pub routes: Vec<StackRoute>,
    pub routes_folded: u64,
    pub to_ms: Option<i64>,
}

/// A call site.
#[derive(Debug, Serialize)]
pub(crate) struct StackNode {
    /// The functions it called, most retained first.
    pub children: Vec<StackNode>,
    pub grown_bytes: i64,
    /// Null for `[no stack taken]`.
    pub module: Option<String>,
    pub name: String,
    pub retained_bytes: i64,
    /// The routes that reached it, most retained first.
    pub routes: Vec<StackRoute>,
    /// Routes that reached it and are not listed.
    pub routes_folded: u64,
}

/// What a route's requests did through a call site.
#[derive(Debug, Serialize)]
pub(crate) struct StackRoute {
    pub grown_bytes: i64,
    pub method: String,
    pub retained_bytes: i64,
    /// `""` for memory made outside any request.
    pub route: String,
}

impl From<flame::RouteBytes> for StackRoute {
    fn from(r: flame::RouteBytes) -> Self {
        let flame::RouteBytes {
            method,
            route,
            grown,
            retained,
        } = r;
        Self {
            grown_bytes: grown,
            method,
            retained_bytes: retained,
            route,
        }
    }
}

impl From<flame::CallNode> for StackNode {
    fn from(n: flame::CallNode) -> Self {
        let flame::CallNode {
            name,
            module,
            grown,
            retained,
            routes,
            routes_folded,
            children,
        } = n;
        Self {
            children: children.into_iter().map(Self::from).collect(),
            grown_bytes: grown,
            module,
            name,
            retained_bytes: retained,
            routes: routes.into_iter().map(StackRoute::from).collect(),
            routes_folded,
        }
    }
}

impl Stacks {
    /// Retained memory by call site for the requests that ended in `range` (the whole recording
    /// by default), only `route`'s and `method`'s when given.
    pub(crate) fn read(
        rec: &Recording,
        range: Range,
        route: Option<&str>,
        method: Option<&str>,
    ) -> Result<Self, ApiError> {
        let range = rec.figures_range(range)?;
        let (from, to) = (range.from_ns.unwrap_or(0), range.to_ns.unwrap_or(i64::MAX));
        let flame::CallTree {
            recorded,
            grown,
            retained,
            routes,
            routes_folded,
            roots,
            folded_nodes,
            folded_retained,
        } = flame::CallTree::read(rec, (from, to), route, method, flame::Limits::default())?;
        Ok(Self {
            folded_nodes,
            folded_retained_bytes: folded_retained,
            from_ms: ms(range.from_ns),
            grown_bytes: grown,
            recorded,
            retained_bytes: retained,
            roots: roots.into_iter().map(StackNode::from).collect(),
            routes: routes.into_iter().map(StackRoute::from).collect(),
            routes_folded,
            to_ms: ms(range.to_ns),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::server::api::{
        MS,
        testing::{assert_sorted, checked},
    };

    #[test]
    fn route_and_method_are_any_text() {
        let q = checked::<StacksQuery>("route=%2Fa%3Fb&method=").unwrap();
        assert_eq!(
            (q.route.as_deref(), q.method.as_deref()),
            (Some("/a?b"), Some(""))
        );
        let q = checked::<StacksQuery>("from=1").unwrap();
        assert_eq!((q.route, q.method, q.range.from_ns), (None, None, Some(MS)));
        assert_eq!(
            checked::<StacksQuery>("route=/a&to=x").unwrap_err(),
            r#"to="x" is not an integer from 0 to 9223372036854 (times are epoch milliseconds)"#
        );
    }

    /// The answer, with every optional object and list filled, sends its keys sorted.
    #[test]
    fn keys_are_sorted() {
        let route = || StackRoute {
            grown_bytes: 8192,
            method: "GET".into(),
            retained_bytes: 4096,
            route: "/leak".into(),
        };
        assert_sorted(&Stacks {
            folded_nodes: 1,
            folded_retained_bytes: 4096,
            from_ms: Some(0),
            grown_bytes: 8192,
            recorded: true,
            retained_bytes: 4096,
            roots: vec![StackNode {
                children: vec![StackNode {
                    children: vec![],
                    grown_bytes: 8192,
                    module: None,
                    name: "leak".into(),
                    retained_bytes: 4096,
                    routes: vec![route()],
                    routes_folded: 0,
                }],
                grown_bytes: 8192,
                module: Some("/srv/app".into()),
                name: "main".into(),
                retained_bytes: 4096,
                routes: vec![route()],
                routes_folded: 1,
            }],
            routes: vec![route()],
            routes_folded: 0,
            to_ms: Some(1),
        });
    }

    /// `/api/stacks` for the fixture's route /a: the icicle from `main` in, with stack 0 a root
    /// of its own, and the routes of each call site.
    #[test]
    fn stacks_answer_one_routes_tree() {
        use crate::recording::query::stacks::fixture::{B, S, write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        write(&path);
        let rec = Recording::open(&path).unwrap();
        let range = Range {
            from_ns: Some(B * S),
            to_ns: Some((B + 1) * S + 999 * MS),
        };
        let answer = Stacks::read(&rec, range, Some("/a"), None).unwrap();
        let a = |kib: i64| {
            serde_json::json!([{"grown_bytes": kib * 1024, "method": "GET",
                                "retained_bytes": kib * 1024, "route": "/a"}])
        };
        let node = |name: &str, module: Option<&str>, kib: i64, children| {
            serde_json::json!({"children": children, "grown_bytes": kib * 1024,
                               "module": module, "name": name, "retained_bytes": kib * 1024,
                               "routes": a(kib), "routes_folded": 0})
        };
        let leak_a = node("leak_a", Some("/srv/app"), 512, serde_json::json!([]));
        let handle = node("handle", Some("/srv/app"), 512, serde_json::json!([leak_a]));
        let main = node("main", Some("/srv/app"), 512, serde_json::json!([handle]));
        let none = node("[no stack taken]", None, 8, serde_json::json!([]));
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({
                "folded_nodes": 0,
                "folded_retained_bytes": 0,
                "from_ms": B * 1000,
                "grown_bytes": 520 * 1024,
                "recorded": true,
                "retained_bytes": 520 * 1024,
                "roots": [main, none],
                "routes": a(520),
                "routes_folded": 0,
                "to_ms": (B + 1) * 1000 + 999,
            })
        );
    }
}
