//! The request log: what reached the simulator and how it answered.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::auth::AuthKind;

/// One logged Grafana request (never a secret or header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Sequence number, from 1.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Route template, or `unmatched`.
    pub route: String,
    /// Path without the query.
    pub path: String,
    /// Status answered; 0 for a dropped connection.
    pub status: u16,
    /// Org in context, when authenticated.
    pub org: Option<i64>,
    /// How the request authenticated.
    pub auth: AuthKind,
}

impl RequestRecord {
    /// Did the request ask for a change (not GET or HEAD)?
    pub fn is_write(&self) -> bool {
        self.method != "GET" && self.method != "HEAD"
    }
}

/// Count of requests per (method route, status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestCount {
    /// Route template (includes the method).
    pub route: String,
    /// Status.
    pub status: u16,
    /// How many.
    pub count: u64,
}

/// Records kept; older ones are dropped so long runs stay bounded.
/// Counts and the write count cover every request since the last clear.
pub const LOG_CAP: usize = 100_000;

/// The log with its sequence counter and running counts.
#[derive(Debug, Default)]
pub struct RequestLog {
    records: VecDeque<RequestRecord>,
    counts: BTreeMap<(String, u16), u64>,
    writes: usize,
    next_seq: u64,
}

impl RequestLog {
    /// Appends a record, numbering it.
    pub fn push(&mut self, mut record: RequestRecord) {
        self.next_seq += 1;
        record.seq = self.next_seq;
        *self
            .counts
            .entry((record.route.clone(), record.status))
            .or_default() += 1;
        self.writes += usize::from(record.is_write());
        if self.records.len() == LOG_CAP {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// All kept records, oldest first.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.records.iter().cloned().collect()
    }

    /// Empties the log and its counts; sequence numbers keep counting.
    pub fn clear(&mut self) {
        self.records.clear();
        self.counts.clear();
        self.writes = 0;
    }

    /// Writes (non-GET/HEAD requests) since the last clear.
    pub fn write_count(&self) -> usize {
        self.writes
    }

    /// Counts per route and status since the last clear.
    pub fn counts(&self) -> Vec<RequestCount> {
        let rows = self
            .counts
            .iter()
            .map(|((route, status), count)| RequestCount {
                route: route.clone(),
                status: *status,
                count: *count,
            });
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(method: &str, status: u16) -> RequestRecord {
        RequestRecord {
            seq: 0,
            method: method.into(),
            route: format!("{method} /api/x"),
            path: "/api/x".into(),
            status,
            org: Some(1),
            auth: AuthKind::Basic,
        }
    }

    // Records are numbered, counted per route and status, and writes counted.
    #[test]
    fn log_numbers_and_counts() {
        let mut log = RequestLog::default();
        log.push(record("GET", 200));
        log.push(record("POST", 500));
        log.push(record("POST", 500));
        assert_eq!(log.records()[2].seq, 3);
        assert_eq!(log.write_count(), 2);
        let counts = log.counts();
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[1].count, 2);
        log.clear();
        assert_eq!((log.write_count(), log.counts().len()), (0, 0));
        log.push(record("GET", 200));
        assert_eq!(log.records()[0].seq, 4);
    }
}
