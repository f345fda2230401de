//! `sonde:probe/collectors`: events, audit records and eBPF data recorded by
//! the host. No collector runs in this version: the list is empty and a
//! granted query answers `unavailable`.

use crate::bindings::ProbeError;
use crate::bindings::sonde::probe::collectors::{CollectorInfo, CollectorQuery, Host, Table};
use crate::runtime::RunState;

impl Host for RunState {
    async fn list_collectors(&mut self) -> wasmtime::Result<Vec<CollectorInfo>> {
        Ok(Vec::new())
    }

    async fn query(&mut self, q: CollectorQuery) -> wasmtime::Result<Result<Table, ProbeError>> {
        if !self.ctx.grants.allows_collector(&q.collector) {
            let detail = format!("query {}", q.collector);
            return Ok(Err(ProbeError::Denied(self.ctx.deny("collectors", detail))));
        }
        Ok(Err(ProbeError::Unavailable(format!(
            "collector {:?} is not available in this version of the host",
            q.collector
        ))))
    }
}
