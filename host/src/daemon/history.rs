//! The cluster's events kept past the API server's hour: every
//! `events.interval_seconds` the daemon lists the cluster's core/v1 Events
//! (on a live cluster from its watch of them, so a read costs the API server
//! nothing; a snapshot's otherwise) and stores each occurrence it has not
//! stored yet as a `kube-events` row (see [`crate::kube_events`]). When the
//! events cannot be read, the collector is marked unavailable with the
//! reason and what was kept stays.

use std::time::Duration;

use super::Daemon;
use crate::kube::{KindRef, ListQuery};
use crate::kube_events::{COLLECTOR, NO_NODE, occurrence};
use crate::store::CollectorEventRow;

impl Daemon {
    /// Reads and keeps the events, for as long as the daemon runs.
    pub(super) async fn event_history_loop(self) {
        let mut last_error: Option<String> = None;
        let client = super::alerts::client()
            .map_err(|e| tracing::error!("event alerts off: cannot build an HTTP client: {e}"))
            .ok();
        loop {
            let config = self.loaded().checked.config.events.clone();
            if config.record {
                match self.record_events().await {
                    Ok(stored) => {
                        if !stored.is_empty() {
                            tracing::debug!(stored = stored.len(), "events kept");
                            if let Some(client) = &client {
                                self.alert_events(client, &stored);
                            }
                        }
                        last_error = None;
                    }
                    Err(why) => {
                        // Said once per new reason, not at every interval.
                        if last_error.as_ref() != Some(&why) {
                            tracing::warn!("cluster events not kept: {why}");
                        }
                        if let Err(e) = self
                            .store()
                            .set_collector_unavailable(COLLECTOR, NO_NODE, &why)
                            .await
                        {
                            tracing::error!("cannot record the events' state: {e}");
                        }
                        last_error = Some(why);
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(config.interval_seconds.max(1))).await;
        }
    }

    /// One pass: every event listed, the new occurrences stored and returned.
    pub async fn record_events(&self) -> Result<Vec<CollectorEventRow>, String> {
        let Some(kube) = self.services().kube.clone() else {
            return Err("no cluster is configured".into());
        };
        let kind = KindRef::new("v1", "Event");
        let mut rows = Vec::new();
        // The whole kind at once: the daemon's live backend serves that from
        // its watch cache (a paged list would go to the API server each time).
        let mut query = ListQuery::default();
        loop {
            let page = kube
                .list(&kind, &query)
                .await
                .map_err(|e| format!("list events: {e}"))?;
            rows.extend(
                page.items
                    .iter()
                    .filter_map(|o| occurrence(&o.value))
                    .map(|o| (o.key, o.row)),
            );
            match page.continue_token {
                Some(token) if !token.is_empty() => query.continue_token = Some(token),
                _ => break,
            }
        }
        let stored = self
            .store()
            .write_keyed_events(COLLECTOR, NO_NODE, &rows)
            .await
            .map_err(|e| format!("store events: {}", crate::errors::chain(&e)))?;
        let mut rows: Vec<Option<(String, CollectorEventRow)>> =
            rows.into_iter().map(Some).collect();
        Ok(stored
            .into_iter()
            .filter_map(|i| rows.get_mut(i).and_then(Option::take).map(|(_, row)| row))
            .collect())
    }
}
