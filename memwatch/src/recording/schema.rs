//! The recording schema. Bump [`SCHEMA_VERSION`] on any incompatible change and document it in
//! `docs/recording.md`.

/// `PRAGMA application_id`: "MWAT". Tells a memwatch recording from any other SQLite file.
pub const APPLICATION_ID: i64 = 0x4D57_4154;
/// `PRAGMA user_version`: the schema version this memwatch writes and the newest it reads.
/// Version 1 files (a plain `requests` table, `conn` as "fd:generation" text) read unchanged:
/// the views query `requests` by column name, which every version provides. Version 3 adds the
/// origin of resident memory: `grown` and `released` per request, `releases` and
/// `outside_growth`; older files lack those figures ([`HAS_ORIGIN`]). Version 4 adds the origin of
/// address space, `vm_origin_rollup`; older files lack it ([`HAS_VM_ORIGIN`]). Version 5 adds call
/// sites (`frames`, `stacks`, `stack_rollup`), filled by `record --stacks`; older files lack them
/// ([`HAS_STACKS`]). Version 6 splits the released bytes no tracked page covered:
/// `counters.unmatched_release_bytes` keeps the pages resident before tracing began (or perhaps
/// resident), `counters.unseen_release_bytes` takes those memwatch never saw resident; in older
/// files the first holds both ([`HAS_UNSEEN`]). Version 7 marks the requests the heap probes
/// did not follow because their budget was spent (`sampled_out` in `request_rows` and
/// `request_rollup`): per-request figures leave them out; in older files every request counts
/// ([`HAS_SAMPLED_OUT`]). Version 8 adds `live_heap`, what collected runtimes (the JVM, Go)
/// report live after each collection; older files have none ([`HAS_LIVE_HEAP`]). Version 9
/// adds `heap_samples`, the allocations a Go runtime sampled, per request; older files have
/// none ([`HAS_HEAP_SAMPLES`]). Version 10 stores requests in three tables behind the same
/// `requests` view: what many share in `request_kinds`, the memory figures only of the
/// requests that changed memory in `request_memory`; the views read every version through the
/// view.
pub const SCHEMA_VERSION: i64 = 10;
/// The first schema version whose recordings carry retained-memory figures.
pub const HAS_ORIGIN: i64 = 3;
/// The first schema version whose recordings carry the origin of address space.
pub const HAS_VM_ORIGIN: i64 = 4;
/// The first schema version whose recordings can carry call sites.
pub const HAS_STACKS: i64 = 5;
/// The first schema version that counts unseen releases apart.
pub const HAS_UNSEEN: i64 = 6;
/// The first schema version that marks requests the heap probes did not follow.
pub const HAS_SAMPLED_OUT: i64 = 7;
/// The first schema version with collected runtimes' live heap.
pub const HAS_LIVE_HEAP: i64 = 8;
/// The first schema version with Go's sampled heap.
pub const HAS_HEAP_SAMPLES: i64 = 9;

/// All times are wall-clock nanoseconds since the Unix epoch, derived from the kernel's
/// monotonic clock through an offset measured once at start (`meta.clock_offset_ns`).
pub const CREATE: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE processes (
    pid        INTEGER PRIMARY KEY,
    ppid       INTEGER,
    comm       TEXT NOT NULL,
    cmdline    TEXT,
    started_ns INTEGER,
    exited_ns  INTEGER,
    exit_code  INTEGER,
    origin     TEXT NOT NULL          -- 'attached', 'descendant', 'spawned' or 'forked'
);
CREATE TABLE threads (
    tid       INTEGER PRIMARY KEY,
    pid       INTEGER NOT NULL,
    faults    INTEGER NOT NULL,       -- user page faults while traced
    exited_ns INTEGER
);
CREATE TABLE mem_events (
    ts_ns      INTEGER NOT NULL,
    pid        INTEGER NOT NULL,
    tid        INTEGER NOT NULL,
    op         TEXT NOT NULL,         -- mmap, munmap, mremap, brk, mprotect
    addr       INTEGER NOT NULL,
    len        INTEGER NOT NULL,
    new_len    INTEGER NOT NULL,
    prot       INTEGER NOT NULL,
    flags      INTEGER NOT NULL,
    fd         INTEGER NOT NULL,
    ret        INTEGER NOT NULL,      -- address, 0, or -errno
    ok         INTEGER NOT NULL,      -- 1 when the call succeeded
    vm_delta   INTEGER NOT NULL,      -- signed change of mapped bytes this call made
    request_id INTEGER,               -- the request it was charged to, if any
    stack      INTEGER                -- stacks.id of its call site, when one was taken (--stacks)
);
CREATE INDEX mem_events_ts ON mem_events (ts_ns);
CREATE TABLE samples (
    ts_ns     INTEGER NOT NULL,
    pid       INTEGER NOT NULL,
    rss_bytes INTEGER NOT NULL,
    vm_bytes  INTEGER NOT NULL,
    faults    INTEGER NOT NULL        -- cumulative user page faults of the process
);
CREATE INDEX samples_ts ON samples (ts_ns);
CREATE TABLE live_heap (
    ts_ns  INTEGER NOT NULL,          -- the collection's end
    pid    INTEGER NOT NULL,
    bytes  INTEGER NOT NULL,          -- live (or in use) right after it, as the runtime says
    source TEXT NOT NULL              -- jvm (its heap pools' used bytes), go (bytes marked),
                                      -- heap (followed blocks handed out by ts_ns and still
                                      -- held a second later), node, ruby, go_kept
);
CREATE TABLE heap_samples (
    id         INTEGER PRIMARY KEY,   -- numbered from 1
    ts_ns      INTEGER NOT NULL,      -- when the runtime sampled it
    pid        INTEGER NOT NULL,
    request_id INTEGER,               -- the request its thread served; NULL: none
    method     TEXT,                  -- that request's, as parsed when it was sampled
    route      TEXT,
    size       INTEGER NOT NULL,      -- the object's bytes
    weight     INTEGER NOT NULL,      -- the bytes it stands for at the process's sampling rate
    freed_ns   INTEGER                -- when the sweeper freed it; NULL: not seen freed
);
CREATE INDEX heap_samples_ts ON heap_samples (ts_ns);
CREATE TABLE counters (
    ts_ns          INTEGER NOT NULL,
    events         INTEGER NOT NULL,  -- cumulative ring-buffer records read
    dropped        INTEGER NOT NULL,  -- cumulative ring-buffer reservations that failed
    unpaired_exits INTEGER NOT NULL,
    map_full       INTEGER NOT NULL,
    undecodable    INTEGER NOT NULL,
    untracked_bytes         INTEGER NOT NULL DEFAULT 0, -- resident growth origin tracking could not keep
    unmatched_release_bytes INTEGER NOT NULL DEFAULT 0, -- releases of memory of no known origin
    unseen_release_bytes    INTEGER NOT NULL DEFAULT 0  -- released address space never seen resident
);
-- Requests are stored compactly and read through the `requests` view, which has the readable
-- shape. What many requests share (the thread that served them, method, route, Host, status,
-- how their memory was charged) is interned in `request_kinds`; `request_rows` holds what is each
-- request's own, clustered by end time (range queries and the page's newest-first lists need no
-- separate index; looking a request up by id alone scans); `request_memory` holds the memory
-- figures of the requests that changed memory, most requests having none.
CREATE TABLE hosts (
    id   INTEGER PRIMARY KEY,
    host TEXT NOT NULL UNIQUE
);
CREATE TABLE request_kinds (
    id          INTEGER PRIMARY KEY,
    pid         INTEGER NOT NULL,
    tid         INTEGER NOT NULL,
    method      TEXT,
    route       TEXT,
    host_id     INTEGER,               -- hosts.id
    status      INTEGER,
    exact       INTEGER NOT NULL,      -- 1 exact, 0 approximate attribution
    sampled_out INTEGER NOT NULL       -- 1: the heap probes were off as it started
);
CREATE TABLE request_rows (
    end_ns    INTEGER NOT NULL,
    id        INTEGER NOT NULL,
    kind      INTEGER NOT NULL,      -- request_kinds.id
    conn      INTEGER NOT NULL,      -- connection number in this recording; 0: from an access log
    dur_ns    INTEGER NOT NULL,      -- end_ns - start_ns
    ttfb_ns   INTEGER,               -- first_byte_ns - start_ns
    bytes_in  INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    target    TEXT,                  -- NULL when equal to route
    PRIMARY KEY (end_ns, id)
) WITHOUT ROWID;
CREATE TABLE request_memory (
    end_ns    INTEGER NOT NULL,      -- request_rows.end_ns
    id        INTEGER NOT NULL,      -- request_rows.id
    vm_bytes  INTEGER NOT NULL,
    rss_bytes INTEGER NOT NULL,
    faults    INTEGER NOT NULL,
    mem_calls INTEGER NOT NULL,
    grown     INTEGER NOT NULL,      -- bytes it made resident (each page once)
    released  INTEGER NOT NULL,      -- of those, released before it ended
    PRIMARY KEY (end_ns, id)
) WITHOUT ROWID;
CREATE VIEW requests AS
SELECT r.id, k.pid, k.tid, r.conn, k.method, COALESCE(r.target, k.route) AS target, k.route,
       h.host, k.status, r.end_ns - r.dur_ns AS start_ns,
       r.end_ns - r.dur_ns + r.ttfb_ns AS first_byte_ns, r.end_ns, r.bytes_in, r.bytes_out,
       COALESCE(m.vm_bytes, 0) AS vm_bytes, COALESCE(m.rss_bytes, 0) AS rss_bytes,
       COALESCE(m.faults, 0) AS faults, COALESCE(m.mem_calls, 0) AS mem_calls, k.exact,
       COALESCE(m.grown, 0) AS grown, COALESCE(m.released, 0) AS released, k.sampled_out
FROM request_rows r JOIN request_kinds k ON k.id = r.kind
     LEFT JOIN hosts h ON h.id = k.host_id
     LEFT JOIN request_memory m ON m.end_ns = r.end_ns AND m.id = r.id;
-- Requests summed per second of their end, kept by the writer: range queries over many
-- requests read these instead of every row.
CREATE TABLE request_rollup (
    second    INTEGER NOT NULL,        -- end_ns / 1e9
    method    TEXT NOT NULL,           -- '-' when unknown
    route     TEXT NOT NULL,           -- '-' when unknown
    status    INTEGER NOT NULL,        -- -1 when unknown
    n         INTEGER NOT NULL,
    approx    INTEGER NOT NULL,        -- how many were approximate
    vm_sum    INTEGER NOT NULL,
    rss_sum   INTEGER NOT NULL,
    faults    INTEGER NOT NULL,
    mem_calls INTEGER NOT NULL,
    grown     INTEGER NOT NULL,
    released  INTEGER NOT NULL,        -- released before the requests ended
    sampled_out INTEGER NOT NULL DEFAULT 0, -- how many the heap probes did not follow
    PRIMARY KEY (second, method, route, status)
) WITHOUT ROWID;
-- Resident memory released after the request that made it resident ended, summed per second of
-- the release and per request (request_id 0: memory made resident outside any request). With
-- req_end_ns the request's row is found by its key.
CREATE TABLE releases (
    second     INTEGER NOT NULL,      -- ts_ns / 1e9 of the release
    request_id INTEGER NOT NULL,
    req_end_ns INTEGER NOT NULL,
    pid        INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    PRIMARY KEY (second, request_id, pid)
) WITHOUT ROWID;
-- The same summed per (second of the release, second of the request's end, method, route):
-- what a range query reads.
CREATE TABLE release_rollup (
    second     INTEGER NOT NULL,
    req_second INTEGER NOT NULL,      -- req_end_ns / 1e9; 0 for outside
    method     TEXT NOT NULL,         -- '-' when unknown or outside
    route      TEXT NOT NULL,         -- '-' when unknown, '' for outside any request
    bytes      INTEGER NOT NULL,
    PRIMARY KEY (second, req_second, method, route)
) WITHOUT ROWID;
-- Address space mapped by requests and still mapped at their end (grown, in the second of the
-- request's end), and unmapped later (released, in the second of the unmapping), per route.
CREATE TABLE vm_origin_rollup (
    second     INTEGER NOT NULL,
    req_second INTEGER NOT NULL,      -- the request's end_ns / 1e9
    method     TEXT NOT NULL,         -- '-' when unknown
    route      TEXT NOT NULL,         -- '-' when unknown
    grown      INTEGER NOT NULL,
    released   INTEGER NOT NULL,
    PRIMARY KEY (second, req_second, method, route)
) WITHOUT ROWID;
-- Resident memory made resident while no request was being served, per second and process.
CREATE TABLE outside_growth (
    second INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    bytes  INTEGER NOT NULL,
    PRIMARY KEY (second, pid)
) WITHOUT ROWID;
-- Call sites of resident growth (`record --stacks`). Frames and stacks are interned: a stack is
-- stored once, however often it was taken.
CREATE TABLE frames (
    id       INTEGER PRIMARY KEY,
    module   TEXT NOT NULL,         -- the binary's path, '[perf-map]' for JIT code named by a perf map,
                                    -- '[anon]' for code in no file
    offset   INTEGER NOT NULL,      -- file offset in module; the address for '[anon]' and '[perf-map]'
    function TEXT,                  -- NULL when no symbol covers it
    file     TEXT,                  -- source file, when debug info has it
    line     INTEGER
);
CREATE TABLE stacks (
    id     INTEGER PRIMARY KEY,     -- never 0: stack 0 in stack_rollup means none was taken
    frames TEXT NOT NULL,           -- frames.id, leaf first, separated by ','
    unwind TEXT NOT NULL            -- 'fp' (frame pointers) or 'dwarf' (copied stack, unwound here)
);
-- Resident growth per call site, with the same origin model as requests: grown by the requests
-- that ended in req_second (released counts their own churn), released later in `second`.
-- Growth outside any request has route '' and req_second = second of the growth.
CREATE TABLE stack_rollup (
    second     INTEGER NOT NULL,    -- the request's end for grown, the release for later releases
    req_second INTEGER NOT NULL,    -- the request's end / 1e9 (outside: the growth's second)
    method     TEXT NOT NULL,       -- '-' when unknown
    route      TEXT NOT NULL,       -- '-' when unknown, '' outside any request
    pid        INTEGER NOT NULL,
    stack      INTEGER NOT NULL,    -- stacks.id; 0: no stack was taken for this growth
    grown      INTEGER NOT NULL,
    released   INTEGER NOT NULL,
    pages      INTEGER NOT NULL,    -- pages made resident (one per fault; a huge page is many)
    PRIMARY KEY (second, req_second, method, route, pid, stack)
) WITHOUT ROWID;
CREATE TABLE log_lines (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,        -- the log path as given on the command line (display only)
    arrived_ns  INTEGER NOT NULL,     -- when memwatch read the line
    ts_ns       INTEGER,              -- the line's own timestamp (one-second resolution)
    ok          INTEGER NOT NULL,     -- 1 parsed, 0 rejected
    reason      TEXT,                 -- reject reason (stable snake_case name)
    raw         TEXT,                 -- rejected lines only, at most 4 KiB
    method      TEXT,
    target      TEXT,
    route       TEXT,
    status      INTEGER,
    bytes       INTEGER,
    duration_us INTEGER,
    client      TEXT,
    user_agent  TEXT,
    request_id  INTEGER               -- the captured (or, with --no-ebpf, derived) request
);
CREATE INDEX log_lines_arrived ON log_lines (arrived_ns);
CREATE INDEX log_lines_request ON log_lines (request_id);
CREATE TABLE non_http (
    ts_ns INTEGER NOT NULL,
    pid   INTEGER NOT NULL,
    conn  INTEGER NOT NULL,           -- requests.conn
    kind  TEXT NOT NULL,              -- tls, http2, binary, oversized, malformed
    bytes INTEGER NOT NULL
);
"#;
