//! The batcher: groups concurrent commands into one Raft entry (group commit).
//!
//! openraft 0.9 appends and fsyncs one entry at a time, so throughput comes from putting many
//! commands into each entry, never from skipping the fsync. The batcher keeps at most
//! `in_flight_entries_max` entries proposed and not yet applied; while they are all in flight,
//! new commands queue, and the next entry takes as many as fit (by count and by
//! `ENTRY_BYTES_MAX`). Under light load an entry carries one command and adds no delay.
//!
//! Entries are handed to openraft in order (`client_write_ff` from this one task), so commands
//! of one caller that waits for each reply are applied in the order it sent them.

use std::sync::Arc;

use ledger_core::codec;
use ledger_core::command::Envelope;
use ledger_core::limits::ENTRY_BYTES_MAX;
use openraft::error::ClientWriteError;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::raft::clock::Clock;
use crate::raft::error::WriteError;
use crate::raft::types::CommandResult;
use crate::raft::types::Payload;
use crate::raft::types::Raft;

/// Fixed overhead of an entry around its commands, for the byte budget.
const ENTRY_OVERHEAD_BYTES: usize = 64;

struct Proposal {
    envelope: Envelope,
    bytes: usize,
    reply: oneshot::Sender<Result<CommandResult, WriteError>>,
}

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Proposal>,
}

/// Limits of one batcher.
#[derive(Clone, Copy, Debug)]
pub struct BatcherLimits {
    pub entry_commands_max: usize,
    pub in_flight_entries_max: usize,
    pub queue_commands_max: usize,
}

impl Batcher {
    pub fn spawn(raft: Raft, limits: BatcherLimits, clock: Clock) -> Batcher {
        assert!(limits.entry_commands_max > 0 && limits.in_flight_entries_max > 0);
        let (tx, rx) = mpsc::channel(limits.queue_commands_max);
        tokio::spawn(run(raft, rx, limits, clock));
        Batcher { tx }
    }

    /// Queues one command; the receiver yields its result once applied on this node.
    pub fn submit(
        &self,
        envelope: Envelope,
    ) -> Result<oneshot::Receiver<Result<CommandResult, WriteError>>, WriteError> {
        let bytes = codec::encoded_len(&envelope);
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Proposal { envelope, bytes, reply }) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(_)) => Err(WriteError::Overloaded),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(WriteError::Shutdown),
        }
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Proposal>, limits: BatcherLimits, clock: Clock) {
    let in_flight = Arc::new(Semaphore::new(limits.in_flight_entries_max));
    let mut carried: Option<Proposal> = None;
    loop {
        let first = match carried.take() {
            Some(proposal) => proposal,
            None => match rx.recv().await {
                Some(proposal) => proposal,
                None => return,
            },
        };
        // Wait for a slot first: commands arriving meanwhile join this entry.
        let permit = in_flight.clone().acquire_owned().await.expect("semaphore is never closed");
        let mut bytes = ENTRY_OVERHEAD_BYTES + first.bytes;
        let mut batch = vec![first];
        while batch.len() < limits.entry_commands_max {
            match rx.try_recv() {
                Ok(next) if bytes + next.bytes <= ENTRY_BYTES_MAX => {
                    bytes += next.bytes;
                    batch.push(next);
                }
                Ok(next) => {
                    carried = Some(next);
                    break;
                }
                Err(_) => break,
            }
        }
        let (envelopes, replies): (Vec<Envelope>, Vec<_>) = batch.into_iter().map(|p| (p.envelope, p.reply)).unzip();
        metrics::histogram!("ledger_batch_commands").record(envelopes.len() as f64);
        let payload = Payload::Commands { proposed_at_ms: clock(), commands: Arc::new(envelopes) };
        let receiver = match raft.client_write_ff(payload).await {
            Ok(receiver) => receiver,
            Err(fatal) => {
                tracing::error!(error = %fatal, "raft is stopped; failing queued writes");
                for reply in replies {
                    let _ = reply.send(Err(WriteError::Shutdown));
                }
                continue;
            }
        };
        tokio::spawn(async move {
            let _permit = permit;
            let outcome = receiver.await;
            match outcome {
                Ok(Ok(response)) => {
                    let results = response.data.results;
                    assert_eq!(results.len(), replies.len(), "one result per proposed command");
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                }
                Ok(Err(ClientWriteError::ForwardToLeader(forward))) => {
                    for reply in replies {
                        let _ = reply.send(Err(WriteError::NotLeader { leader_id: forward.leader_id }));
                    }
                }
                Ok(Err(other)) => {
                    for reply in replies {
                        let _ = reply.send(Err(WriteError::Internal(other.to_string())));
                    }
                }
                Err(_) => {
                    // The responder was dropped: leadership was lost with the entry in flight.
                    // It may still commit under the next leader, so the outcome is unknown.
                    for reply in replies {
                        let _ = reply
                            .send(Err(WriteError::OutcomeUnknown { reason: "leadership lost while in flight".into() }));
                    }
                }
            }
        });
    }
}
