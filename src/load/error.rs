//! Why `saythat load` could not run at all: the one error type of the load generator.
//!
//! It exists so every failure reads as one line (what failed, the cause, a hint) and maps to an
//! exit code by its kind. Wrong or missing answers are never errors here: they are in the report.

use std::error::Error;
use std::fmt;

/// What kind of failure stopped a load run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The options contradict each other or are out of range.
    InvalidArgs,
    /// The process may not open enough file descriptors for `--conns`.
    FdLimit,
    /// No connection to the server ever succeeded.
    Connect,
    /// The operating system refused something the loop needs (threads, epoll).
    Internal,
}

/// Why `saythat load` could not run; displays as one line: what failed, the cause, a hint.
#[derive(Debug)]
pub struct LoadError {
    kind: LoadErrorKind,
    what: String,
    cause: String,
    hint: &'static str,
}

impl LoadError {
    pub fn kind(&self) -> LoadErrorKind {
        self.kind
    }

    pub(crate) fn new(
        kind: LoadErrorKind,
        what: impl Into<String>,
        cause: impl Into<String>,
        hint: &'static str,
    ) -> Self {
        LoadError {
            kind,
            what: what.into(),
            cause: cause.into(),
            hint,
        }
    }

    pub(crate) fn invalid(
        what: impl Into<String>,
        cause: impl Into<String>,
        hint: &'static str,
    ) -> Self {
        LoadError::new(LoadErrorKind::InvalidArgs, what, cause, hint)
    }

    pub(crate) fn internal(what: &str, cause: impl fmt::Display) -> Self {
        LoadError::new(
            LoadErrorKind::Internal,
            what,
            cause.to_string(),
            "the system may be out of memory, threads or file descriptors",
        )
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.cause)?;
        if !self.hint.is_empty() {
            write!(f, "; {}", self.hint)?;
        }
        Ok(())
    }
}

impl Error for LoadError {}
