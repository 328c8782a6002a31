//! Log formats: the built-in ones by name, and any Apache `LogFormat` string compiled into a
//! [`Matcher`] (a flat list of literal and field steps) once, up front.

use super::error::AccessLogError;
use super::line::TimeAnchor;
use super::time::EpochUnit;

/// Names accepted by [`Format::named`], in detection-preference order.
pub const BUILTIN_NAMES: &[&str] = &["combined", "common", "vhost_combined", "nginx"];

/// Longest LogFormat string accepted.
pub(crate) const MAX_SPEC_LEN: usize = 4096;

const COMMON: &str = r#"%h %l %u %t "%r" %>s %b"#;
const COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;
const VHOST_COMBINED: &str = r#"%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i""#;

/// An access-log format: a name and a compiled matcher.
///
/// Built-in formats also fall back, per line, to the other built-in layouts (so a `combined` log
/// that also holds `vhost_combined` lines parses both); a custom LogFormat only matches itself.
#[derive(Debug, Clone)]
pub struct Format {
    name: String,
    /// Primary matcher first, then fallbacks.
    pub(crate) matchers: Vec<Matcher>,
}

impl Format {
    /// A built-in format: `combined`, `common`, `vhost_combined`, or `nginx` (nginx's `combined`:
    /// same layout as Apache's, but its time marks the response end). `nginx_combined` is an alias
    /// of `nginx`.
    pub fn named(name: &str) -> Result<Self, AccessLogError> {
        let anchor = TimeAnchor::RequestStart;
        let (name, primary, anchor) = match name {
            "combined" => ("combined", COMBINED, anchor),
            "common" => ("common", COMMON, anchor),
            "vhost_combined" => ("vhost_combined", VHOST_COMBINED, anchor),
            "nginx" | "nginx_combined" => ("nginx", COMBINED, TimeAnchor::ResponseEnd),
            _ => {
                return Err(AccessLogError::UnknownFormat {
                    name: truncate(name, 200),
                });
            }
        };
        let mut matchers = vec![Matcher::compile(primary, anchor)?];
        for other in [COMBINED, VHOST_COMBINED, COMMON] {
            if other != primary {
                matchers.push(Matcher::compile(other, anchor)?);
            }
        }
        Ok(Self {
            name: name.to_owned(),
            matchers,
        })
    }

    /// Compiles an Apache `LogFormat` string, e.g. `%h %l %u %t "%r" %>s %b %D`.
    ///
    /// Config-file escapes (`\"`, `\\`, `\t`, `\n`) are understood, so a string copied from
    /// `httpd.conf` works as is. The format's name is the string itself.
    pub fn from_log_format(spec: &str) -> Result<Self, AccessLogError> {
        let matcher = Matcher::compile(spec, TimeAnchor::RequestStart)?;
        Ok(Self {
            name: spec.to_owned(),
            matchers: vec![matcher],
        })
    }

    /// A built-in name, or else a LogFormat string (anything containing `%`).
    pub fn from_name_or_log_format(spec: &str) -> Result<Self, AccessLogError> {
        if BUILTIN_NAMES.contains(&spec) || spec == "nginx_combined" {
            Self::named(spec)
        } else if spec.contains('%') {
            Self::from_log_format(spec)
        } else {
            Err(AccessLogError::UnknownFormat {
                name: truncate(spec, 200),
            })
        }
    }

    /// The built-in name, or the LogFormat string.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What instant the format's timestamps mark.
    pub fn time_anchor(&self) -> TimeAnchor {
        self.matchers[0].anchor
    }
}

/// Which field of [`AccessLine`](super::AccessLine) a directive fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    Client,
    Ident,
    User,
    Time(TimeKind),
    Request,
    Method,
    UrlPath,
    /// `%U%q` written together.
    UrlPathQuery,
    Protocol,
    Status,
    Bytes,
    DurationMicros,
    /// `%T`/`%{UNIT}T`: the value times this many microseconds.
    DurationScaled(u64),
    Vhost,
    /// `%v:%p` written together: `host` or `host:port`.
    VhostPort,
    Referer,
    UserAgent,
    /// Another request (`%{Name}i`) or response (`%{Name}o`) header, kept in `fields` under the
    /// directive text.
    Header(String),
    /// Anything else, kept in `fields` under the directive text.
    Other(String),
}

impl Slot {
    /// Slots that may be missing at the end of a line (a `common` line in a `combined` log).
    fn is_optional_tail(&self) -> bool {
        match self {
            Slot::Referer | Slot::UserAgent | Slot::Header(_) => true,
            Slot::Client
            | Slot::Ident
            | Slot::User
            | Slot::Time(_)
            | Slot::Request
            | Slot::Method
            | Slot::UrlPath
            | Slot::UrlPathQuery
            | Slot::Protocol
            | Slot::Status
            | Slot::Bytes
            | Slot::DurationMicros
            | Slot::DurationScaled(_)
            | Slot::Vhost
            | Slot::VhostPort
            | Slot::Other(_) => false,
        }
    }

    /// Field identity for "first one wins": a second `%h` or `%b` goes to `fields`.
    fn kind(&self) -> Option<u8> {
        Some(match self {
            Slot::Client => 0,
            Slot::Ident => 1,
            Slot::User => 2,
            Slot::Time(_) => 3,
            Slot::Request => 4,
            Slot::Method => 5,
            Slot::UrlPath | Slot::UrlPathQuery => 6,
            Slot::Protocol => 7,
            Slot::Status => 8,
            Slot::Bytes => 9,
            Slot::DurationMicros | Slot::DurationScaled(_) => 10,
            Slot::Vhost | Slot::VhostPort => 11,
            Slot::Referer => 12,
            Slot::UserAgent => 13,
            Slot::Header(_) | Slot::Other(_) => return None,
        })
    }
}

/// How a time directive is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeKind {
    /// `[10/Oct/2000:13:55:36 -0700]` (`%t`).
    ClfBracketed,
    /// `10/Oct/2000:13:55:36 -0700` (`%{%d/%b/%Y:%H:%M:%S %z}t`).
    Clf,
    /// `%{sec}t`, `%{msec}t`, `%{usec}t`.
    Epoch(EpochUnit),
}

/// A field step of a matcher.
#[derive(Debug, Clone)]
pub(crate) struct FieldStep {
    pub slot: Slot,
    /// Written between double quotes in the format.
    pub quoted: bool,
    /// May hold a comma-separated list with spaces (`10.0.0.2, 10.0.0.1`).
    pub list: bool,
    /// `%l`/`%u` right before `%t`: tolerate its absence (`1.2.3.4 - [time]`).
    pub omittable_before_time: bool,
}

/// One step of a compiled format.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Literal(Box<[u8]>),
    Field(FieldStep),
}

/// A compiled LogFormat.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    pub steps: Vec<Step>,
    /// From this step on, only optional-tail fields (headers) remain: a line may end here.
    pub optional_from: usize,
    pub anchor: TimeAnchor,
}

/// A LogFormat string, tokenized.
#[derive(Debug)]
enum Item {
    Literal(Vec<u8>),
    Directive {
        text: String,
        position: usize,
        arg: Option<String>,
        letter: char,
    },
}

impl Matcher {
    pub(crate) fn compile(spec: &str, default_anchor: TimeAnchor) -> Result<Self, AccessLogError> {
        if spec.len() > MAX_SPEC_LEN {
            return Err(AccessLogError::NoDirective {
                format: truncate(spec, 200),
            });
        }
        let items = tokenize(spec)?;
        let mut anchor = default_anchor;
        // (slot, quoted, directive text, position) and literals, in order.
        let mut steps: Vec<Step> = Vec::new();
        let mut used_kinds: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < items.len() {
            match &items[i] {
                Item::Literal(bytes) => {
                    push_literal(&mut steps, bytes);
                    i += 1;
                }
                Item::Directive {
                    text,
                    position,
                    arg,
                    letter,
                } => {
                    let (mut slot, anchor_here) =
                        slot_for(spec, text, *position, arg.as_deref(), *letter)?;
                    let mut consumed = 1;
                    // `%U%q` and `%v:%p` are read as one field.
                    match (&slot, items.get(i + 1), items.get(i + 2)) {
                        (
                            Slot::UrlPath,
                            Some(Item::Directive {
                                letter: 'q',
                                arg: None,
                                ..
                            }),
                            _,
                        ) => {
                            slot = Slot::UrlPathQuery;
                            consumed = 2;
                        }
                        (
                            Slot::Vhost,
                            Some(Item::Literal(colon)),
                            Some(Item::Directive {
                                letter: 'p',
                                arg: None,
                                ..
                            }),
                        ) if colon.as_slice() == b":" => {
                            slot = Slot::VhostPort;
                            consumed = 3;
                        }
                        _ => {}
                    }
                    if let Some(Item::Directive {
                        text: second,
                        position: second_pos,
                        ..
                    }) = items.get(i + consumed)
                    {
                        return Err(AccessLogError::AdjacentDirectives {
                            format: spec.to_owned(),
                            first: text.clone(),
                            second: second.clone(),
                            position: *second_pos,
                        });
                    }
                    // Quoted: the literal before ends with `"` and the one after starts with it.
                    let before_quote =
                        matches!(steps.last(), Some(Step::Literal(l)) if l.ends_with(b"\""));
                    let after_quote = matches!(items.get(i + consumed), Some(Item::Literal(l)) if l.starts_with(b"\""));
                    let quoted = before_quote && after_quote;
                    if quoted && let Some(Step::Literal(l)) = steps.last_mut() {
                        let trimmed = &l[..l.len() - 1];
                        if trimmed.is_empty() {
                            steps.pop();
                        } else {
                            *l = trimmed.into();
                        }
                    }
                    if !quoted && matches!(slot, Slot::Request | Slot::UserAgent) {
                        return Err(AccessLogError::MustBeQuoted {
                            format: spec.to_owned(),
                            directive: text.clone(),
                            position: *position,
                        });
                    }
                    if let Some(kind) = slot.kind() {
                        if used_kinds.contains(&kind) {
                            slot = Slot::Other(text.clone());
                        } else {
                            used_kinds.push(kind);
                            if let Some(a) = anchor_here {
                                anchor = a;
                            }
                        }
                    }
                    let list = !quoted
                        && (matches!(slot, Slot::Client) || matches!(slot, Slot::Header(_)));
                    steps.push(Step::Field(FieldStep {
                        slot,
                        quoted,
                        list,
                        omittable_before_time: false,
                    }));
                    i += consumed;
                    if quoted && let Some(Item::Literal(after)) = items.get(i) {
                        push_literal(&mut steps, &after[1..]);
                        i += 1;
                    }
                }
            }
        }
        if !steps.iter().any(|s| matches!(s, Step::Field(_))) {
            return Err(AccessLogError::NoDirective {
                format: truncate(spec, 200),
            });
        }
        // `%l`/`%u` followed by " " and `%t` may be absent.
        for j in 0..steps.len() {
            let before_time = matches!(
                (steps.get(j + 1), steps.get(j + 2)),
                (Some(Step::Literal(sp)), Some(Step::Field(FieldStep { slot: Slot::Time(TimeKind::ClfBracketed), .. })))
                    if &**sp == b" "
            );
            if let Some(Step::Field(f)) = steps.get_mut(j)
                && before_time
                && !f.quoted
                && matches!(f.slot, Slot::Ident | Slot::User)
            {
                f.omittable_before_time = true;
            }
        }
        let last_required = steps
            .iter()
            .rposition(|s| matches!(s, Step::Field(f) if !f.slot.is_optional_tail()))
            .unwrap_or(0);
        // The line may end at any literal after the last required field.
        let optional_from = last_required + 1;
        Ok(Self {
            steps,
            optional_from,
            anchor,
        })
    }
}

fn push_literal(steps: &mut Vec<Step>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if let Some(Step::Literal(prev)) = steps.last_mut() {
        let mut joined = prev.to_vec();
        joined.extend_from_slice(bytes);
        *prev = joined.into();
    } else {
        steps.push(Step::Literal(bytes.into()));
    }
}

/// Splits a LogFormat string into literals and directives.
fn tokenize(spec: &str) -> Result<Vec<Item>, AccessLogError> {
    let bytes = spec.as_bytes();
    let mut items = Vec::new();
    let mut literal = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let (decoded, len) = match bytes.get(i + 1) {
                    Some(b'"') => (b'"', 2),
                    Some(b'\\') => (b'\\', 2),
                    Some(b't') => (b'\t', 2),
                    Some(b'n') => (b'\n', 2),
                    _ => (b'\\', 1),
                };
                literal.push(decoded);
                i += len;
            }
            b'%' if bytes.get(i + 1) == Some(&b'%') => {
                literal.push(b'%');
                i += 2;
            }
            b'%' => {
                let start = i;
                i += 1;
                // Conditions (`%!200,304{Referer}i`, `%400{X}i`) and `<`/`>` are accepted and
                // ignored: the field is then `-` on other statuses, which parses fine.
                while i < bytes.len()
                    && (bytes[i].is_ascii_digit() || matches!(bytes[i], b'!' | b',' | b'<' | b'>'))
                {
                    i += 1;
                }
                let mut arg = None;
                if bytes.get(i) == Some(&b'{') {
                    let close = bytes[i..].iter().position(|&b| b == b'}').ok_or_else(|| {
                        AccessLogError::IncompleteDirective {
                            format: spec.to_owned(),
                            position: start,
                        }
                    })?;
                    arg = Some(spec[i + 1..i + close].to_owned());
                    i += close + 1;
                }
                let Some(letter) = spec[i..].chars().next() else {
                    return Err(AccessLogError::IncompleteDirective {
                        format: spec.to_owned(),
                        position: start,
                    });
                };
                i += letter.len_utf8();
                if !literal.is_empty() {
                    items.push(Item::Literal(std::mem::take(&mut literal)));
                }
                items.push(Item::Directive {
                    text: spec[start..i].to_owned(),
                    position: start,
                    arg,
                    letter,
                });
            }
            b => {
                literal.push(b);
                i += 1;
            }
        }
    }
    if !literal.is_empty() {
        items.push(Item::Literal(literal));
    }
    Ok(items)
}

/// Maps a directive to the slot it fills, and the time anchor if it names one (`begin:`/`end:`).
fn slot_for(
    spec: &str,
    text: &str,
    position: usize,
    arg: Option<&str>,
    letter: char,
) -> Result<(Slot, Option<TimeAnchor>), AccessLogError> {
    let unsupported = || AccessLogError::UnsupportedDirective {
        format: spec.to_owned(),
        directive: text.to_owned(),
        position,
    };
    let other = || Slot::Other(text.to_owned());
    let slot = match (letter, arg) {
        ('h' | 'a', None) => Slot::Client,
        ('h' | 'a', Some("c")) => other(),
        ('l', None) => Slot::Ident,
        ('u', None) => Slot::User,
        ('t', None) => Slot::Time(TimeKind::ClfBracketed),
        ('t', Some(arg)) => {
            let (anchor, rest) = if let Some(rest) = arg.strip_prefix("begin:") {
                (Some(TimeAnchor::RequestStart), rest)
            } else if let Some(rest) = arg.strip_prefix("end:") {
                (Some(TimeAnchor::ResponseEnd), rest)
            } else {
                (None, arg)
            };
            let kind = match rest {
                "sec" => TimeKind::Epoch(EpochUnit::Seconds),
                "msec" => TimeKind::Epoch(EpochUnit::Millis),
                "usec" => TimeKind::Epoch(EpochUnit::Micros),
                "%d/%b/%Y:%H:%M:%S %z" => TimeKind::Clf,
                _ => return Err(unsupported()),
            };
            return Ok((Slot::Time(kind), anchor));
        }
        ('r', None) => Slot::Request,
        ('m', None) => Slot::Method,
        ('U', None) => Slot::UrlPath,
        ('q', None) => other(),
        ('H', None) => Slot::Protocol,
        ('s', None) => Slot::Status,
        ('b' | 'B' | 'O', None) => Slot::Bytes,
        ('I' | 'S' | 'k' | 'X' | 'L' | 'R' | 'f' | 'A', None) => other(),
        ('D', None) => Slot::DurationMicros,
        ('T', None | Some("s")) => Slot::DurationScaled(1_000_000),
        ('T', Some("ms")) => Slot::DurationScaled(1_000),
        ('T', Some("us")) => Slot::DurationScaled(1),
        ('v' | 'V', None) => Slot::Vhost,
        ('p', None | Some("canonical" | "local" | "remote")) => other(),
        ('P', None | Some("pid" | "tid" | "hextid")) => other(),
        ('i', Some(name)) if name.eq_ignore_ascii_case("referer") => Slot::Referer,
        ('i', Some(name)) if name.eq_ignore_ascii_case("user-agent") => Slot::UserAgent,
        ('i' | 'o', Some(name)) if !name.is_empty() => Slot::Header(format!("%{{{name}}}{letter}")),
        ('e' | 'n' | 'C', Some(name)) if !name.is_empty() => other(),
        _ => return Err(unsupported()),
    };
    Ok((slot, None))
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    crate::units::cut(s, max).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(spec: &str) -> Vec<String> {
        let m = Matcher::compile(spec, TimeAnchor::RequestStart).unwrap();
        m.steps
            .iter()
            .map(|s| match s {
                Step::Literal(l) => format!("lit({})", String::from_utf8_lossy(l)),
                Step::Field(f) => format!(
                    "{:?}{}{}{}",
                    f.slot,
                    if f.quoted { " quoted" } else { "" },
                    if f.list { " list" } else { "" },
                    if f.omittable_before_time {
                        " omittable"
                    } else {
                        ""
                    }
                ),
            })
            .collect()
    }

    #[test]
    fn combined_compiles_to_quoted_fields() {
        assert_eq!(
            shape(COMBINED),
            [
                "Client list",
                "lit( )",
                "Ident",
                "lit( )",
                "User omittable",
                "lit( )",
                "Time(ClfBracketed)",
                "lit( )",
                "Request quoted",
                "lit( )",
                "Status",
                "lit( )",
                "Bytes",
                "lit( )",
                "Referer quoted",
                "lit( )",
                "UserAgent quoted",
            ]
        );
        let m = Matcher::compile(COMBINED, TimeAnchor::RequestStart).unwrap();
        // The line may end right after %b.
        assert_eq!(m.optional_from, 13);
    }

    #[test]
    fn vhost_port_and_url_query_are_merged() {
        assert_eq!(shape("%v:%p %h"), ["VhostPort", "lit( )", "Client list"]);
        assert_eq!(
            shape(r#""%m %U%q %H""#),
            [
                "lit(\")",
                "Method",
                "lit( )",
                "UrlPathQuery",
                "lit( )",
                "Protocol",
                "lit(\")"
            ]
        );
    }

    #[test]
    fn config_file_escapes() {
        assert_eq!(
            shape(r#"%h \"%r\" 100%%"#),
            ["Client list", "lit( )", "Request quoted", "lit( 100%)"]
        );
    }

    #[test]
    fn second_occurrence_goes_to_fields_and_conditions_are_ignored() {
        assert_eq!(
            shape(r#"%a %h %>s %<s %!200,304{X-Foo}i %400{Referer}i"#),
            [
                "Client list",
                "lit( )",
                "Other(\"%h\")",
                "lit( )",
                "Status",
                "lit( )",
                "Other(\"%<s\")",
                "lit( )",
                "Header(\"%{X-Foo}i\") list",
                "lit( )",
                "Referer",
            ]
        );
    }

    #[test]
    fn time_variants_and_anchor() {
        let m = Matcher::compile("%{end:msec}t %D", TimeAnchor::RequestStart).unwrap();
        assert_eq!(m.anchor, TimeAnchor::ResponseEnd);
        let m = Matcher::compile("%{begin:sec}t", TimeAnchor::ResponseEnd).unwrap();
        assert_eq!(m.anchor, TimeAnchor::RequestStart);
        assert_eq!(shape("%{%d/%b/%Y:%H:%M:%S %z}t"), ["Time(Clf)"]);
        assert_eq!(
            shape("%T %{ms}T %{us}T"),
            [
                "DurationScaled(1000000)",
                "lit( )",
                "Other(\"%{ms}T\")",
                "lit( )",
                "Other(\"%{us}T\")"
            ]
        );
    }

    #[test]
    fn errors_name_the_directive_and_position() {
        let e = Format::from_log_format(r#"%h %l %z %t"#).unwrap_err();
        assert_eq!(
            e,
            AccessLogError::UnsupportedDirective {
                format: "%h %l %z %t".into(),
                directive: "%z".into(),
                position: 6,
            }
        );
        assert!(
            e.to_string().contains("\"%z\" at byte 6 is not supported"),
            "{e}"
        );
        let e = Format::from_log_format("%h %{%Y}t").unwrap_err();
        assert!(matches!(
            e,
            AccessLogError::UnsupportedDirective { position: 3, .. }
        ));
        let e = Format::from_log_format("%h %{Referer").unwrap_err();
        assert!(matches!(
            e,
            AccessLogError::IncompleteDirective { position: 3, .. }
        ));
        let e = Format::from_log_format("%h %").unwrap_err();
        assert!(matches!(
            e,
            AccessLogError::IncompleteDirective { position: 3, .. }
        ));
        let e = Format::from_log_format("%h%l").unwrap_err();
        assert!(matches!(
            e,
            AccessLogError::AdjacentDirectives { position: 2, .. }
        ));
        let e = Format::from_log_format("%h %r").unwrap_err();
        assert!(matches!(
            e,
            AccessLogError::MustBeQuoted { position: 3, .. }
        ));
        let e = Format::from_log_format("no directives").unwrap_err();
        assert!(matches!(e, AccessLogError::NoDirective { .. }));
        let e = Format::from_log_format("%{}i").unwrap_err();
        assert!(matches!(
            e,
            AccessLogError::UnsupportedDirective { position: 0, .. }
        ));
        let e = Format::from_name_or_log_format("apache").unwrap_err();
        assert!(
            e.to_string()
                .contains("combined, common, vhost_combined, nginx"),
            "{e}"
        );
    }

    #[test]
    fn names() {
        for name in BUILTIN_NAMES {
            assert_eq!(Format::named(name).unwrap().name(), *name);
        }
        assert_eq!(Format::named("nginx_combined").unwrap().name(), "nginx");
        assert_eq!(
            Format::named("nginx").unwrap().time_anchor(),
            TimeAnchor::ResponseEnd
        );
        assert_eq!(
            Format::named("combined").unwrap().time_anchor(),
            TimeAnchor::RequestStart
        );
        let f = Format::from_name_or_log_format("%h %t").unwrap();
        assert_eq!(f.name(), "%h %t");
        assert_eq!(f.matchers.len(), 1);
        assert_eq!(Format::named("common").unwrap().matchers.len(), 3);
    }
}
