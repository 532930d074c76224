//! A TCP fault proxy on loopback: every link of a drill goes through one, so faults need no
//! privileges. Each proxy forwards one listening address to one target and can, per
//! direction, pass, delay, or blackhole traffic, or reset every connection.
//!
//! - `Pass`: forward bytes as they come (after the configured delay).
//! - `Blackhole`: keep connections open but drop every byte (a partition: the other side sees
//!   silence and times out, as with a cut cable).
//! - `Reset`: close every connection and refuse new ones (a crashed peer or a firewall reject).
//!
//! Directions are "forward" (client to target) and "backward" (target to client), so a
//! one-way partition is a blackhole in one direction only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// What a direction of a link does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Blackhole,
    Reset,
}

/// The state of both directions of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub forward: Mode,
    pub backward: Mode,
    /// Added to every chunk, each way (an emulated WAN or zone distance).
    pub delay: Duration,
}

impl LinkState {
    pub fn healthy(delay: Duration) -> LinkState {
        LinkState { forward: Mode::Pass, backward: Mode::Pass, delay }
    }
}

/// A running proxy. Dropping it stops it and closes its connections.
pub struct FaultProxy {
    pub listen: SocketAddr,
    pub target: String,
    state: watch::Sender<LinkState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const BUFFER_BYTES: usize = 64 * 1024;

impl FaultProxy {
    /// Listens on a fresh loopback port and forwards to `target`.
    pub async fn start(target: &str, state: LinkState) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(listener, target, state)
    }

    /// Forwards connections accepted on `listener` to `target`.
    pub fn start_on(listener: TcpListener, target: &str, state: LinkState) -> std::io::Result<FaultProxy> {
        let listen = listener.local_addr()?;
        let (tx, rx) = watch::channel(state);
        let target_owned = target.to_string();
        let task = tokio::spawn(accept_loop(listener, target_owned, rx));
        Ok(FaultProxy { listen, target: target.to_string(), state: tx, task })
    }

    pub fn addr(&self) -> String {
        self.listen.to_string()
    }

    pub fn set(&self, state: LinkState) {
        self.state.send_replace(state);
    }

    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }

    /// Both directions blackholed.
    pub fn partition(&self) {
        let delay = self.state().delay;
        self.set(LinkState { forward: Mode::Blackhole, backward: Mode::Blackhole, delay });
    }

    /// Both directions passing.
    pub fn heal(&self) {
        let delay = self.state().delay;
        self.set(LinkState::healthy(delay));
    }
}

async fn accept_loop(listener: TcpListener, target: String, state: watch::Receiver<LinkState>) {
    let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let current = *state.borrow();
        if current.forward == Mode::Reset || current.backward == Mode::Reset {
            drop(client);
            continue;
        }
        let target = target.clone();
        let state = state.clone();
        let handle = tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&target).await else { return };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let forward = pump(client_read, server_write, state.clone(), true);
            let backward = pump(server_read, client_write, state, false);
            tokio::select! {
                _ = forward => {},
                _ = backward => {},
            }
        });
        let mut connections = connections.lock().expect("lock");
        connections.retain(|h| !h.is_finished());
        connections.push(handle);
    }
}

/// Copies one direction, applying the link state to every chunk. Returns when either side
/// closes or the link is reset.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: watch::Receiver<LinkState>,
    forward: bool,
) {
    let mut buffer = vec![0u8; BUFFER_BYTES];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                let s = *state.borrow();
                if s.forward == Mode::Reset || s.backward == Mode::Reset {
                    return;
                }
                continue;
            }
        };
        let s = *state.borrow();
        let mode = if forward { s.forward } else { s.backward };
        match mode {
            Mode::Reset => return,
            Mode::Blackhole => continue,
            Mode::Pass => {}
        }
        if !s.delay.is_zero() {
            tokio::time::sleep(s.delay).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> (String, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (addr, task)
    }

    async fn round_trip(stream: &mut TcpStream, within: Duration) -> bool {
        if stream.write_all(b"ping").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        matches!(tokio::time::timeout(within, stream.read_exact(&mut buf)).await, Ok(Ok(_)))
    }

    /// Goal: the proxy passes, delays, blackholes one way or both, resets and heals.
    #[tokio::test]
    async fn modes_do_what_they_say() {
        let (target, _server) = echo_server().await;
        let proxy = FaultProxy::start(&target, LinkState::healthy(Duration::ZERO)).await.unwrap();
        let mut conn = TcpStream::connect(proxy.listen).await.unwrap();
        assert!(round_trip(&mut conn, Duration::from_secs(2)).await, "pass");

        proxy.set(LinkState::healthy(Duration::from_millis(100)));
        let started = std::time::Instant::now();
        assert!(round_trip(&mut conn, Duration::from_secs(2)).await);
        assert!(started.elapsed() >= Duration::from_millis(200), "delay applies each way");

        proxy.set(LinkState { forward: Mode::Pass, backward: Mode::Blackhole, delay: Duration::ZERO });
        assert!(!round_trip(&mut conn, Duration::from_millis(300)).await, "one-way blackhole drops replies");
        proxy.partition();
        assert!(!round_trip(&mut conn, Duration::from_millis(300)).await, "partition");
        proxy.heal();
        let mut fresh = TcpStream::connect(proxy.listen).await.unwrap();
        assert!(round_trip(&mut fresh, Duration::from_secs(2)).await, "healed");

        proxy.set(LinkState { forward: Mode::Reset, backward: Mode::Reset, delay: Duration::ZERO });
        let mut reset = TcpStream::connect(proxy.listen).await.unwrap();
        assert!(!round_trip(&mut reset, Duration::from_millis(300)).await, "reset refuses");
        proxy.heal();
        let mut again = TcpStream::connect(proxy.listen).await.unwrap();
        assert!(round_trip(&mut again, Duration::from_secs(2)).await, "healed after reset");
    }
}
