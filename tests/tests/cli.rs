//! The command-line tools as operators and core systems use them: `ledger-cluster up` (the
//! main job of README.md), `status`, `dr` commands, and the `ledger` CLI (accounts,
//! transfers, history, journal, bench), each run as a real process.

use std::io::BufRead;
use std::io::BufReader;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use ledger_cluster::launcher::node_port;
use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;

const CLUSTER: &str = env!("CARGO_BIN_EXE_ledger-test-cluster");
const CLI: &str = env!("CARGO_BIN_EXE_ledger-test-cli");

/// A topology file with fresh ports: a primary site of three nodes and a DR site of `dr`.
fn topology_file(dir: &Path, dr: usize) -> PathBuf {
    let mut text = String::new();
    let mut site = |name: &str, role: &str, n: usize| {
        text.push_str(&format!("[[sites]]\nname = \"{name}\"\nrole = \"{role}\"\n"));
        for id in 1..=n {
            text.push_str(&format!(
                "[[sites.nodes]]\nid = {id}\nzone = \"{name}-{id}\"\nclient_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\nmetrics_addr = \"127.0.0.1:{}\"\n",
                node_port(),
                node_port(),
                node_port()
            ));
        }
    };
    site("primary", "active", 3);
    if dr > 0 {
        site("dr", "standby", dr);
    }
    let path = dir.join("topology.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `ledger-cluster up` in the background, stopped (SIGTERM, then SIGKILL) when dropped.
struct Up {
    child: Child,
    stdout: Vec<String>,
}

impl Up {
    fn start(data: &Path, topology: &Path, extra: &[&str]) -> Up {
        let mut child = Command::new(CLUSTER)
            .args(["--data", data.to_str().unwrap(), "--topology", topology.to_str().unwrap()])
            .args(extra)
            .arg("up")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ledger-cluster up");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut lines = Vec::new();
        loop {
            let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("ledger-cluster up did not print its ready line; got {lines:?}")
            });
            let ready = line.starts_with("ready:");
            lines.push(line);
            if ready {
                break;
            }
        }
        Up { child, stdout: lines }
    }

    /// SIGTERM; returns the exit status and stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                use std::io::Read;
                let _ = self.child.stderr.take().unwrap().read_to_string(&mut stderr);
                return (status, stderr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ledger-cluster up did not stop on SIGTERM");
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Pids of processes whose command line mentions `needle` (our data folder).
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) && pid != std::process::id() as i32 {
            pids.push(pid);
        }
    }
    pids
}

fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program).args(args).output().expect("run");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Goal: README's main job. `ledger-cluster up` starts a primary site and a DR site with TLS
/// by default, prints endpoints and a ready line; `status --json` shows both sites; the
/// `ledger` CLI opens accounts, posts single and two-phase transfers, reads history and the
/// journal and runs `bench`; `dr switchover` (two operators) works from the command line; on
/// SIGTERM every node stops and no process is left behind.
#[test]
fn up_status_cli_switchover_and_clean_stop() {
    let _serial = ledger_tests::SERIAL.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let topology = topology_file(dir.path(), 3);
    let up = Up::start(&data, &topology, &[]);
    assert!(up.stdout.iter().any(|l| l.starts_with("primary (active): ")), "{:?}", up.stdout);
    assert!(up.stdout.iter().any(|l| l.starts_with("dr (standby): ")), "{:?}", up.stdout);
    let data_s = data.to_str().unwrap();
    let topology_s = topology.to_str().unwrap();
    let cluster = |args: &[&str]| {
        let mut all = vec!["--data", data_s, "--topology", topology_s];
        all.extend_from_slice(args);
        run(CLUSTER, &all)
    };

    let (ok, out, err) = cluster(&["status", "--json"]);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sites: Vec<(String, String)> = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["site"].as_str().unwrap().to_string(), s["role"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(sites, [("primary".to_string(), "active".to_string()), ("dr".to_string(), "standby".to_string())]);
    assert!(status["nodes"].as_array().unwrap().iter().all(|n| n["reachable"] == true), "{out}");

    let certs = data.join("certs");
    let primary: Vec<String> = {
        let text = std::fs::read_to_string(&topology).unwrap();
        let t: toml::Value = toml::from_str(&text).unwrap();
        t["sites"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["nodes"].as_array().unwrap().iter().map(|n| n["client_addr"].as_str().unwrap().to_string()))
            .collect()
    };
    let endpoints = primary.join(",");
    let as_writer = |args: &[&str]| {
        let ca = certs.join("ca.pem");
        let cert = certs.join("clients/writer.pem");
        let key = certs.join("clients/writer.key");
        let mut all = vec![
            "--endpoints",
            &endpoints,
            "--ca",
            ca.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        run(CLI, &all)
    };
    let (ok, out, err) = as_writer(&[
        "account",
        "create",
        "alice",
        "--currency",
        "EUR",
        "--debits-must-not-exceed-credits",
        "--holder-name",
        "Alice Doe",
        "--card-number",
        "6222123456780123",
    ]);
    assert!(ok && out.contains("alice ok"), "{out}{err}");
    let (ok, out, _) = as_writer(&["account", "create", "bank", "--currency", "EUR"]);
    assert!(ok && out.contains("bank ok"), "{out}");
    let (ok, out, _) = as_writer(&["transfer", "--id", "t1", "--from", "bank", "--to", "alice", "--amount", "100.00"]);
    assert!(ok && out.contains("t1 ok"), "{out}");
    let (ok, out, _) = as_writer(&["transfer", "--id", "t2", "--from", "alice", "--to", "bank", "--amount", "500"]);
    assert!(!ok && out.contains("t2 exceeds_credits"), "a rejected transfer exits non-zero: {out}");
    let (ok, out, _) = as_writer(&[
        "transfer",
        "--id",
        "p1",
        "--from",
        "alice",
        "--to",
        "bank",
        "--amount",
        "30",
        "--pending",
        "--timeout-ms",
        "600000",
    ]);
    assert!(ok && out.contains("p1 ok"), "{out}");
    let (ok, out, _) = as_writer(&["transfer", "post", "p1", "--id", "p1-post", "--amount", "12.50"]);
    assert!(ok && out.contains("p1-post ok"), "{out}");
    let (ok, out, _) = as_writer(&["transfer", "void", "p1", "--id", "p1-void"]);
    assert!(!ok && out.contains("p1-void pending_transfer_already_posted"), "{out}");
    let (ok, out, _) = as_writer(&["--json", "account", "get", "alice"]);
    assert!(ok, "{out}");
    let alice: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(alice["accounts"][0]["debits_posted"], "12.50");
    assert_eq!(alice["accounts"][0]["credits_posted"], "100.00");
    assert_eq!(alice["accounts"][0]["card_number"], "6222123456780123", "a writer sees personal data");
    let (ok, out, _) = as_writer(&["history", "alice", "--all"]);
    assert!(ok && out.lines().count() == 3, "three history rows: {out}");
    let (ok, out, _) = as_writer(&["journal", "head"]);
    assert!(ok && out.starts_with("seq "), "{out}");
    // A rerun on the same accounts (`--run-id`) commits new transfers: no id is reused, so
    // nothing is a replay and `transfers_per_s` counts only new commits.
    for run in 0..2 {
        let (ok, out, err) = as_writer(&[
            "--json",
            "bench",
            "--concurrency",
            "4",
            "--batch",
            "10",
            "--duration",
            "2",
            "--accounts",
            "20",
            "--run-id",
            "cli-bench",
        ]);
        assert!(ok, "run {run}: {out}{err}");
        let bench: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert!(bench["transfers_per_s"].as_f64().unwrap() > 0.0, "{out}");
        assert!(bench["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(bench["transfers_replayed"].as_u64(), Some(0), "run {run} reused transfer ids: {out}");
        let per_s = bench["transfers_ok"].as_f64().unwrap() / bench["duration_s"].as_f64().unwrap();
        assert!((per_s - bench["transfers_per_s"].as_f64().unwrap()).abs() < 1e-6 * per_s.max(1.0), "{out}");
    }

    // Switchover from the command line, with two operators.
    let (ok, out, err) = cluster(&["dr", "switchover", "--request-id", "cli-sw"]);
    assert!(!ok && (out + &err).contains("dual control"), "one operator is refused");
    for operator in ["operator-1", "operator-2"] {
        let (ok, out, err) =
            cluster(&["--as", operator, "dr", "approve", "--request-id", "cli-sw", "--action", "switchover"]);
        assert!(ok, "{out}{err}");
    }
    let (ok, out, err) = cluster(&["--json", "dr", "switchover", "--request-id", "cli-sw"]);
    assert!(ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["to"], "dr");
    assert_eq!(report["records_lost"], 0);
    let (ok, out, _) =
        as_writer(&["transfer", "--id", "after-switchover", "--from", "bank", "--to", "alice", "--amount", "1"]);
    assert!(ok && out.contains("after-switchover ok"), "the client follows the active site: {out}");
    let (ok, out, _) = cluster(&["site-log", "--site", "dr"]);
    assert!(ok && out.contains("promote") && out.contains("operator-1"), "{out}");

    let (status, stderr) = up.stop();
    assert!(status.success(), "ledger-cluster up exits cleanly: {stderr}");
    assert!(stderr.contains("all nodes stopped"), "{stderr}");
    let left = pids_mentioning(data_s);
    for pid in &left {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    assert!(left.is_empty(), "no node process is left behind: {left:?}");
}

/// Goal: plaintext needs `--insecure`, which warns loudly.
#[test]
fn insecure_mode_warns() {
    let _serial = ledger_tests::SERIAL.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let topology = topology_file(dir.path(), 0);
    let up = Up::start(&data, &topology, &["--insecure"]);
    let endpoints = {
        let line = up.stdout.iter().find(|l| l.starts_with("primary (active): ")).unwrap().clone();
        line.trim_start_matches("primary (active): ").replace(' ', ",")
    };
    let (ok, out, err) =
        run(CLI, &["--endpoints", &endpoints, "--insecure", "account", "create", "x", "--currency", "EUR"]);
    assert!(ok && out.contains("x ok"), "{out}{err}");
    assert!(err.contains("--insecure"), "the client warns: {err}");
    let (ok, _, err) = run(CLI, &["--endpoints", &endpoints, "account", "get", "x"]);
    assert!(!ok && err.contains("pass --ca, --cert and --key"), "{err}");
    let (_, stderr) = up.stop();
    assert!(stderr.contains("WARNING: --insecure"), "{stderr}");
    let log = std::fs::read_to_string(data.join("primary/node-1/node.log")).unwrap();
    assert!(log.contains("INSECURE MODE"), "the node warns in its log");
}
