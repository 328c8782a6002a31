//! The module's error type: what can go wrong before the first line is read.
//!
//! Bad *lines* are not errors: they are [`Reject`](super::Reject)s, counted and kept for display.

/// An access-log setup error: a format that cannot be compiled or detected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessLogError {
    /// The LogFormat string uses a directive memwatch does not understand.
    #[error(
        "LogFormat {format:?}: directive {directive:?} at byte {position} is not supported; \
         supported: %h %a %l %u %t %{{sec|msec|usec}}t %r %m %U %q %H %>s %s %b %B %O %I %S %D %T \
         %{{ms|us|s}}T %v %V %p %P %k %X %{{Name}}i %{{Name}}o %{{Name}}e %{{Name}}n %{{Name}}C %%; \
         replace it with a supported directive or remove it (memwatch only needs the request, status, \
         time and duration)"
    )]
    UnsupportedDirective {
        /// The whole LogFormat string.
        format: String,
        /// The directive as written, e.g. `%{%Y}t` or `%z`.
        directive: String,
        /// Byte offset of its `%` in the LogFormat string.
        position: usize,
    },
    /// `%{` without a closing `}`, or `%` at the very end.
    #[error(
        "LogFormat {format:?}: incomplete directive at byte {position}; \
         every % must be followed by a letter, %{{...}} by a letter, and %% writes a literal %"
    )]
    IncompleteDirective {
        /// The whole LogFormat string.
        format: String,
        /// Byte offset of the `%`.
        position: usize,
    },
    /// Two directives touch without a separator, so their values cannot be told apart.
    #[error(
        "LogFormat {format:?}: directives {first:?} and {second:?} touch at byte {position}, so a line \
         cannot be split between them; put a space (or any literal text) between them"
    )]
    AdjacentDirectives {
        /// The whole LogFormat string.
        format: String,
        /// The first directive.
        first: String,
        /// The directive right after it.
        second: String,
        /// Byte offset of the second directive's `%`.
        position: usize,
    },
    /// `%r` (or a header) must be in double quotes: its value contains spaces.
    #[error(
        "LogFormat {format:?}: {directive:?} at byte {position} must be written in double quotes \
         (\"{directive}\") because its value contains spaces"
    )]
    MustBeQuoted {
        /// The whole LogFormat string.
        format: String,
        /// The directive.
        directive: String,
        /// Byte offset of its `%`.
        position: usize,
    },
    /// The LogFormat string has no directive at all, or is absurdly long.
    #[error(
        "LogFormat {format:?} has no directive or is longer than {max} bytes; give a format \
         such as '%h %l %u %t \"%r\" %>s %b' or a name: {names}",
        max = super::format::MAX_SPEC_LEN,
        names = super::format::BUILTIN_NAMES.join(", ")
    )]
    NoDirective {
        /// The LogFormat string (truncated to 200 bytes).
        format: String,
    },
    /// A format name that is neither built in nor a LogFormat string.
    #[error(
        "unknown log format {name:?}: use one of {names} or an Apache LogFormat string \
         (containing %-directives, e.g. '%h %l %u %t \"%r\" %>s %b %D')",
        names = super::format::BUILTIN_NAMES.join(", ")
    )]
    UnknownFormat {
        /// What was given.
        name: String,
    },
    /// Auto-detection found no built-in format that parses any sample line.
    #[error(
        "could not detect the access-log format: none of {names} parsed any of the first {sampled} \
         non-empty lines (first: {first_line:?}); pass the server's LogFormat string explicitly",
        names = super::format::BUILTIN_NAMES.join(", ")
    )]
    NoFormatDetected {
        /// How many non-empty lines were tried.
        sampled: usize,
        /// The first sampled line (truncated to 200 bytes), to show what the log looks like.
        first_line: String,
    },
}
