//! `sonde:probe/collectors`: the node collectors' data (OOM kills, execs,
//! TCP trouble, listen queues, HTTP RED), each attributed to its pod, read
//! from the store the agents write. Queries run through
//! `crate::collectors::query`; every call is checked against the grant.

use crate::bindings::ProbeError;
use crate::bindings::sonde::probe::collectors::{
    CollectorInfo, CollectorQuery, Field, Host, Table,
};
use crate::collectors::{COLLECTORS, query};
use crate::runtime::RunState;

impl Host for RunState {
    async fn list_collectors(&mut self) -> wasmtime::Result<Vec<CollectorInfo>> {
        let store = self.ctx.services.collectors.clone();
        let statuses = match &store {
            Some(s) => s.collector_statuses().await.unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(COLLECTORS
            .iter()
            .map(|c| {
                let on_nodes: Vec<_> = statuses.iter().filter(|s| s.collector == c.name).collect();
                let available = on_nodes.iter().any(|s| s.available);
                let reason = if available {
                    None
                } else if store.is_none() {
                    Some(
                        "this host has no collector store (run the daemon, or sonde run --store)"
                            .to_string(),
                    )
                } else if on_nodes.is_empty() {
                    Some("no agent has reported this collector".to_string())
                } else {
                    Some(
                        on_nodes
                            .iter()
                            .map(|s| {
                                format!(
                                    "{}: {}",
                                    s.node,
                                    s.reason.as_deref().unwrap_or("unavailable")
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                };
                CollectorInfo {
                    name: c.name.to_string(),
                    description: c.description.to_string(),
                    fields: c
                        .fields
                        .iter()
                        .map(|f| Field {
                            name: f.name.to_string(),
                            field_type: f.ty,
                            description: f.description.to_string(),
                        })
                        .collect(),
                    available,
                    reason,
                }
            })
            .collect())
    }

    async fn query(&mut self, q: CollectorQuery) -> wasmtime::Result<Result<Table, ProbeError>> {
        if !self.ctx.grants.allows_collector(&q.collector) {
            let detail = format!("query {}", q.collector);
            return Ok(Err(ProbeError::Denied(self.ctx.deny("collectors", detail))));
        }
        let Some(store) = self.ctx.services.collectors.clone() else {
            return Ok(Err(ProbeError::Unavailable(format!(
                "collector {:?}: this host has no collector store",
                q.collector
            ))));
        };
        Ok(query::run(&store, &q, crate::agent::now_ms()).await)
    }
}
