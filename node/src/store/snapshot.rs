//! Snapshot streams: what a node sends a lagging or wiped follower, built from its newest
//! durable checkpoint and the segment bytes that checkpoint names (never from a copy of the
//! state taken under a lock).
//!
//! Layout: `MAGIC ‖ body_len: u64 LE ‖ crc32(body): u32 LE ‖ body` (the checkpoint body), then
//! for each log (transfers, history, journal) `bytes: u64 LE ‖ frames` (the log's records from
//! its base to the checkpoint's length, framed as in the segment files), then `END`. Each frame
//! carries its own crc32, so a torn or damaged stream is refused before anything is installed.
//!
//! The receiver appends the records to fresh logs (its own positions), rebuilds the indexes
//! exactly as a restart does, and writes its own checkpoint: see `state.rs`.

use std::fs::File;
use std::io;
use std::io::BufReader;
use std::io::BufWriter;
use std::io::Read;
use std::io::Seek;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use super::StoreError;
use super::io_err;
use super::ledger_state::Cut;
use super::ledger_state::KEY_OF;
use super::ledger_state::LOG_NAMES;
use super::ledger_state::ROLL_BYTES;
use super::segment;
use super::segment::SegmentLog;
use super::sync_dir;

const MAGIC: &[u8] = b"LEDGER-SNAPSHOT-2\n";
const END: &[u8] = b"LSNAPEND";

/// Writes the snapshot stream of checkpoint `body` to `path` (through a `.tmp`, fsynced and
/// renamed), copying each log's `(path, offset, len)` pieces. Returns the bytes written.
pub fn write(path: &Path, body: &[u8], logs: &[Vec<(PathBuf, u64, u64)>; 3]) -> Result<u64, StoreError> {
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut out = BufWriter::with_capacity(1024 * 1024, file);
    let mut header = Vec::with_capacity(MAGIC.len() + 12);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&(body.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.write_all(&header).map_err(io_err(&tmp))?;
    out.write_all(body).map_err(io_err(&tmp))?;
    let mut total = (header.len() + body.len()) as u64;
    for pieces in logs {
        let bytes: u64 = pieces.iter().map(|(_, _, len)| len).sum();
        out.write_all(&bytes.to_le_bytes()).map_err(io_err(&tmp))?;
        for (piece, offset, len) in pieces {
            let mut source = File::open(piece).map_err(io_err(piece))?;
            source.seek(io::SeekFrom::Start(*offset)).map_err(io_err(piece))?;
            let copied = io::copy(&mut source.take(*len), &mut out).map_err(io_err(piece))?;
            if copied != *len {
                return Err(StoreError::Corrupt {
                    what: "segment file",
                    detail: format!("{} is shorter than its checkpointed length", piece.display()),
                });
            }
        }
        total += 8 + bytes;
    }
    out.write_all(END).map_err(io_err(&tmp))?;
    let file = out.into_inner().map_err(|e| StoreError::Io { path: tmp.clone(), source: e.into_error() })?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(path.parent().expect("snapshot files live in a directory"))?;
    Ok(total + END.len() as u64)
}

/// Reads a snapshot stream into fresh logs under `dir` (which must hold none), verifying every
/// frame, and syncs them. Returns the checkpoint body and the cuts of the new logs (base 0:
/// the stream carries only the current content).
pub fn read_into(reader: impl Read, dir: &Path, origin: &Path) -> Result<(Vec<u8>, [Cut; 3]), StoreError> {
    let corrupt =
        |detail: &str| StoreError::Corrupt { what: "snapshot", detail: format!("{}: {detail}", origin.display()) };
    let mut input = BufReader::with_capacity(1024 * 1024, reader);
    let mut magic = vec![0; MAGIC.len()];
    input.read_exact(&mut magic).map_err(|_| corrupt("truncated"))?;
    if magic != MAGIC {
        return Err(corrupt("not a ledger snapshot"));
    }
    let mut word = [0u8; 8];
    input.read_exact(&mut word).map_err(|_| corrupt("truncated"))?;
    let body_len = u64::from_le_bytes(word);
    let mut crc = [0u8; 4];
    input.read_exact(&mut crc).map_err(|_| corrupt("truncated"))?;
    if body_len > 64 * 1024 * 1024 * 1024 {
        return Err(corrupt("checkpoint length out of range"));
    }
    let mut body = vec![0; body_len as usize];
    input.read_exact(&mut body).map_err(|_| corrupt("truncated checkpoint"))?;
    if crc32fast::hash(&body) != u32::from_le_bytes(crc) {
        return Err(corrupt("checkpoint checksum mismatch"));
    }
    let mut cuts = [Cut::default(); 3];
    let mut record = Vec::new();
    for (i, name) in LOG_NAMES.iter().enumerate() {
        let mut log = SegmentLog::open(&dir.join(name), ROLL_BYTES, KEY_OF[i])?;
        if !log.is_empty() {
            return Err(StoreError::Corrupt { what: "snapshot install", detail: format!("{name} log is not empty") });
        }
        input.read_exact(&mut word).map_err(|_| corrupt("truncated"))?;
        let mut remaining = u64::from_le_bytes(word);
        while remaining > 0 {
            let mut header = [0u8; segment::FRAME_HEADER_BYTES as usize];
            input.read_exact(&mut header).map_err(|_| corrupt("truncated frame"))?;
            let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            let framed = segment::FRAME_HEADER_BYTES + u64::from(len);
            if len as usize > segment::RECORD_BYTES_MAX || framed > remaining {
                return Err(corrupt("frame runs past its log"));
            }
            record.resize(len as usize, 0);
            input.read_exact(&mut record).map_err(|_| corrupt("truncated frame"))?;
            if segment::frame_crc(len, &record) != crc {
                return Err(corrupt("frame checksum mismatch"));
            }
            log.append(&record)?;
            remaining -= framed;
        }
        log.sync()?;
        cuts[i] = Cut { base: 0, len: log.len() };
    }
    let mut end = [0u8; END.len()];
    input.read_exact(&mut end).map_err(|_| corrupt("truncated"))?;
    if end != END {
        return Err(corrupt("missing end marker"));
    }
    Ok((body, cuts))
}
