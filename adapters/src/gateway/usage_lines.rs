//! The request log as JSON lines (`TOLLGATE_USAGE_LOG_FILE`): one object per proxied request,
//! the request log's columns, for log shippers (Vector, Fluent Bit) that tail a file or read
//! standard output. Written by a thread of its own from the usage writer's batches, so a slow
//! disk or a full pipe never holds up the database writes; batches beyond a small queue are
//! dropped and counted (`tollgate_usage_lines_dropped_total`).

use std::{
    io::Write,
    sync::mpsc::{SyncSender, TrySendError, sync_channel},
};

use tollgate_domain::proxy::usage::UsageRecord;

/// Batches waiting for the thread (about a second each).
const QUEUE: usize = 16;

#[derive(Clone)]
pub struct UsageLines {
    queue: SyncSender<Vec<u8>>,
}

impl UsageLines {
    /// `stdout`, or a file appended to (created when missing).
    pub fn open(target: &str) -> std::io::Result<Self> {
        let mut out: Box<dyn Write + Send> = if target == "stdout" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(target)?,
            )
        };
        let (queue, batches) = sync_channel::<Vec<u8>>(QUEUE);
        std::thread::Builder::new()
            .name("usage-lines".into())
            .spawn(move || {
                for batch in batches {
                    if let Err(e) = out.write_all(&batch).and_then(|()| out.flush()) {
                        tracing::warn!(error = %e, "cannot write the usage JSON lines");
                    }
                }
            })?;
        Ok(Self { queue })
    }

    /// Queues one line per record; never waits.
    pub fn send(&self, records: &[UsageRecord]) {
        if records.is_empty() {
            return;
        }
        let mut batch = Vec::with_capacity(records.len() * 400);
        for record in records {
            if serde_json::to_writer(&mut batch, &serde_json::Value::Object(record.to_row()))
                .is_ok()
            {
                batch.push(b'\n');
            }
        }
        match self.queue.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                metrics::counter!("tollgate_usage_lines_dropped_total")
                    .increment(records.len() as u64);
            }
        }
    }
}
