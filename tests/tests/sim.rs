//! The simulator (`ledger_chaos::sim`, issue 13) as tests: hundreds of seeded whole clusters of
//! real node code under faults, every invariant checked at every step and at the end; the
//! seeds that found bugs, kept; and the checkers shown to fail on a node that loses its disk.
//!
//! The simulator is a second tier beside the real-process drills (`chaos.rs`), not a
//! replacement: it runs the node's code in one thread on a paused clock, without processes,
//! sockets, gRPC transport or TLS.

use std::path::Path;
use std::time::Duration;

use ledger_chaos::sim;
use ledger_chaos::sim::SimOptions;
use ledger_chaos::sim::Summary;

/// Runs `seeds` with `options` on `jobs` threads and returns the summary and the failing
/// seeds' reports (trace and failures, printed). Panics if the run takes longer than `bound`:
/// a seed that never ends (a task spinning without yielding stops the simulated clock) must
/// fail the test, not hang it.
fn run(seeds: std::ops::Range<u64>, options: SimOptions, jobs: usize, bound: Duration) -> (Summary, Vec<String>) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let failures = std::sync::Mutex::new(Vec::new());
        let summary = sim::run_many(seeds, jobs, &options, |report| {
            if !report.passed() {
                let mut text = report.trace.join("\n");
                for failure in report.failures() {
                    text.push_str(&format!("\nFAIL seed {}: {}: {}", report.seed, failure.property, failure.detail));
                }
                failures.lock().expect("lock is never poisoned").push(text);
            }
        });
        let _ = done.send((summary, failures.into_inner().expect("lock is never poisoned")));
    });
    finished.recv_timeout(bound).unwrap_or_else(|_| panic!("the simulation did not finish within {bound:?}"))
}

fn options(dir: &Path) -> SimOptions {
    SimOptions::new(0, dir)
}

fn sim_dir(name: &str) -> std::path::PathBuf {
    sim::default_dir().with_file_name(format!("ledger-sim-test-{name}-{}", std::process::id()))
}

/// Goal: every invariant holds over 200 seeds (issue 13's CI figure): conservation, balance
/// limits, at-most-once, every acknowledged transfer present, journals equal and chained and
/// equal to an independent replay, votes never going back, and a write committing within 20 s
/// of healing. Method: seeds 1-200 with 12 s of load and faults each, three seeds at a time.
#[test]
fn two_hundred_seeds_keep_every_invariant() {
    let dir = sim_dir("200");
    let (summary, failures) = run(1..201, options(&dir), 3, Duration::from_secs(900));
    println!("{summary}");
    assert!(failures.is_empty(), "{}\n\n{summary}", failures.join("\n\n"));
    assert_eq!(summary.seeds, 200);
    assert!(summary.acked > 100_000, "the workload must have done real work: {summary}");
    assert!(summary.crashes > 200, "the faults must have fired: {summary}");
}

/// Goal: the seeds that found bugs stay fixed. Method: each runs alone, bounded in time.
/// - seed 3: a write waiting for a leader on a node whose Raft had stopped looped without
///   waiting (its metrics channel was closed), spinning a core until its deadline; in the
///   simulator the clock never reached the deadline and the seed never ended. Fixed in
///   `replica/write.rs` and `replica/read.rs`.
/// - seed 245: the simulator held a crashed node's services in a lost client request until
///   the client's deadline, so the node could not restart (its store still open). Fixed in the
///   simulated client and network: a crash resets every connection to the node.
/// - seed 1251: two nodes led term 13 at once, which openraft 0.9 allows (its leader id is
///   term and node id; only the greater can commit): the checker's "one leader per term" was
///   wrong for openraft and now traces it instead; agreement is checked on the journals.
/// - seed 263: the vote check read a restarted node's metrics before its Raft core had loaded
///   the stored vote (openraft starts its metrics blank) and reported the vote going back; the
///   simulator now counts a node as up once its core has reported.
#[test]
fn seeds_that_found_bugs_stay_fixed() {
    for seed in [3, 245, 263, 1251] {
        let dir = sim_dir(&format!("regression-{seed}"));
        let (summary, failures) = run(seed..seed + 1, options(&dir), 1, Duration::from_secs(120));
        assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n\n"));
        assert_eq!(summary.seeds, 1);
    }
}

/// Goal: the checkers can fail, and not only on one property. Method: sabotage (a crashed
/// node comes back with an empty data dir: its log and its vote gone, which Raft cannot survive
/// unnoticed) on 20 seeds. Measured 2026-12-01: 17 of 20 fail, all on the vote going back, 4
/// also on acknowledged transfers missing or journals disagreeing (the seeds where the wiped
/// node's blank vote let a stale candidate win). Asserted: at least half fail, and at least one
/// reports lost or diverging data.
#[test]
fn the_checkers_catch_a_node_that_loses_its_disk() {
    let dir = sim_dir("amnesia");
    let (summary, failures) = run(1..21, SimOptions { amnesia: true, ..options(&dir) }, 3, Duration::from_secs(300));
    println!("{summary}");
    assert!(failures.len() >= 10, "only {} of 20 seeds caught a node that lost its disk: {summary}", failures.len());
    let data_loss = failures.iter().filter(|f| {
        f.contains(": every acknowledged transfer is present:")
            || f.contains(": journal agreement:")
            || f.contains(": hash chains agree:")
    });
    assert!(
        data_loss.count() >= 1,
        "no seed reported the lost or diverging data: {summary}\n{}",
        failures.join("\n\n")
    );
}
