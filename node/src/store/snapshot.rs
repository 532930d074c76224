//! Snapshot streams: what a node sends a lagging or wiped follower, read from its newest
//! durable checkpoint and the segment bytes that checkpoint names (never from a copy of the
//! state taken under a lock, and never assembled into a file first).
//!
//! Stream layout: `MAGIC ‖ body_len: u64 LE ‖ crc32(body): u32 LE ‖ body` (the checkpoint
//! body), then for each log (transfers, history, journal) `bytes: u64 LE ‖ frames` (the log's
//! records from its base to the checkpoint's length, framed as in the segment files), then
//! `END`. Each frame carries its own crc32, so a torn or damaged stream is refused before
//! anything is installed.
//!
//! What openraft holds as the current snapshot is a **manifest**: a small file naming the
//! checkpoint file and each log's `(segment, offset, len)` pieces. [`open`] turns it into the
//! stream, opening every file it names at once (an open file stays readable when a later
//! checkpoint or a generation swap unlinks it). The peer network sends that stream
//! (`raft/network.rs`), the follower writes it to a file and installs it.
//!
//! The receiver appends the records to fresh logs (its own positions), rebuilds the indexes
//! exactly as a restart does, and writes its own checkpoint: see `state.rs`.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::io::BufReader;
use std::io::Read;
use std::io::Seek;
use std::path::Path;
use std::path::PathBuf;

use ledger_core::codec;
use serde::Deserialize;
use serde::Serialize;

use super::StoreError;
use super::checkpoint;
use super::io_err;
use super::ledger_state::Cut;
use super::ledger_state::KEY_OF;
use super::ledger_state::LOG_NAMES;
use super::ledger_state::ROLL_BYTES;
use super::segment;
use super::segment::SegmentLog;

const MAGIC: &[u8] = b"LEDGER-SNAPSHOT-2\n";
const MANIFEST_MAGIC: &[u8] = b"LEDGER-SNAPSHOT-MANIFEST-1\n";
const END: &[u8] = b"LSNAPEND";

/// The files a snapshot stream is read from.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// The checkpoint file (its frame header gives the body's length and crc32).
    checkpoint: PathBuf,
    /// Each log's `(segment, offset, len)` pieces, from its base to the checkpoint's length.
    logs: [Vec<(PathBuf, u64, u64)>; 3],
}

/// Writes the manifest of checkpoint file `checkpoint` and the log pieces `logs` to `path`.
/// Not fsynced: manifests are rebuilt on demand, and start-up removes them.
pub fn write_manifest(path: &Path, checkpoint: &Path, logs: [Vec<(PathBuf, u64, u64)>; 3]) -> Result<(), StoreError> {
    let mut bytes = MANIFEST_MAGIC.to_vec();
    bytes.extend_from_slice(&codec::encode(&Manifest { checkpoint: checkpoint.to_path_buf(), logs }));
    std::fs::write(path, bytes).map_err(io_err(path))
}

/// A snapshot file opened for reading: a stream (received from a leader) is read as it is, a
/// manifest (this node's own snapshot) is read as the stream it names. Returns the reader and
/// the stream's length in bytes.
pub fn open(mut file: File, origin: &Path) -> Result<(Box<dyn Read + Send>, u64), StoreError> {
    let corrupt =
        |detail: String| StoreError::Corrupt { what: "snapshot", detail: format!("{}: {detail}", origin.display()) };
    file.seek(io::SeekFrom::Start(0)).map_err(io_err(origin))?;
    let len = file.metadata().map_err(io_err(origin))?.len();
    let mut magic = Vec::with_capacity(MANIFEST_MAGIC.len());
    (&mut file).take(MANIFEST_MAGIC.len() as u64).read_to_end(&mut magic).map_err(io_err(origin))?;
    if magic.starts_with(MAGIC) {
        file.seek(io::SeekFrom::Start(0)).map_err(io_err(origin))?;
        return Ok((Box::new(file), len));
    }
    if magic != MANIFEST_MAGIC {
        return Err(corrupt("neither a snapshot stream nor a manifest".into()));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err(origin))?;
    let manifest: Manifest = codec::decode(&bytes).map_err(|e| corrupt(format!("undecodable manifest: {e}")))?;
    let source = Source::open(&manifest)?;
    let len = source.len;
    Ok((Box::new(source), len))
}

/// The stream a manifest names, read from files opened up front.
struct Source {
    parts: VecDeque<Part>,
    len: u64,
}

enum Part {
    Bytes(io::Cursor<Vec<u8>>),
    /// `remaining` bytes of `file` from its current position; ending early is an error (the
    /// checkpoint named more than the file holds).
    File {
        file: BufReader<File>,
        path: PathBuf,
        remaining: u64,
    },
}

impl Source {
    fn open(manifest: &Manifest) -> Result<Source, StoreError> {
        let mut parts = VecDeque::new();
        let bytes = |bytes: Vec<u8>| Part::Bytes(io::Cursor::new(bytes));
        let open_at = |path: &Path, offset: u64| -> Result<BufReader<File>, StoreError> {
            let mut file = File::open(path).map_err(io_err(path))?;
            file.seek(io::SeekFrom::Start(offset)).map_err(io_err(path))?;
            Ok(BufReader::with_capacity(PART_BUFFER_BYTES, file))
        };
        let path = &manifest.checkpoint;
        let mut file = open_at(path, 0)?;
        let (body_len, crc) = checkpoint::read_header(&mut file, path)?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&body_len.to_le_bytes());
        header.extend_from_slice(&crc.to_le_bytes());
        parts.push_back(bytes(header));
        parts.push_back(Part::File { file, path: path.clone(), remaining: body_len });
        for pieces in &manifest.logs {
            let total: u64 = pieces.iter().map(|(_, _, len)| len).sum();
            parts.push_back(bytes(total.to_le_bytes().to_vec()));
            for (path, offset, len) in pieces {
                parts.push_back(Part::File { file: open_at(path, *offset)?, path: path.clone(), remaining: *len });
            }
        }
        parts.push_back(bytes(END.to_vec()));
        let len = parts
            .iter()
            .map(|part| match part {
                Part::Bytes(cursor) => cursor.get_ref().len() as u64,
                Part::File { remaining, .. } => *remaining,
            })
            .sum();
        Ok(Source { parts, len })
    }
}

/// Read buffer of each file a [`Source`] reads.
const PART_BUFFER_BYTES: usize = 256 * 1024;

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(part) = self.parts.front_mut() {
            let n = match part {
                Part::Bytes(cursor) => cursor.read(buf)?,
                Part::File { remaining: 0, .. } => 0,
                Part::File { file, path, remaining } => {
                    let want = buf.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    let n = file.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{} is shorter than its checkpointed length", path.display()),
                        ));
                    }
                    *remaining -= n as u64;
                    n
                }
            };
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.parts.pop_front();
        }
        Ok(0)
    }
}

/// What a [`StreamCheck`] hands on as it parses a stream: the checkpoint body's bytes and each
/// log's records, in pieces as they arrive. A record is handed on only once its crc32 matched.
pub trait StreamSink {
    /// The next bytes of the checkpoint body.
    fn body(&mut self, _bytes: &[u8]) {}
    /// The next bytes of the current record of log `log` (0..3).
    fn record_part(&mut self, _log: usize, _bytes: &[u8]) {}
    /// The current record of log `log` ended and its crc32 matched.
    fn record(&mut self, _log: usize) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Checks only.
impl StreamSink for () {}

/// Why a stream was refused: damaged (the message names where), or the sink failed.
#[derive(Debug)]
pub enum StreamFault {
    Damaged(String),
    Sink(StoreError),
}

/// Parses a snapshot stream part by part as it arrives: the magic, the checkpoint body's
/// length and crc32, each log's frames with their crc32, and the end marker. The receiver
/// checks a stream with it before the install (where a failure is a storage error that stops
/// the node); the install parses the received file with it again, into fresh logs
/// ([`read_into`]), which also catches a file damaged on disk in between.
#[derive(Debug)]
pub struct StreamCheck {
    at: Expect,
    /// A fixed-size field being gathered across parts.
    field: Vec<u8>,
    crc: crc32fast::Hasher,
    expected_crc: u32,
    /// Bytes left in the body or the current frame's record.
    remaining: u64,
    /// Which log (0..3), and bytes left in it.
    log: usize,
    log_remaining: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Magic,
    BodyHeader,
    Body,
    LogLen,
    FrameHeader,
    Record,
    End,
    Done,
}

impl Default for StreamCheck {
    fn default() -> Self {
        StreamCheck {
            at: Expect::Magic,
            field: Vec::new(),
            crc: crc32fast::Hasher::new(),
            expected_crc: 0,
            remaining: 0,
            log: 0,
            log_remaining: 0,
        }
    }
}

impl StreamCheck {
    /// Checks the next `bytes` of the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.feed_into(bytes, &mut ()).map_err(|fault| match fault {
            StreamFault::Damaged(detail) => detail,
            StreamFault::Sink(e) => e.to_string(),
        })
    }

    /// Checks the next `bytes` of the stream and hands what they carry to `sink`.
    pub fn feed_into(&mut self, mut bytes: &[u8], sink: &mut impl StreamSink) -> Result<(), StreamFault> {
        let damaged = |detail: String| StreamFault::Damaged(detail);
        while !bytes.is_empty() {
            match self.at {
                Expect::Magic => {
                    let Some(magic) = self.gather(&mut bytes, MAGIC.len()) else { continue };
                    if magic != MAGIC {
                        return Err(damaged("not a ledger snapshot stream".into()));
                    }
                    self.at = Expect::BodyHeader;
                }
                Expect::BodyHeader => {
                    let Some(field) = self.gather(&mut bytes, 12) else { continue };
                    let len = u64::from_le_bytes(field[0..8].try_into().expect("8 bytes"));
                    if len > 64 * 1024 * 1024 * 1024 {
                        return Err(damaged("checkpoint length out of range".into()));
                    }
                    self.expected_crc = u32::from_le_bytes(field[8..12].try_into().expect("4 bytes"));
                    self.crc = crc32fast::Hasher::new();
                    self.remaining = len;
                    self.at = Expect::Body;
                    if len == 0 {
                        self.end_of_item(sink)?;
                    }
                }
                Expect::Body | Expect::Record => {
                    let n = bytes.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    self.crc.update(&bytes[..n]);
                    if self.at == Expect::Body {
                        sink.body(&bytes[..n]);
                    } else {
                        sink.record_part(self.log, &bytes[..n]);
                    }
                    bytes = &bytes[n..];
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.end_of_item(sink)?;
                    }
                }
                Expect::LogLen => {
                    let Some(field) = self.gather(&mut bytes, 8) else { continue };
                    self.log_remaining = u64::from_le_bytes(field.try_into().expect("8 bytes"));
                    self.next_frame_or_log();
                }
                Expect::FrameHeader => {
                    let Some(field) = self.gather(&mut bytes, segment::FRAME_HEADER_BYTES as usize) else { continue };
                    let len = u32::from_le_bytes(field[0..4].try_into().expect("4 bytes"));
                    self.expected_crc = u32::from_le_bytes(field[4..8].try_into().expect("4 bytes"));
                    let framed = segment::FRAME_HEADER_BYTES + u64::from(len);
                    if len as usize > segment::RECORD_BYTES_MAX || framed > self.log_remaining {
                        return Err(damaged(format!("a frame of the {} log runs past it", LOG_NAMES[self.log])));
                    }
                    self.log_remaining -= framed;
                    self.crc = crc32fast::Hasher::new();
                    self.crc.update(&len.to_le_bytes());
                    self.remaining = u64::from(len);
                    self.at = Expect::Record;
                    if len == 0 {
                        self.end_of_item(sink)?;
                    }
                }
                Expect::End => {
                    let Some(end) = self.gather(&mut bytes, END.len()) else { continue };
                    if end != END {
                        return Err(damaged("missing end marker".into()));
                    }
                    self.at = Expect::Done;
                }
                Expect::Done => return Err(damaged("bytes after the end marker".into())),
            }
        }
        Ok(())
    }

    /// Whether the whole stream arrived.
    pub fn finish(&self) -> Result<(), String> {
        match self.at {
            Expect::Done => Ok(()),
            at => Err(format!("the stream ended early (expecting {at:?})")),
        }
    }

    /// Gathers a field of `n` bytes from `bytes` (across calls); `Some` once it is whole.
    fn gather(&mut self, bytes: &mut &[u8], n: usize) -> Option<Vec<u8>> {
        let take = (n - self.field.len()).min(bytes.len());
        self.field.extend_from_slice(&bytes[..take]);
        *bytes = &bytes[take..];
        (self.field.len() == n).then(|| std::mem::take(&mut self.field))
    }

    /// The body or a record ended: check its crc32, hand a record on, and move on.
    fn end_of_item(&mut self, sink: &mut impl StreamSink) -> Result<(), StreamFault> {
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        if crc != self.expected_crc {
            return Err(StreamFault::Damaged(match self.at {
                Expect::Body => "checkpoint checksum mismatch".into(),
                _ => format!("frame checksum mismatch in the {} log", LOG_NAMES[self.log]),
            }));
        }
        if self.at == Expect::Body {
            self.at = Expect::LogLen;
        } else {
            sink.record(self.log).map_err(StreamFault::Sink)?;
            self.next_frame_or_log();
        }
        Ok(())
    }

    fn next_frame_or_log(&mut self) {
        if self.log_remaining > 0 {
            self.at = Expect::FrameHeader;
        } else {
            self.log += 1;
            self.at = if self.log == LOG_NAMES.len() { Expect::End } else { Expect::LogLen };
        }
    }
}

/// Writes a parsed stream's records into fresh logs and keeps its checkpoint body.
struct Install {
    body: Vec<u8>,
    logs: Vec<SegmentLog>,
    record: Vec<u8>,
}

impl StreamSink for Install {
    fn body(&mut self, bytes: &[u8]) {
        self.body.extend_from_slice(bytes);
    }

    fn record_part(&mut self, _log: usize, bytes: &[u8]) {
        self.record.extend_from_slice(bytes);
    }

    fn record(&mut self, log: usize) -> Result<(), StoreError> {
        self.logs[log].append(&self.record)?;
        self.record.clear();
        Ok(())
    }
}

/// Reads a snapshot stream into fresh logs under `dir` (which must hold none), verifying every
/// frame as [`StreamCheck`] does, and syncs them. Returns the checkpoint body and the cuts of
/// the new logs (base 0: the stream carries only the current content).
pub fn read_into(mut reader: impl Read, dir: &Path, origin: &Path) -> Result<(Vec<u8>, [Cut; 3]), StoreError> {
    let corrupt =
        |detail: &str| StoreError::Corrupt { what: "snapshot", detail: format!("{}: {detail}", origin.display()) };
    let mut logs = Vec::with_capacity(LOG_NAMES.len());
    for (i, name) in LOG_NAMES.iter().enumerate() {
        let log = SegmentLog::open(&dir.join(name), ROLL_BYTES, KEY_OF[i])?;
        if !log.is_empty() {
            return Err(StoreError::Corrupt { what: "snapshot install", detail: format!("{name} log is not empty") });
        }
        logs.push(log);
    }
    let mut install = Install { body: Vec::new(), logs, record: Vec::new() };
    let mut parse = StreamCheck::default();
    let mut chunk = vec![0u8; 1024 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::Io { path: origin.to_path_buf(), source: e }),
        };
        parse.feed_into(&chunk[..n], &mut install).map_err(|fault| match fault {
            StreamFault::Damaged(detail) => corrupt(&detail),
            StreamFault::Sink(e) => e,
        })?;
    }
    parse.finish().map_err(|detail| corrupt(&detail))?;
    let mut cuts = [Cut::default(); 3];
    for (i, log) in install.logs.iter_mut().enumerate() {
        log.sync()?;
        cuts[i] = Cut { base: 0, len: log.len() };
    }
    Ok((install.body, cuts))
}
