//! Retained memory by call site as a tree, for an icicle (a flame graph drawn root at the top):
//! the outermost frames are the roots, each node's children are the functions it called, and a
//! node holds what the stacks through it made resident over a range, what of that they still
//! retain at its end, and the routes whose requests reached it.
//!
//! Frames come from traced programs and are kept as they are (the page shows them as text), but
//! bounded: the tree keeps at most [`Limits::nodes`] nodes, [`Limits::depth`] levels and
//! [`Limits::routes`] routes per node, and names at most [`Limits::name_chars`] characters. What
//! the node bounds leave out is counted ([`CallTree::folded_nodes`]) and its bytes stay in its
//! callers' figures, so nothing is lost silently.

use std::{
    cmp::{Ordering, Reverse},
    collections::{BinaryHeap, HashMap},
};

use crate::{
    error::RecordingError,
    recording::{
        Recording,
        query::stacks::{CallSites, StackCharge},
    },
};

/// The node for growth no stack was taken for (stack 0).
pub const NO_STACK: &str = "[no stack taken]";
/// The node for a stack id the recording does not hold (memwatch never writes one).
pub const UNKNOWN_STACK: &str = "[stack not in the recording]";
/// The node for a frame id the recording does not hold (memwatch never writes one).
pub const UNKNOWN_FRAME: &str = "[frame not in the recording]";

/// How much of the tree is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nodes kept, the ones that retain most first (a node only with its caller).
    pub nodes: usize,
    /// Levels kept: deeper call sites count in their caller at the last level.
    pub depth: usize,
    /// Routes listed per node, the ones that retain most first.
    pub routes: usize,
    /// Characters kept of a name, a module or a route; longer ones end in `…`.
    pub name_chars: usize,
}

impl Default for Limits {
    /// About what a page draws at once: a node narrower than a pixel shows nothing.
    fn default() -> Self {
        Self {
            nodes: 1000,
            depth: 64,
            routes: 10,
            name_chars: 256,
        }
    }
}

/// What one route's requests (or, for route `""`, memory made outside any request) did through
/// a call site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteBytes {
    /// `-` when unknown.
    pub method: String,
    /// `-` when unknown, `""` outside any request.
    pub route: String,
    pub grown: i64,
    pub retained: i64,
}

/// A call site: a frame reached through the frames of its ancestors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallNode {
    /// [`Frame::label`](crate::recording::query::stacks::Frame::label), or [`NO_STACK`],
    /// [`UNKNOWN_STACK`], [`UNKNOWN_FRAME`].
    pub name: String,
    /// The frame's binary, `[anon]` or `[perf-map]`; `None` for the placeholders.
    pub module: Option<String>,
    /// Bytes made resident through this call site by the range's requests.
    pub grown: i64,
    /// Of those, still resident at the end of the range.
    pub retained: i64,
    /// The routes that reached it, most retained first, at most [`Limits::routes`].
    pub routes: Vec<RouteBytes>,
    /// Routes that reached it and are not listed.
    pub routes_folded: u64,
    /// The call sites it called, most retained first.
    pub children: Vec<CallNode>,
}

/// Retained memory by call site over a range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallTree {
    /// Whether the recording was made with `--stacks` (without, the tree is empty).
    pub recorded: bool,
    /// Bytes made resident by the range's requests, over every call site.
    pub grown: i64,
    /// Of those, still resident at the end of the range.
    pub retained: i64,
    /// The routes, most retained first, at most [`Limits::routes`].
    pub routes: Vec<RouteBytes>,
    pub routes_folded: u64,
    /// The outermost frames, most retained first. Only call sites that retain something.
    pub roots: Vec<CallNode>,
    /// Call sites that retain something and were left out by the node and depth bounds.
    pub folded_nodes: u64,
    /// What the outermost of those retain: counted in their callers' `retained` (or, for roots,
    /// in the tree's), not in any child's.
    pub folded_retained: i64,
}

/// A node of the whole tree, before the bounds.
#[derive(Debug, Default)]
struct Building {
    name: String,
    module: Option<String>,
    depth: usize,
    grown: i64,
    retained: i64,
    routes: HashMap<(String, String), (i64, i64)>,
    children: HashMap<(String, Option<String>), usize>,
}

impl Building {
    /// Adds a charge (saturating: its figures come from the file).
    fn charge(&mut self, c: &StackCharge) {
        self.grown = self.grown.saturating_add(c.grown);
        self.retained = self.retained.saturating_add(c.retained());
        let r = self
            .routes
            .entry((c.method.clone(), c.route.clone()))
            .or_default();
        r.0 = r.0.saturating_add(c.grown);
        r.1 = r.1.saturating_add(c.retained());
    }
}

/// `s` cut to `max` characters, ending in `…` when cut.
fn bounded(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((end, _)) => {
            let mut cut = s[..end].to_owned();
            cut.pop();
            cut.push('…');
            cut
        }
    }
}

/// Most retained first, then most grown, then by route and method.
fn routes_of(
    all: &HashMap<(String, String), (i64, i64)>,
    limits: Limits,
) -> (Vec<RouteBytes>, u64) {
    let mut routes: Vec<RouteBytes> = all
        .iter()
        .map(|((method, route), &(grown, retained))| RouteBytes {
            method: bounded(method, limits.name_chars),
            route: bounded(route, limits.name_chars),
            grown,
            retained,
        })
        .collect();
    routes.sort_by(|a, b| {
        (Reverse(a.retained), Reverse(a.grown), &a.route, &a.method).cmp(&(
            Reverse(b.retained),
            Reverse(b.grown),
            &b.route,
            &b.method,
        ))
    });
    let folded = routes.len().saturating_sub(limits.routes) as u64;
    routes.truncate(limits.routes);
    (routes, folded)
}

/// The frames of `stack` from the outermost in: `(name, module)`.
fn path(stack: i64, sites: &CallSites) -> Vec<(String, Option<String>)> {
    if stack == 0 {
        return vec![(NO_STACK.to_owned(), None)];
    }
    if !sites.stacks.contains_key(&stack) {
        return vec![(UNKNOWN_STACK.to_owned(), None)];
    }
    // The C library's innermost frames fold into their caller (`CallSites::site_ids`).
    sites
        .site_ids(stack)
        .iter()
        .rev()
        .map(|id| match sites.frames.get(id) {
            Some(f) => (f.label(), Some(f.module.clone())),
            None => (UNKNOWN_FRAME.to_owned(), None),
        })
        .collect()
}

impl CallTree {
    /// The tree of `route`'s (and `method`'s) call sites, or every route's, for the requests
    /// that ended in `[from_ns, to_ns]` (whole seconds, as
    /// [`Recording::stack_charges`]).
    pub fn read(
        rec: &Recording,
        (from_ns, to_ns): (i64, i64),
        route: Option<&str>,
        method: Option<&str>,
        limits: Limits,
    ) -> Result<Self, RecordingError> {
        if !rec.stacks_recorded()? {
            return Ok(Self::default());
        }
        let mut charges = rec.stack_charges(from_ns, to_ns, route)?;
        if let Some(method) = method {
            charges.retain(|c| c.method == method);
        }
        let mut tree = Self::build(&charges, &rec.call_sites()?, limits);
        tree.recorded = true;
        Ok(tree)
    }

    /// The tree of `charges` (`recorded` false: the caller says).
    pub fn build(charges: &[StackCharge], sites: &CallSites, limits: Limits) -> Self {
        // The whole tree first, node 0 standing for the tree itself.
        let mut nodes = vec![Building::default()];
        let mut paths: HashMap<i64, Vec<(String, Option<String>)>> = HashMap::new();
        for c in charges {
            nodes[0].charge(c);
            let path = paths.entry(c.stack).or_insert_with(|| path(c.stack, sites));
            let mut at = 0;
            for (depth, key) in path.iter().enumerate() {
                let next = match nodes[at].children.get(key) {
                    Some(&i) => i,
                    None => {
                        let i = nodes.len();
                        nodes.push(Building {
                            name: key.0.clone(),
                            module: key.1.clone(),
                            depth,
                            ..Building::default()
                        });
                        nodes[at].children.insert(key.clone(), i);
                        i
                    }
                };
                nodes[next].charge(c);
                at = next;
            }
        }

        // Then the nodes kept: the ones that retain most, each only with its caller.
        let retains = |i: &usize| nodes[*i].retained > 0;
        let mut kept = vec![false; nodes.len()];
        let mut heap: BinaryHeap<(i64, Reverse<usize>)> = nodes[0]
            .children
            .values()
            .filter(|i| retains(i))
            .map(|&i| (nodes[i].retained, Reverse(i)))
            .collect();
        let mut count = 0;
        while let Some((_, Reverse(i))) = heap.pop() {
            if count == limits.nodes {
                break;
            }
            kept[i] = true;
            count += 1;
            if nodes[i].depth + 1 < limits.depth {
                heap.extend(
                    nodes[i]
                        .children
                        .values()
                        .filter(|c| retains(c))
                        .map(|&c| (nodes[c].retained, Reverse(c))),
                );
            }
        }
        let mut folded_nodes = 0;
        let mut folded_retained = 0i64;
        for (i, node) in nodes.iter().enumerate() {
            if i > 0 && node.retained > 0 && !kept[i] {
                folded_nodes += 1;
            }
            // The outermost call sites left out: under the tree itself or a kept node.
            if i == 0 || kept[i] {
                folded_retained = node
                    .children
                    .values()
                    .filter(|&&c| nodes[c].retained > 0 && !kept[c])
                    .map(|&c| nodes[c].retained)
                    .fold(folded_retained, i64::saturating_add);
            }
        }

        let (routes, routes_folded) = routes_of(&nodes[0].routes, limits);
        Self {
            recorded: false,
            grown: nodes[0].grown,
            retained: nodes[0].retained,
            routes,
            routes_folded,
            roots: Self::children(&nodes, &kept, 0, limits),
            folded_nodes,
            folded_retained,
        }
    }

    /// The kept children of `at`, most retained first.
    fn children(nodes: &[Building], kept: &[bool], at: usize, limits: Limits) -> Vec<CallNode> {
        let mut children: Vec<CallNode> = nodes[at]
            .children
            .values()
            .filter(|&&c| kept[c])
            .map(|&c| {
                let node = &nodes[c];
                let (routes, routes_folded) = routes_of(&node.routes, limits);
                CallNode {
                    name: bounded(&node.name, limits.name_chars),
                    module: node
                        .module
                        .as_deref()
                        .map(|m| bounded(m, limits.name_chars)),
                    grown: node.grown,
                    retained: node.retained,
                    routes,
                    routes_folded,
                    children: Self::children(nodes, kept, c, limits),
                }
            })
            .collect();
        children.sort_by(by_weight);
        children
    }
}

fn by_weight(a: &CallNode, b: &CallNode) -> Ordering {
    (Reverse(a.retained), Reverse(a.grown), &a.name, &a.module).cmp(&(
        Reverse(b.retained),
        Reverse(b.grown),
        &b.name,
        &b.module,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{
        Writer,
        query::stacks::fixture::{B, KIB, S, write},
    };

    const K: i64 = KIB as i64;

    /// `(depth, name, retained KiB, grown KiB)` of every node, depth first.
    fn flat(tree: &CallTree) -> Vec<(usize, String, i64, i64)> {
        fn walk(nodes: &[CallNode], depth: usize, out: &mut Vec<(usize, String, i64, i64)>) {
            for n in nodes {
                out.push((depth, n.name.clone(), n.retained / K, n.grown / K));
                walk(&n.children, depth + 1, out);
            }
        }
        let mut out = Vec::new();
        walk(&tree.roots, 0, &mut out);
        out
    }

    fn node(d: usize, name: &str, retained: i64, grown: i64) -> (usize, String, i64, i64) {
        (d, name.to_owned(), retained, grown)
    }

    fn route(method: &str, route: &str, grown: i64, retained: i64) -> RouteBytes {
        RouteBytes {
            method: method.into(),
            route: route.into(),
            grown: grown * K,
            retained: retained * K,
        }
    }

    fn fixture() -> (tempfile::TempDir, Recording) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        write(&path);
        let rec = Recording::open(&path).unwrap();
        (dir, rec)
    }

    /// The fixture's first two seconds: B and B+1.
    const RANGE: (i64, i64) = (B * S, (B + 1) * S + 9);

    /// One route: its call sites from `main` in, and stack 0 as a root of its own.
    #[test]
    fn one_routes_tree() {
        let (_dir, rec) = fixture();
        let tree = CallTree::read(&rec, RANGE, Some("/a"), None, Limits::default()).unwrap();
        assert!(tree.recorded);
        assert_eq!((tree.retained / K, tree.grown / K), (520, 520));
        assert_eq!(
            flat(&tree),
            vec![
                node(0, "main", 512, 512),
                node(1, "handle", 512, 512),
                node(2, "leak_a", 512, 512),
                node(0, NO_STACK, 8, 8),
            ]
        );
        let main = &tree.roots[0];
        assert_eq!(main.module.as_deref(), Some("/srv/app"));
        assert_eq!(
            main.children[0].children[0].routes,
            [route("GET", "/a", 512, 512)]
        );
        assert_eq!(tree.roots[1].module, None);
        assert_eq!(tree.routes, [route("GET", "/a", 520, 520)]);
        assert_eq!((tree.folded_nodes, tree.folded_retained), (0, 0));
    }

    /// Every route: shared callers add up, the routes that reached a frame are listed with what
    /// each retains, growth outside requests has route "".
    #[test]
    fn every_routes_tree() {
        let (_dir, rec) = fixture();
        let tree = CallTree::read(&rec, RANGE, None, None, Limits::default()).unwrap();
        assert_eq!((tree.retained / K, tree.grown / K), (700, 900));
        assert_eq!(
            flat(&tree),
            vec![
                node(0, "main", 692, 892),
                node(1, "handle", 628, 828),
                node(2, "leak_a", 528, 528),
                node(2, "leak_b", 100, 300),
                node(1, "libfoo.so+0x1234", 64, 64),
                node(0, NO_STACK, 8, 8),
            ]
        );
        let handle = &tree.roots[0].children[0];
        assert_eq!(
            handle.children[0].routes,
            [route("GET", "/a", 512, 512), route("-", "", 16, 16)]
        );
        assert_eq!(
            handle.routes,
            [
                route("GET", "/a", 512, 512),
                route("GET", "/b", 300, 100),
                route("-", "", 16, 16)
            ]
        );
        assert_eq!(
            tree.routes,
            [
                route("GET", "/a", 520, 520),
                route("GET", "/b", 364, 164),
                route("-", "", 16, 16)
            ]
        );
        // Only GET's: the outside growth has no method.
        let get = CallTree::read(&rec, RANGE, None, Some("GET"), Limits::default()).unwrap();
        assert_eq!(get.retained / K, 684);
        assert_eq!(get.roots[0].children[0].children[0].retained / K, 512);
    }

    /// A call site whose memory was all released by the end of the range has no width: it is
    /// left out, and is not counted as folded; its growth stays in its callers'.
    #[test]
    fn released_call_sites_are_left_out() {
        let (_dir, rec) = fixture();
        let tree = CallTree::read(
            &rec,
            (B * S, (B + 2) * S),
            Some("/b"),
            None,
            Limits::default(),
        )
        .unwrap();
        assert_eq!(
            flat(&tree),
            vec![
                node(0, "main", 100, 364),
                node(1, "handle", 100, 300),
                node(2, "leak_b", 100, 300),
            ]
        );
        assert_eq!(tree.folded_nodes, 0);
    }

    /// The bounds keep the call sites that retain most, and count what they leave out.
    #[test]
    fn bounds_fold_and_count() {
        let (_dir, rec) = fixture();
        let limits = Limits {
            nodes: 2,
            ..Limits::default()
        };
        let tree = CallTree::read(&rec, RANGE, None, None, limits).unwrap();
        assert_eq!(
            flat(&tree),
            vec![node(0, "main", 692, 892), node(1, "handle", 628, 828)]
        );
        // leak_a, leak_b, libfoo.so and [no stack taken]; all of them outermost.
        assert_eq!(tree.folded_nodes, 4);
        assert_eq!(tree.folded_retained / K, 528 + 100 + 64 + 8);

        let limits = Limits {
            depth: 1,
            routes: 1,
            ..Limits::default()
        };
        let tree = CallTree::read(&rec, RANGE, None, None, limits).unwrap();
        assert_eq!(
            flat(&tree),
            vec![node(0, "main", 692, 892), node(0, NO_STACK, 8, 8)]
        );
        // handle (with leak_a and leak_b under it) and libfoo.so; handle and libfoo outermost.
        assert_eq!((tree.folded_nodes, tree.folded_retained / K), (4, 628 + 64));
        assert_eq!(tree.roots[0].routes, [route("GET", "/a", 512, 512)]);
        assert_eq!(tree.roots[0].routes_folded, 2);
        assert_eq!(tree.routes_folded, 2);
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(bounded("abcdef", 3), "ab…");
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("éééé", 2), "é…");
        let sites = CallSites {
            stacks: HashMap::from([(1, vec![1])]),
            unwind: HashMap::new(),
            frames: HashMap::from([(
                1,
                crate::recording::query::stacks::Frame {
                    module: "/m".repeat(200),
                    offset: 0,
                    function: Some("f".repeat(1000)),
                    file: None,
                    line: None,
                },
            )]),
        };
        let charge = StackCharge {
            stack: 1,
            method: "GET".into(),
            route: "/r".repeat(500),
            pid: 1,
            grown: 4096,
            released: 0,
            pages: 1,
        };
        let tree = CallTree::build(&[charge], &sites, Limits::default());
        let root = &tree.roots[0];
        assert_eq!(root.name, format!("{}…", "f".repeat(255)));
        assert_eq!(root.module.as_ref().unwrap().chars().count(), 256);
        assert_eq!(root.routes[0].route.chars().count(), 256);
    }

    /// Unknown stacks and frames (memwatch never writes them) get nodes of their own.
    #[test]
    fn unknown_stacks_and_frames_are_named() {
        let sites = CallSites {
            stacks: HashMap::from([(1, vec![9])]),
            ..CallSites::default()
        };
        let charge = |stack| StackCharge {
            stack,
            method: "GET".into(),
            route: "/".into(),
            pid: 1,
            grown: 4096,
            released: 0,
            pages: 1,
        };
        let tree = CallTree::build(&[charge(1), charge(2)], &sites, Limits::default());
        let names: Vec<&str> = tree.roots.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, [UNKNOWN_FRAME, UNKNOWN_STACK]);
    }

    /// A recording made without `--stacks` says so, with an empty tree.
    #[test]
    fn without_stacks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        Writer::create(&path, &[]).unwrap().finish().unwrap();
        let rec = Recording::open(&path).unwrap();
        let tree = CallTree::read(&rec, (0, i64::MAX), None, None, Limits::default()).unwrap();
        assert_eq!(tree, CallTree::default());
        assert!(!tree.recorded);
    }
}
