//! Log lines kept with the run (`sonde:probe/log`).

use crate::bindings::sonde::probe::log::{Level, log};

/// A debug line.
pub fn debug(message: &str) {
    log(Level::Debug, message, &[]);
}

/// An informational line.
pub fn info(message: &str) {
    log(Level::Info, message, &[]);
}

/// A warning.
pub fn warn(message: &str) {
    log(Level::Warn, message, &[]);
}

/// An error line (the run itself goes on).
pub fn error(message: &str) {
    log(Level::Error, message, &[]);
}

/// A line with key/value fields.
pub fn with_fields(level: Level, message: &str, fields: &[(String, String)]) {
    log(level, message, fields);
}

pub use crate::bindings::sonde::probe::log::Level as LogLevel;
