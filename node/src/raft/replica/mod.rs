//! `Replica`: one node's handle on the replicated ledger. The API calls it to write, to read
//! linearizably, and to change membership; it decides locally whether to propose (leader),
//! forward (follower, hop limit 1) or wait (election in progress).
//!
//! openraft 0.9 never steps a partitioned leader down, so the replica refuses writes itself
//! when it is leader but has not heard from a quorum for longer than the election timeout, and
//! every write has a deadline after which its outcome is "unknown" (safe to retry: ids are
//! idempotency keys).
//!
//! One concern per file: `write.rs` (propose, forward, shipped entries), `read.rs` (read
//! index barrier), `membership.rs` (initialize, add, remove), `leadership.rs` (election
//! watchdog, quorum-loss monitor, leadership transfer), `purge.rs` (the Raft log purge).

mod leadership;
mod membership;
mod purge;
mod read;
mod write;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::raft::batcher::Batcher;
use crate::raft::network::PeerClients;
use crate::raft::types::Member;
use crate::raft::types::NodeId;
use crate::raft::types::Raft;
use crate::raft::types::RaftMetrics;
use crate::store::StateReader;

pub struct Replica {
    pub id: NodeId,
    pub member: Member,
    pub raft: Raft,
    pub reader: StateReader,
    pub peers: Arc<PeerClients>,
    batcher: Batcher,
    committed_index: Arc<AtomicU64>,
    write_timeout: Duration,
    read_timeout: Duration,
    election_max: Duration,
    /// Set during a leadership transfer: this leader proposes nothing new.
    transferring: AtomicBool,
    /// When this node last accepted an AppendEntries (heartbeat or entries) from a leader, or
    /// last started an election.
    leader_contact: Mutex<Instant>,
    /// While this node leads without having heard from a quorum for longer than the election
    /// timeout: the milliseconds since the last quorum acknowledgement. Kept by
    /// [`Replica::monitor_leadership`], awaited by every pending write.
    quorum_lost: watch::Sender<Option<u64>>,
    /// Snapshots being received from a leader right now, and when elections resume after
    /// the last one (see [`Replica::receiving_snapshot`]).
    receiving_snapshots: Mutex<Receiving>,
    pub started: Instant,
}

impl Replica {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: NodeId,
        member: Member,
        raft: Raft,
        reader: StateReader,
        peers: Arc<PeerClients>,
        batcher: Batcher,
        committed_index: Arc<AtomicU64>,
        write_timeout: Duration,
        read_timeout: Duration,
        election_max: Duration,
    ) -> Replica {
        Replica {
            id,
            member,
            raft,
            reader,
            peers,
            batcher,
            committed_index,
            write_timeout,
            read_timeout,
            election_max,
            transferring: AtomicBool::new(false),
            leader_contact: Mutex::new(Instant::now()),
            quorum_lost: watch::Sender::new(None),
            receiving_snapshots: Mutex::new(Receiving::default()),
            started: Instant::now(),
        }
    }

    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    pub fn committed_index(&self) -> u64 {
        self.committed_index.load(Ordering::Relaxed)
    }

    /// Whether this node leads without having heard from a quorum for longer than the
    /// election timeout (kept by [`Replica::monitor_leadership`]).
    pub fn quorum_lost(&self) -> bool {
        self.quorum_lost.borrow().is_some()
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Marks a snapshot being received from a leader whose vote this node accepted: this node
    /// does not campaign while the guard lives, nor for a lease after the last one dropped
    /// (openraft's election timer is off, the watchdog waits; see
    /// [`Replica::resume_elections_if_due`]). A node receiving a snapshot is behind the leader
    /// and cannot win; its campaign only deposed the leader and restarted the transfer, which
    /// at 10 M transfers never finished. Right after the install it still must not: the
    /// snapshot's membership can be older than the log (a wiped node added back as a learner
    /// found itself a voter in it and campaigned at once), and the entries that say otherwise
    /// arrive with the leader's next AppendEntries.
    pub fn receiving_snapshot(&self) -> ReceivingSnapshot<'_> {
        let mut receiving = self.receiving_snapshots.lock().expect("lock is never poisoned");
        receiving.count += 1;
        receiving.resume_at = None;
        self.raft.runtime_config().elect(false);
        self.leader_contacted();
        ReceivingSnapshot { replica: self }
    }

    /// Turns openraft's elections back on once no snapshot is being received and a lease has
    /// passed since the last one (called by the watchdog). Returns whether this node may
    /// campaign now.
    fn resume_elections_if_due(&self) -> bool {
        let mut receiving = self.receiving_snapshots.lock().expect("lock is never poisoned");
        if receiving.count > 0 {
            return false;
        }
        match receiving.resume_at {
            None => true,
            Some(at) if Instant::now() >= at => {
                receiving.resume_at = None;
                self.raft.runtime_config().elect(true);
                true
            }
            Some(_) => false,
        }
    }

    /// Notes that a leader's AppendEntries was accepted (for [`Replica::monitor_leadership`]).
    pub fn leader_contacted(&self) {
        *self.leader_contact.lock().expect("lock is never poisoned") = Instant::now();
    }

    /// The member record of `node_id` in the current membership.
    pub fn member_of(&self, node_id: NodeId) -> Option<Member> {
        self.raft.metrics().borrow().membership_config.membership().get_node(&node_id).cloned()
    }
}

/// See [`Replica::receiving_snapshot`].
pub struct ReceivingSnapshot<'a> {
    replica: &'a Replica,
}

impl ReceivingSnapshot<'_> {
    /// Renews the leader contact: the snapshot is still arriving or installing.
    pub fn renew(&self) {
        self.replica.leader_contacted();
    }
}

impl Drop for ReceivingSnapshot<'_> {
    fn drop(&mut self) {
        let mut receiving = self.replica.receiving_snapshots.lock().expect("lock is never poisoned");
        receiving.count -= 1;
        self.replica.leader_contacted();
        if receiving.count == 0 {
            receiving.resume_at = Some(Instant::now() + self.replica.election_max);
        }
    }
}

/// Snapshots being received, and when elections resume after the last.
#[derive(Debug, Default)]
struct Receiving {
    count: usize,
    resume_at: Option<Instant>,
}
