//! `memwatch pprof`: resident memory by call site as a pprof profile, the gzip-compressed
//! `profile.proto` that `go tool pprof`, Pyroscope and Parca read (documented in `docs/pprof.md`).
//!
//! One sample per call site, route, method and process, with three values: `retained` (bytes
//! still resident at the end of the range, the default), `grown` (bytes made resident by the
//! requests that ended in the range) and `faults` (pages made resident). Samples carry the
//! string labels `http.route` and `http.method` and the numeric label `pid`. Every frame is a
//! location with one line whose function is the frame's label (its function, or
//! `module+0xoffset`) and whose address is the frame's offset in its module, with one mapping per
//! module, so that unsymbolized frames still say where they are.

use std::{collections::HashMap, path::PathBuf};

use crate::{
    error::{RecordingError, exit},
    recording::{
        Recording,
        query::{
            Range,
            stacks::{CallSites, Frame, StackCharge},
        },
    },
    views::call_sites::{NO_STACK, OUTSIDE_REQUESTS, route_label},
};

/// The subset of pprof's `profile.proto` memwatch writes, as prost messages (field numbers as
/// in the upstream file; fields memwatch does not write are left out, and decoders skip them).
/// Strings are indices into `Profile::string_table`, whose first entry is `""`.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Leaf first.
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        /// One per `Profile::sample_type`, in its order.
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        /// A string label's value; 0 for a numeric label.
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
        #[prost(int64, tag = "4")]
        pub num_unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        #[prost(uint64, tag = "4")]
        pub file_offset: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        /// 0: no mapping.
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
        #[prost(bool, tag = "5")]
        pub is_folded: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        /// 0 when unknown.
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

/// The sample types, in the order of every sample's values: (type, unit).
pub const SAMPLE_TYPES: [(&str, &str); 3] = [
    ("retained", "bytes"),
    ("grown", "bytes"),
    ("faults", "count"),
];
/// Every sample's labels: the route (a string; [`OUTSIDE_REQUESTS`] for memory made outside any
/// request), the method (a string, `-` when unknown) and the process (a number).
pub const LABEL_ROUTE: &str = "http.route";
pub const LABEL_METHOD: &str = "http.method";
pub const LABEL_PID: &str = "pid";

/// Failures of `memwatch pprof`.
#[derive(Debug, thiserror::Error)]
pub enum PprofError {
    #[error(
        "{path} has no call sites: it was recorded without --stacks.\n  Record with `memwatch \
         record --stacks ...` to write a pprof profile of where memory is made"
    )]
    NoStacks { path: PathBuf },
    #[error(
        "{path} has no call sites for the route {route:?}; its routes with call sites: \
         {known}.\n  Pass one of them to --route (\"{OUTSIDE_REQUESTS}\" for memory made outside \
         any request), or leave --route out"
    )]
    UnknownRoute {
        path: PathBuf,
        route: String,
        known: String,
    },
    #[error("cannot write the profile {path}: {source}.\n  Choose a writable -o path")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Recording(#[from] RecordingError),
}

impl PprofError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::NoStacks { .. } | Self::UnknownRoute { .. } | Self::Write { .. } => exit::INPUT,
            Self::Recording(e) => e.exit_code(),
        }
    }
}

/// What goes into a profile: the growth of the requests that ended in `range` (whole seconds),
/// with what of it was released by its end; only `route`'s when given (`""` or
/// [`OUTSIDE_REQUESTS`]: memory made outside any request).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub range: Range,
    pub route: Option<String>,
}

/// Interned strings, `""` first.
#[derive(Debug, Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Self::default();
        s.get("");
        s
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// The profile's mappings, locations and functions as samples need them, ids from 1 in order of
/// first use.
#[derive(Debug)]
struct Builder<'a> {
    sites: &'a CallSites,
    strings: Strings,
    mappings: Vec<proto::Mapping>,
    mapping_ids: HashMap<&'a str, u64>,
    locations: Vec<proto::Location>,
    /// Frame id (or, for a stack without frames, the negated stack id) → location id.
    location_ids: HashMap<i64, u64>,
    functions: Vec<proto::Function>,
    function_ids: HashMap<(String, String), u64>,
}

impl<'a> Builder<'a> {
    fn function(&mut self, name: &str, file: &str) -> u64 {
        let key = (name.to_owned(), file.to_owned());
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        let name = self.strings.get(name);
        self.functions.push(proto::Function {
            id,
            name,
            system_name: name,
            filename: self.strings.get(file),
            start_line: 0,
        });
        self.function_ids.insert(key, id);
        id
    }

    /// A module's mapping: it spans offset 0 to past its highest frame (memory and file offsets
    /// alike, so a location's address is its frame's offset), and says it is symbolized only
    /// when every frame of it is, so that pprof may symbolize the rest from the binary.
    fn mapping(&mut self, module: &'a str) -> u64 {
        if let Some(&id) = self.mapping_ids.get(module) {
            return id;
        }
        let frames: Vec<&Frame> = self
            .sites
            .frames
            .values()
            .filter(|f| f.module == module)
            .collect();
        let id = self.mappings.len() as u64 + 1;
        let filename = self.strings.get(module);
        self.mappings.push(proto::Mapping {
            id,
            memory_start: 0,
            memory_limit: frames
                .iter()
                .map(|f| f.offset.max(0) as u64 + 1)
                .max()
                .unwrap_or(1),
            file_offset: 0,
            filename,
            build_id: 0,
            has_functions: frames.iter().all(|f| f.function.is_some()),
            has_filenames: frames.iter().any(|f| f.file.is_some()),
            has_line_numbers: frames.iter().any(|f| f.line.is_some()),
            has_inline_frames: false,
        });
        self.mapping_ids.insert(module, id);
        id
    }

    /// A location of its own, with no mapping, for a stack that has no frames: [`NO_STACK`] for
    /// stack 0, and a name that says so for an id the recording has no frames for.
    fn placeholder(&mut self, stack: i64) -> u64 {
        if let Some(&id) = self.location_ids.get(&-stack) {
            return id;
        }
        let name = if stack == 0 {
            NO_STACK.to_owned()
        } else {
            format!("[stack {stack} not in the recording]")
        };
        let function_id = self.function(&name, "");
        let id = self.locations.len() as u64 + 1;
        self.locations.push(proto::Location {
            id,
            mapping_id: 0,
            address: 0,
            line: vec![proto::Line {
                function_id,
                line: 0,
            }],
            is_folded: false,
        });
        self.location_ids.insert(-stack, id);
        id
    }

    fn frame(&mut self, frame_id: i64, frame: &'a Frame) -> u64 {
        if let Some(&id) = self.location_ids.get(&frame_id) {
            return id;
        }
        let file = frame.file.as_deref().unwrap_or(&frame.module);
        let function_id = self.function(&frame.label(), file);
        let mapping_id = self.mapping(&frame.module);
        let id = self.locations.len() as u64 + 1;
        self.locations.push(proto::Location {
            id,
            mapping_id,
            address: frame.offset.max(0) as u64,
            line: vec![proto::Line {
                function_id,
                line: frame.line.unwrap_or(0),
            }],
            is_folded: false,
        });
        self.location_ids.insert(frame_id, id);
        id
    }

    /// The locations of `stack`, leaf first.
    fn stack(&mut self, stack: i64) -> Vec<u64> {
        let sites = self.sites;
        // The C library's innermost frames fold into their caller (`CallSites::site_ids`).
        let frames: Vec<(i64, &'a Frame)> = sites
            .site_ids(stack)
            .iter()
            .filter_map(|id| sites.frames.get(id).map(|f| (*id, f)))
            .collect();
        if frames.is_empty() {
            return vec![self.placeholder(stack)];
        }
        frames
            .into_iter()
            .map(|(id, frame)| self.frame(id, frame))
            .collect()
    }

    fn sample(&mut self, c: &StackCharge) -> proto::Sample {
        let route = self.strings.get(route_label(&c.route));
        let method = self.strings.get(&c.method);
        let label = vec![
            proto::Label {
                key: self.strings.get(LABEL_ROUTE),
                str: route,
                ..proto::Label::default()
            },
            proto::Label {
                key: self.strings.get(LABEL_METHOD),
                str: method,
                ..proto::Label::default()
            },
            proto::Label {
                key: self.strings.get(LABEL_PID),
                num: c.pid,
                ..proto::Label::default()
            },
        ];
        proto::Sample {
            location_id: self.stack(c.stack),
            value: vec![c.retained(), c.grown, c.pages],
            label,
        }
    }
}

/// The profile of `selection`: one sample per call site, route, method and process, ordered by
/// route (memory made outside requests first), method, process and stack id.
pub fn build(rec: &Recording, selection: &Selection) -> Result<proto::Profile, PprofError> {
    if !rec.stacks_recorded()? {
        return Err(PprofError::NoStacks {
            path: rec.path().to_owned(),
        });
    }
    let route = selection
        .route
        .as_deref()
        .map(|r| if r == OUTSIDE_REQUESTS { "" } else { r });
    let (from, to) = selection.range.bounds();
    let mut charges = rec.stack_charges(from, to, route)?;
    if let Some(route) = route
        && charges.is_empty()
    {
        let mut known: Vec<String> = rec
            .stack_charges(i64::MIN, i64::MAX, None)?
            .into_iter()
            .map(|c| c.route)
            .collect();
        known.sort_unstable();
        known.dedup();
        if !known.iter().any(|r| r == route) {
            let known: Vec<&str> = known.iter().map(|r| route_label(r)).collect();
            return Err(PprofError::UnknownRoute {
                path: rec.path().to_owned(),
                route: route.to_owned(),
                known: if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                },
            });
        }
    }
    charges.sort_by(|a, b| {
        (&a.route, &a.method, a.pid, a.stack).cmp(&(&b.route, &b.method, b.pid, b.stack))
    });
    let sites = rec.call_sites()?;
    let mut b = Builder {
        sites: &sites,
        strings: Strings::new(),
        mappings: Vec::new(),
        mapping_ids: HashMap::new(),
        locations: Vec::new(),
        location_ids: HashMap::new(),
        functions: Vec::new(),
        function_ids: HashMap::new(),
    };
    let sample_type: Vec<proto::ValueType> = SAMPLE_TYPES
        .iter()
        .map(|(t, u)| proto::ValueType {
            r#type: b.strings.get(t),
            unit: b.strings.get(u),
        })
        .collect();
    let default_sample_type = sample_type[0].r#type;
    let sample = charges.iter().map(|c| b.sample(c)).collect();
    // The range's start, and its length when both ends are known.
    let span = rec.span()?;
    let start = selection.range.from_ns.unwrap_or(span.started_ns);
    let end = match (selection.range.to_ns, span.ended_ns) {
        (Some(to), _) | (None, Some(to)) => to,
        (None, None) => rec.latest_ns()?,
    };
    Ok(proto::Profile {
        sample_type,
        sample,
        mapping: b.mappings,
        location: b.locations,
        function: b.functions,
        string_table: b.strings.table,
        time_nanos: start,
        duration_nanos: if start > 0 {
            end.saturating_sub(start).max(0)
        } else {
            0
        },
        default_sample_type,
    })
}

/// The profile as pprof files hold it: protobuf, gzip-compressed.
pub fn encode(profile: &proto::Profile) -> Vec<u8> {
    use std::io::Write as _;

    use prost::Message as _;

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(&profile.encode_to_vec());
    gz.finish().unwrap_or_default()
}

/// Writes the profile of `selection` to `path`; returns it.
pub fn write(
    rec: &Recording,
    selection: &Selection,
    path: &std::path::Path,
) -> Result<proto::Profile, PprofError> {
    let profile = build(rec, selection)?;
    crate::private::write(path, &encode(&profile)).map_err(|source| PprofError::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(profile)
}

#[cfg(test)]
mod tests;
