//! `sonde:probe/log`: structured log lines kept with the run, capped in
//! count and size (a flood stops the probe with an output-limit failure).

use crate::bindings::sonde::probe::log::{Host, Level};
use crate::runtime::RunState;
use crate::runtime::outcome::LogLevel;

impl Host for RunState {
    async fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.ctx
            .push_log(level, "probe", message, fields)
            .map_err(wasmtime::Error::new)
    }
}
