//! Real servers on runtimes nobody here wrote, installed from packages (`cargo xtask setup
//! --test`): Flask under gunicorn (PyPI; sync and gthread workers), Node.js `http`, Go
//! `net/http` and a Rack app under puma (Debian). Each has `/leak?kb=N` (keeps N KiB per
//! request), `/churn?kb=N` (allocates N KiB, fills it, drops it) and `/` (answers "ok"); see
//! `tests/fixtures/runtimes/`.

use std::{path::PathBuf, process::Command, sync::OnceLock, time::Duration};

use crate::{Server, start_server, wait_until_answering};

/// The runtimes of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    GunicornSync,
    GunicornGthread,
    Node,
    Go,
    /// The Go server built with `net/http/pprof` linked, as many are in production: its
    /// runtime samples its allocations for the memory profile.
    GoPprof,
    Puma,
    /// HotSpot (Debian's openjdk-17, its default collector, G1), `com.sun.net.httpserver` on a
    /// pool of 4 threads.
    Jvm,
    /// Starlette under uvicorn: one asyncio event loop, handlers that await between
    /// allocations.
    Uvicorn,
    /// Node.js `http` with async handlers that await between allocations.
    NodeAsync,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Self::GunicornSync => "gunicorn sync",
            Self::GunicornGthread => "gunicorn gthread",
            Self::Node => "node",
            Self::Go => "go",
            Self::GoPprof => "go with pprof",
            Self::Puma => "puma",
            Self::Jvm => "jvm",
            Self::Uvicorn => "uvicorn",
            Self::NodeAsync => "node async",
        }
    }

    /// Starts the runtime's server on 127.0.0.1:`port`, and waits until it answers.
    pub fn start(self, port: u16) -> Server {
        self.start_with(port, 1)
    }

    /// [`Runtime::start`] with `workers` processes where the server forks workers (gunicorn);
    /// the others have one process whatever it says.
    pub fn start_with(self, port: u16, workers: usize) -> Server {
        let fixtures = fixtures();
        let server = match self {
            Self::GunicornSync | Self::GunicornGthread => {
                let venv = root().join("target/runtimes/venv/bin");
                assert!(
                    venv.join("gunicorn").is_file(),
                    "gunicorn is missing: run `cargo xtask setup --test` (cargo xtask test does)"
                );
                let worker = if self == Self::GunicornGthread {
                    "-k gthread --threads 4"
                } else {
                    ""
                };
                // gunicorn prints nothing on stdout, and start_server waits for a line naming
                // the port: a shell says it, then execs gunicorn's interpreter in its place.
                let script = format!(
                    "echo listening on 127.0.0.1:{port}; exec {python} {gunicorn} --chdir {dir} \
                     -b 127.0.0.1:{port} -w {workers} {worker} flask_app:app 2>/dev/null",
                    python = venv.join("python3").display(),
                    gunicorn = venv.join("gunicorn").display(),
                    dir = fixtures.display(),
                );
                start_server(Command::new("sh").args(["-c", &script]))
            }
            Self::Node => start_server(
                Command::new("node")
                    .arg(fixtures.join("node_app.js"))
                    .env("PORT", port.to_string()),
            ),
            Self::Go => start_server(Command::new(go_fixture()).env("PORT", port.to_string())),
            Self::GoPprof => {
                start_server(Command::new(go_pprof_fixture()).env("PORT", port.to_string()))
            }
            Self::Puma => {
                let script = format!(
                    "echo listening on 127.0.0.1:{port}; exec puma --quiet -t 4:4 -b \
                     tcp://127.0.0.1:{port} {app} >/dev/null 2>&1",
                    app = fixtures.join("ruby/config.ru").display(),
                );
                start_server(Command::new("sh").args(["-c", &script]))
            }
            Self::Uvicorn => {
                let venv = root().join("target/runtimes/venv/bin");
                assert!(
                    venv.join("uvicorn").is_file(),
                    "uvicorn is missing: run `cargo xtask setup --test` (cargo xtask test does)"
                );
                // uvicorn logs its address on stderr only: a shell says the port first.
                let script = format!(
                    "echo listening on 127.0.0.1:{port}; exec {python} {uvicorn} --app-dir {dir} \
                     --host 127.0.0.1 --port {port} --no-access-log --log-level warning \
                     starlette_app:app 2>/dev/null",
                    python = venv.join("python3").display(),
                    uvicorn = venv.join("uvicorn").display(),
                    dir = fixtures.display(),
                );
                start_server(Command::new("sh").args(["-c", &script]))
            }
            Self::NodeAsync => start_server(
                Command::new("node")
                    .arg(fixtures.join("node_async_app.js"))
                    .env("PORT", port.to_string()),
            ),
            Self::Jvm => start_server(
                Command::new("java")
                    .arg("-cp")
                    .arg(java_fixture())
                    .arg("Server")
                    .env("PORT", port.to_string()),
            ),
        };
        wait_until_answering(port, Duration::from_secs(60));
        server
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/runtimes")
}

/// The Go fixture, built once with Debian's Go into the target directory.
pub fn go_fixture() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| go_build("go-fixture", &[])).clone()
}

/// The Go fixture with `net/http/pprof` linked (`-tags pprof`).
pub fn go_pprof_fixture() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| go_build("go-pprof-fixture", &["-tags", "pprof"]))
        .clone()
}

/// Builds the Go fixture with Debian's Go into `target/runtimes/NAME`, with `flags`.
fn go_build(name: &str, flags: &[&str]) -> PathBuf {
    let out = root().join("target/runtimes").join(name);
    let status = Command::new("go")
        .arg("build")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(".")
        .current_dir(fixtures().join("go"))
        .env("GOCACHE", root().join("target/runtimes/gocache"))
        .status()
        .expect("go on PATH: run `cargo xtask setup --test` (cargo xtask test does)");
    assert!(status.success(), "go build of the fixture ({name}) failed");
    out
}

/// The JVM fixture, compiled once with Debian's javac into the target directory.
pub fn java_fixture() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = root().join("target/runtimes/java-fixture");
            let status = Command::new("javac")
                .arg("-d")
                .arg(&out)
                .arg(fixtures().join("java/Server.java"))
                .status()
                .expect("javac on PATH: run `cargo xtask setup --test` (cargo xtask test does)");
            assert!(status.success(), "javac of the fixture failed");
            out
        })
        .clone()
}
