//! The recording schema. Bump [`SCHEMA_VERSION`] on any incompatible change and document it in
//! `docs/recording.md`.

/// `PRAGMA application_id`: "MWAT". Tells a memwatch recording from any other SQLite file.
pub const APPLICATION_ID: i64 = 0x4D57_4154;
/// `PRAGMA user_version`: the schema version this memwatch writes and the newest it reads.
/// Version 1 files (a plain `requests` table, `conn` as "fd:generation" text) read unchanged:
/// the views query `requests` by column name, which both versions provide.
pub const SCHEMA_VERSION: i64 = 2;

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
    request_id INTEGER                -- the request it was charged to, if any
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
CREATE TABLE counters (
    ts_ns          INTEGER NOT NULL,
    events         INTEGER NOT NULL,  -- cumulative ring-buffer records read
    dropped        INTEGER NOT NULL,  -- cumulative ring-buffer reservations that failed
    unpaired_exits INTEGER NOT NULL,
    map_full       INTEGER NOT NULL,
    undecodable    INTEGER NOT NULL
);
-- Requests are stored compactly in `request_rows` and read through the `requests` view, which
-- has the readable shape. The table is clustered by end time (range queries and the page's
-- newest-first lists need no separate index); looking a request up by id alone scans.
CREATE TABLE hosts (
    id   INTEGER PRIMARY KEY,
    host TEXT NOT NULL UNIQUE
);
CREATE TABLE request_rows (
    id        INTEGER NOT NULL,
    pid       INTEGER NOT NULL,
    tid       INTEGER NOT NULL,
    conn      INTEGER NOT NULL,      -- connection number in this recording; 0: from an access log
    method    TEXT,
    target    TEXT,                  -- NULL when equal to route
    route     TEXT,
    host_id   INTEGER,               -- hosts.id
    status    INTEGER,
    end_ns    INTEGER NOT NULL,
    dur_ns    INTEGER NOT NULL,      -- end_ns - start_ns
    ttfb_ns   INTEGER,               -- first_byte_ns - start_ns
    bytes_in  INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    vm_bytes  INTEGER NOT NULL,
    rss_bytes INTEGER NOT NULL,
    faults    INTEGER NOT NULL,
    mem_calls INTEGER NOT NULL,
    exact     INTEGER NOT NULL,      -- 1 exact, 0 approximate attribution
    PRIMARY KEY (end_ns, id)
) WITHOUT ROWID;
CREATE VIEW requests AS
SELECT r.id, r.pid, r.tid, r.conn, r.method, COALESCE(r.target, r.route) AS target, r.route,
       h.host, r.status, r.end_ns - r.dur_ns AS start_ns,
       r.end_ns - r.dur_ns + r.ttfb_ns AS first_byte_ns, r.end_ns, r.bytes_in, r.bytes_out,
       r.vm_bytes, r.rss_bytes, r.faults, r.mem_calls, r.exact
FROM request_rows r LEFT JOIN hosts h ON h.id = r.host_id;
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
    PRIMARY KEY (second, method, route, status)
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
