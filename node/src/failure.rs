//! What kind of failure ended a command, and the exit status that says so to a script.

use std::fmt;

/// A failure with a kind a script can act on (errors without one exit with 1).
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

/// The kinds of failure that have their own exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The input is wrong: a malformed cap or path, not a node directory (2, as for a
    /// command line that was not understood).
    BadInput,
    /// What was asked for is not there: a vdrive path, a local file (3).
    NotFound,
    /// The grid cannot do it now: too few shares to read, too few servers to upload (4).
    GridShort,
    /// The node is not running, or its gateway does not answer (5).
    NodeDown,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::BadInput => 2,
            Kind::NotFound => 3,
            Kind::GridShort => 4,
            Kind::NodeDown => 5,
        }
    }

    /// The kind's name in JSON errors.
    pub fn name(self) -> &'static str {
        match self {
            Kind::BadInput => "bad_input",
            Kind::NotFound => "not_found",
            Kind::GridShort => "grid_short",
            Kind::NodeDown => "node_down",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An error of kind `kind` saying `message`.
pub fn failure(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind,
        message: message.into(),
    })
}

/// The kind of `error`, if anything in its chain has one.
pub fn kind_of(error: &anyhow::Error) -> Option<Kind> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .map(|f| f.kind)
}

/// The help text's table of exit statuses.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the command failed for another reason (the message on stderr says why), or a
     simulation found a violation
  2  the command line or its input is wrong (a malformed cap or path, not a node directory)
  3  not found: no such vdrive path, local file or directory
  4  the grid cannot do it now: too few shares to read the file, too few servers to upload
  5  the node is not running, or its gateway does not answer";
