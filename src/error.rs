//! The error type seen at the edges of the relay: configuration, start-up and runtime failures.
//!
//! Inside the data path plain `io::Result` is used; a failing client connection or channel is
//! an ordinary event there, not a daemon error.

use std::fmt::{self, Write};
use std::io;
use std::path::PathBuf;

/// Everything that can stop the relay, with the exit code it maps to.
#[derive(Debug)]
pub enum Error {
    /// A bad flag, JSON key or value. The message names the flag or key. Exit code 2.
    Config(String),
    /// An I/O failure while doing `what` (for example binding the socket). Exit code 1.
    Io {
        /// What the relay was doing, e.g. "binding /run/app.sock".
        what: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The socket path is taken by a live listener or by a file that is not a socket.
    SocketInUse(PathBuf, &'static str),
    /// The DOCA library could not be loaded or the device could not be opened.
    Doca(String),
}

impl Error {
    /// Shorthand for a configuration error.
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// The process exit code for this error: 2 for configuration errors, 1 for the rest.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Error::Config(msg) => msg.clone(),
            Error::Io { what, source } => format!("{what}: {source}"),
            Error::SocketInUse(path, why) => format!("{}: {why}", path.display()),
            Error::Doca(msg) => format!("--channel doca: {msg}"),
        };
        // Arguments, paths and JSON values are quoted into the message as given: a line break
        // or terminal escape in them must not split the one-line error or forge a log line.
        for c in text.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
