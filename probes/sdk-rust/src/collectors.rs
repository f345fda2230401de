//! The node collectors (OOM kills, execs, TCP, listen queues, HTTP RED) as
//! the host records them, attributed to pods: whether one is available, and
//! queries whose answers are read by column name.

use crate::ProbeError;
use crate::bindings::sonde::probe::collectors as wit;

pub use wit::{Aggregate, AggregateOp, CollectorQuery, FilterOp, Value};

/// Whether the host has data from collector `name`: `Err(reason)` when not.
pub fn available(name: &str) -> Result<(), String> {
    match wit::list_collectors().into_iter().find(|c| c.name == name) {
        Some(c) if c.available => Ok(()),
        Some(c) => Err(c.reason.unwrap_or_else(|| "unavailable".into())),
        None => Err(format!("the host has no collector {name:?}")),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A query under construction.
pub struct Query(CollectorQuery);

/// Starts a query on `collector` over the last `minutes`.
pub fn query(collector: &str, minutes: u32) -> Query {
    Query(CollectorQuery {
        collector: collector.into(),
        since: now_ms() - i64::from(minutes) * 60_000,
        until: None,
        filters: Vec::new(),
        group_by: Vec::new(),
        aggregates: Vec::new(),
        limit: None,
    })
}

impl Query {
    /// Keeps rows where `field op value`.
    pub fn filter(mut self, field: &str, op: FilterOp, value: Value) -> Self {
        self.0.filters.push(wit::Filter {
            field: field.into(),
            op,
            value,
        });
        self
    }

    /// Groups by these fields.
    pub fn group_by(mut self, fields: &[&str]) -> Self {
        self.0.group_by.extend(fields.iter().map(|f| f.to_string()));
        self
    }

    /// Adds an aggregate (`None` field only for count).
    pub fn aggregate(mut self, op: AggregateOp, field: Option<&str>) -> Self {
        self.0.aggregates.push(Aggregate {
            op,
            field: field.map(String::from),
        });
        self
    }

    pub fn limit(mut self, n: u32) -> Self {
        self.0.limit = Some(n);
        self
    }

    /// Runs it.
    pub fn run(self) -> Result<Table, ProbeError> {
        wit::query(&self.0).map(Table)
    }
}

/// An answer, read by column name.
pub struct Table(pub wit::Table);

impl Table {
    /// Whether the host cut the answer.
    pub fn truncated(&self) -> bool {
        self.0.truncated
    }

    /// The rows, each readable by column name.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.0.rows.iter().map(|values| Row {
            columns: &self.0.columns,
            values,
        })
    }
}

/// One row of an answer.
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl Row<'_> {
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.values.get(i))
    }

    /// A text column (`None` when null or absent).
    pub fn text(&self, column: &str) -> Option<&str> {
        match self.get(column)? {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// A number column as f64 (integers too).
    pub fn number(&self, column: &str) -> Option<f64> {
        match self.get(column)? {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn integer(&self, column: &str) -> Option<i64> {
        match self.get(column)? {
            Value::Integer(i) => Some(*i),
            Value::Float(f) => Some(*f as i64),
            _ => None,
        }
    }
}
