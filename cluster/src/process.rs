//! Node processes: start, stop (SIGTERM, then SIGKILL after a grace period), kill -9,
//! pause (SIGSTOP) and resume (SIGCONT). Always by pid, never by name.

use std::fs::File;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// How to start a node: a program and the arguments before `--config FILE`. `ledger-cluster`
/// runs itself with `node`; tests run their own node binary.
#[derive(Clone, Debug)]
pub struct NodeLauncher {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl NodeLauncher {
    /// This executable, as `<exe> node --config FILE` (the multi-call `ledger-cluster node`).
    pub fn this_executable() -> std::io::Result<NodeLauncher> {
        Ok(NodeLauncher { program: std::env::current_exe()?, args: vec!["node".into()] })
    }

    pub fn program(program: impl Into<PathBuf>) -> NodeLauncher {
        NodeLauncher { program: program.into(), args: Vec::new() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("starting {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("log file {path}: {source}")]
    Log { path: String, source: std::io::Error },
    #[error("signal {signal} to pid {pid}: {source}")]
    Signal { signal: &'static str, pid: u32, source: nix::Error },
}

/// A running (or exited, not yet reaped) node process.
pub struct NodeProcess {
    child: Child,
    paused: bool,
}

impl NodeProcess {
    /// Starts `launcher` with `--config config`, appending stdout and stderr to `log`.
    pub fn start(launcher: &NodeLauncher, config: &Path, log: &Path) -> Result<NodeProcess, ProcessError> {
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| ProcessError::Log { path: log.display().to_string(), source })?;
        let log_err =
            log_file.try_clone().map_err(|source| ProcessError::Log { path: log.display().to_string(), source })?;
        let child = Command::new(&launcher.program)
            .args(&launcher.args)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|source| ProcessError::Spawn { program: launcher.program.display().to_string(), source })?;
        Ok(NodeProcess { child, paused: false })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: Signal) -> Result<(), ProcessError> {
        kill(Pid::from_raw(self.pid() as i32), signal).map_err(|source| ProcessError::Signal {
            signal: signal.as_str(),
            pid: self.pid(),
            source,
        })
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit status if it exited.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// kill -9, then reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; waits up to `grace` for a clean exit, then SIGKILL. Returns whether it exited
    /// cleanly within the grace period.
    pub fn stop(mut self, grace: Duration) -> bool {
        if self.paused {
            let _ = self.signal(Signal::SIGCONT);
        }
        if self.signal(Signal::SIGTERM).is_err() {
            let _ = self.child.wait();
            return false;
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// SIGSTOP: the process freezes with its sockets open (a hung node).
    pub fn pause(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGCONT)?;
        self.paused = false;
        Ok(())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // Never leave a node behind: a dropped handle kills its process.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
