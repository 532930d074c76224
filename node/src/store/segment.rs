//! `SegmentLog`: an append-only log of framed, checksummed records split over segment files,
//! the building block of docs/storage-design.md (journal, transfer and history segments).
//!
//! A record is framed as `len: u32 LE ‖ crc32: u32 LE ‖ bytes`, the crc over `len ‖ bytes`.
//! Positions are logical: segment `n` holds `[n * roll_bytes, (n + 1) * roll_bytes)`, and a
//! record never crosses a segment boundary (the writer rolls to the next segment first), so a
//! position names its file and offset without any index.
//!
//! Durability is the caller's: `append` buffers, `flush` hands the bytes to the kernel,
//! `sync` fsyncs every file written since the last sync (and the directory when a segment was
//! created). Recovery is by length, not by scanning for a torn tail: the checkpoint that names
//! a length was written only after the bytes up to it were synced, and start-up truncates the
//! log to that length (`truncate`), because anything after it is redone from the Raft log.
//!
//! Beside each segment file `n.seg` is its key file `n.keys`: one entry per record, `offset:
//! u32 LE ‖ frame_len: u32 LE ‖ key_len: u8 ‖ key ‖ crc32: u32 LE` (the crc over the entry's
//! other bytes), where the key is the front of the record that the start-up index rebuild
//! needs (a transfer's id, a history row's account; nothing for the journal), as the log's
//! [`KeyOf`] says. A start-up then reads ~25 bytes per record instead of the record. Key files
//! are derived data: an entry counts only while the entries from offset 0 chain frame to
//! frame within the segment, and where they stop, the rebuild reads the records themselves and
//! rewrites the key file ([`SegmentLog::for_each_key`], [`SegmentLog::rewrite_keys`]).
//!
//! A sealed segment (one with a later segment after it: its bytes never change again) may also
//! have a fingerprint file `n.fps`: every record's `(fingerprint, position)`, sorted, where the
//! fingerprint is the caller's 64-bit keyed hash of the record's key. Written off the apply
//! path after a checkpoint ([`SealedSegment::save_fingerprints`]) or by the start-up that had to
//! compute it, it spares a start-up the reading, hashing and sorting of that segment's keys
//! ([`SegmentLog::fingerprint_runs`]). It is derived data too: the file names the key's seed
//! and the segment's length and is checksummed whole; one that does not match is ignored and
//! computed again, and a truncate removes the files of the segments it cuts.

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use super::PacedFile;
use super::StoreError;
use super::WRITE_BACK_STEP_BYTES;
use super::io_err;
use super::sync_dir;
use super::write_back;

/// Frame header: length and crc32, both u32 little-endian.
pub const FRAME_HEADER_BYTES: u64 = 8;
/// The largest record: far below any segment size we use.
pub const RECORD_BYTES_MAX: usize = 16 * 1024 * 1024;
const _: () = assert!(RECORD_BYTES_MAX < u32::MAX as usize);
/// Bytes buffered before `append` writes them to the file by itself.
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt { what: "segment record", detail }
}

pub fn frame_crc(len: u32, bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(bytes);
    hasher.finalize()
}

/// Why the front of a buffer is not a whole frame that checks.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameFault {
    /// The header or the record runs past the end of the buffer.
    Short,
    /// The crc does not match.
    Checksum,
}

/// The record framed at the front of `bytes`, and the frame's size, if the frame is whole and
/// its crc matches (the segment logs' frames and the Raft log's alike).
pub fn checked_frame(bytes: &[u8]) -> Result<(&[u8], usize), FrameFault> {
    let header = bytes.get(..FRAME_HEADER_BYTES as usize).ok_or(FrameFault::Short)?;
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let end = FRAME_HEADER_BYTES as usize + len as usize;
    let record = bytes.get(FRAME_HEADER_BYTES as usize..end).ok_or(FrameFault::Short)?;
    if frame_crc(len, record) != crc {
        return Err(FrameFault::Checksum);
    }
    Ok((record, end))
}

struct Segment {
    index: u64,
    path: PathBuf,
    /// Shared with [`SegmentReader`]s, which read without the log.
    file: Arc<File>,
    /// Bytes in the file (flushed or not: `pending` is appended after them).
    len: u64,
    dirty: bool,
    /// Bytes of the file below this offset were handed to the background writeback.
    writeback_from: u64,
    keys_path: PathBuf,
    keys_file: File,
    /// Bytes in the key file (`pending_keys` is appended after them).
    keys_len: u64,
    /// Bytes of the key file below this offset were handed to the background writeback.
    keys_writeback_from: u64,
    /// The fingerprint file's path (the file exists only for some sealed segments).
    fps_path: PathBuf,
}

impl Segment {
    fn open(dir: &Path, index: u64, create: bool) -> Result<(Segment, bool), StoreError> {
        let path = dir.join(format!("{index:08}.seg"));
        let file = OpenOptions::new().read(true).write(true).create_new(create).open(&path).map_err(io_err(&path))?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        let keys_path = dir.join(format!("{index:08}.keys"));
        let keys_existed = keys_path.exists();
        let keys_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(create)
            .open(&keys_path)
            .map_err(io_err(&keys_path))?;
        let keys_len = keys_file.metadata().map_err(io_err(&keys_path))?.len();
        let segment = Segment {
            index,
            path,
            file: Arc::new(file),
            len,
            dirty: create,
            writeback_from: len,
            keys_path,
            keys_file,
            keys_len,
            keys_writeback_from: keys_len,
            fps_path: dir.join(format!("{index:08}.fps")),
        };
        Ok((segment, create || !keys_existed))
    }

    /// The key file's bytes as written (not the log's pending ones).
    fn read_keys(&self) -> Result<Vec<u8>, StoreError> {
        let mut keys = vec![0u8; self.keys_len as usize];
        self.keys_file.read_exact_at(&mut keys, 0).map_err(io_err(&self.keys_path))?;
        Ok(keys)
    }

    /// How far the key entries chain from offset 0 without passing `limit`: (key-file bytes,
    /// segment offset) of the end of the last entry that counts.
    fn keys_cover(keys: &[u8], limit: u64) -> (usize, u64) {
        let mut chain = ChainedKeys::new(keys, limit);
        chain.by_ref().for_each(drop);
        (chain.at, chain.covered)
    }

    /// Replaces the key file's bytes from `at` with `tail`.
    fn write_keys_from(&mut self, at: u64, tail: &[u8]) -> Result<(), StoreError> {
        self.keys_file.set_len(at).map_err(io_err(&self.keys_path))?;
        self.keys_file.write_all_at(tail, at).map_err(io_err(&self.keys_path))?;
        self.keys_len = at + tail.len() as u64;
        self.keys_writeback_from = self.keys_writeback_from.min(at);
        self.dirty = true;
        Ok(())
    }
}

// Every `WRITE_BACK_STEP_BYTES` written, a background thread writes the segment's new bytes
// (and its key file's) back to the disk (`write_back`, RocksDB's `bytes_per_sync`): without it
// the kernel lets the segment pages pile up dirty, and they reach the disk in bursts (the
// checkpoint's fsync, the kernel's flusher) that stall the Raft log's fsyncs on the same disk.
// Durability still comes from the checkpoint's fsync; this only spreads the writes out, off the
// apply path.

/// The background writeback of one log: a thread that writes back the ranges it is handed,
/// one at a time. A request while it is busy is refused, and the caller asks again later for
/// the range from the same start; the thread ends with the log.
struct Writeback {
    requests: std::sync::mpsc::SyncSender<Vec<(File, u64, u64)>>,
}

impl Writeback {
    fn start(dir: &Path) -> Writeback {
        let (requests, pending) = std::sync::mpsc::sync_channel::<Vec<(File, u64, u64)>>(1);
        let name = format!("writeback {}", dir.file_name().and_then(|n| n.to_str()).unwrap_or("segments"));
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                for ranges in pending {
                    for (file, from, to) in ranges {
                        if let Err(e) = write_back(&file, from, to - from) {
                            tracing::warn!(error = %e, "background segment writeback failed; the checkpoint's fsync will report it");
                        }
                    }
                }
            })
            .expect("spawn the segment writeback thread");
        Writeback { requests }
    }

    /// Asks for each range `from..to` of its file to be written back; false if the thread is
    /// busy.
    fn request(&self, ranges: [(&File, u64, u64); 2]) -> bool {
        let handles: io::Result<Vec<_>> =
            ranges.into_iter().map(|(file, from, to)| Ok((file.try_clone()?, from, to))).collect();
        handles.is_ok_and(|handles| self.requests.try_send(handles).is_ok())
    }
}

/// What [`SegmentLog::for_each_key`] calls with each record's position and key (or, where the
/// key file is missing, the whole record: the key is its front, so a caller decodes both alike).
pub type RecordVisitor<'a> = dyn FnMut(u64, &[u8]) -> Result<(), StoreError> + 'a;

/// The length of a record's key: the front of it that its key file keeps (at most 255 bytes).
pub type KeyOf = fn(&[u8]) -> usize;

/// For a log whose rebuild needs only the records' positions.
pub fn no_key(_: &[u8]) -> usize {
    0
}

/// A key entry's bytes besides the key: offset, frame length, key length, crc.
const KEY_ENTRY_FIXED_BYTES: usize = 4 + 4 + 1 + 4;

/// Appends the key entry of the record framed at `offset` of its segment.
fn push_key_entry(keys: &mut Vec<u8>, offset: u64, record: &[u8], key_len: usize) {
    assert!(key_len <= usize::from(u8::MAX) && key_len <= record.len(), "key of {key_len} bytes");
    let start = keys.len();
    keys.extend_from_slice(&u32::try_from(offset).expect("segments are under 4 GiB").to_le_bytes());
    keys.extend_from_slice(&(record.len() as u32).to_le_bytes());
    keys.push(key_len as u8);
    keys.extend_from_slice(&record[..key_len]);
    let crc = crc32fast::hash(&keys[start..]);
    keys.extend_from_slice(&crc.to_le_bytes());
}

/// One entry of a key file.
struct KeyEntry<'a> {
    offset: u64,
    frame_len: u64,
    key: &'a [u8],
}

/// The entry at byte `at` of a key file's bytes and where the next starts; `None` at the end
/// or at a torn or damaged entry.
fn key_entry_at(keys: &[u8], at: usize) -> Option<(KeyEntry<'_>, usize)> {
    let fixed = keys.get(at..at + 9)?;
    let key_len = usize::from(fixed[8]);
    let end = at + KEY_ENTRY_FIXED_BYTES + key_len;
    let entry = keys.get(at..end)?;
    let (body, crc) = entry.split_at(entry.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return None;
    }
    let offset = u64::from(u32::from_le_bytes(body[0..4].try_into().expect("4 bytes")));
    let len = u64::from(u32::from_le_bytes(body[4..8].try_into().expect("4 bytes")));
    Some((KeyEntry { offset, frame_len: FRAME_HEADER_BYTES + len, key: &body[9..] }, end))
}

/// The entries of a key file that chain from segment offset 0, each starting where the one
/// before ended and none passing `limit`, as `(offset, key)`: the walk stops at the first torn,
/// damaged or out-of-chain entry. `covered` is the segment offset the entries reached so far
/// and `at` the key-file bytes they took.
struct ChainedKeys<'a> {
    keys: &'a [u8],
    limit: u64,
    at: usize,
    covered: u64,
}

impl<'a> ChainedKeys<'a> {
    fn new(keys: &'a [u8], limit: u64) -> Self {
        ChainedKeys { keys, limit, at: 0, covered: 0 }
    }
}

impl<'a> Iterator for ChainedKeys<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (entry, next) = key_entry_at(self.keys, self.at)?;
        if entry.offset != self.covered || self.covered + entry.frame_len > self.limit {
            return None;
        }
        let offset = self.covered;
        self.covered += entry.frame_len;
        self.at = next;
        Some((offset, entry.key))
    }
}

/// `Read` over a file from an offset, with `pread` (never moves a shared file offset).
struct ReadAt<'a> {
    file: &'a File,
    offset: u64,
}

impl std::io::Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

pub struct SegmentLog {
    dir: PathBuf,
    roll_bytes: u64,
    segments: Vec<Segment>,
    /// Bytes appended to the last segment and not yet written to it.
    pending: Vec<u8>,
    /// Their key entries, not yet written to the last segment's key file.
    pending_keys: Vec<u8>,
    key_of: KeyOf,
    /// A segment file was created or removed since the last `sync`: the directory needs one.
    dir_dirty: bool,
    /// Started at the first write that needs it.
    writeback: Option<Writeback>,
}

/// Reads records from a [`SegmentLog`] as it was when taken (see [`SegmentLog::reader`]).
pub struct SegmentReader {
    roll_bytes: u64,
    /// Records starting below this position were written to their files.
    flushed: u64,
    /// (path, file, bytes in it) of each segment, by index.
    segments: Vec<(PathBuf, Arc<File>, u64)>,
}

impl SegmentReader {
    /// The record at `position`, which must have been flushed when the reader was taken.
    pub fn read(&self, position: u64) -> Result<Vec<u8>, StoreError> {
        if position >= self.flushed {
            return Err(corrupt(format!("position {position}: not flushed when the reader was taken")));
        }
        let index = position / self.roll_bytes;
        let (path, file, len) = self
            .segments
            .get(index as usize)
            .ok_or_else(|| corrupt(format!("position {position}: no segment {index}")))?;
        Ok(read_frame_in(file, path, *len, position, position % self.roll_bytes)?.0)
    }
}

/// The record framed at `offset` of one segment file of `len` bytes (`position` is its log
/// position, for errors), and the position of the next one.
fn read_frame_in(file: &File, path: &Path, len: u64, position: u64, offset: u64) -> Result<(Vec<u8>, u64), StoreError> {
    if offset + FRAME_HEADER_BYTES > len {
        return Err(corrupt(format!("position {position}: past the end of its segment")));
    }
    let mut header = [0u8; FRAME_HEADER_BYTES as usize];
    file.read_exact_at(&mut header, offset).map_err(io_err(path))?;
    let frame_len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if frame_len as usize > RECORD_BYTES_MAX || offset + FRAME_HEADER_BYTES + u64::from(frame_len) > len {
        return Err(corrupt(format!("position {position}: length {frame_len} runs past the segment")));
    }
    let mut bytes = vec![0u8; frame_len as usize];
    file.read_exact_at(&mut bytes, offset + FRAME_HEADER_BYTES).map_err(io_err(path))?;
    if frame_crc(frame_len, &bytes) != crc {
        return Err(corrupt(format!("position {position}: checksum mismatch")));
    }
    Ok((bytes, position + FRAME_HEADER_BYTES + u64::from(frame_len)))
}

impl SegmentLog {
    /// Opens the log in `dir` (creating it), with every existing segment as it is on disk.
    /// The caller truncates to its checkpoint's length before appending. `key_of` says which
    /// front of each record its key file keeps.
    pub fn open(dir: &Path, roll_bytes: u64, key_of: KeyOf) -> Result<SegmentLog, StoreError> {
        assert!(roll_bytes > FRAME_HEADER_BYTES + 1 && roll_bytes <= u64::from(u32::MAX));
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut indexes = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let path = entry.map_err(io_err(dir))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                // A fingerprint file a crash left half-written.
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            let index = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(index) = index {
                indexes.push(index);
            }
        }
        indexes.sort_unstable();
        for (expected, index) in indexes.iter().enumerate() {
            if *index != expected as u64 {
                return Err(corrupt(format!("segment files are not contiguous: {indexes:?} in {}", dir.display())));
            }
        }
        let mut log = SegmentLog {
            dir: dir.to_path_buf(),
            roll_bytes,
            segments: Vec::new(),
            pending: Vec::new(),
            pending_keys: Vec::new(),
            key_of,
            dir_dirty: false,
            writeback: None,
        };
        for index in indexes {
            let (segment, created_keys) = Segment::open(dir, index, false)?;
            if segment.len > roll_bytes {
                return Err(corrupt(format!(
                    "{} is {} bytes, over the segment size {roll_bytes}",
                    segment.path.display(),
                    segment.len
                )));
            }
            log.dir_dirty |= created_keys;
            log.segments.push(segment);
        }
        Ok(log)
    }

    /// The logical end: where the next record goes (if it fits in the current segment).
    pub fn len(&self) -> u64 {
        match self.segments.last() {
            Some(last) => last.index * self.roll_bytes + last.len + self.pending.len() as u64,
            None => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn new_segment(&mut self) -> Result<(), StoreError> {
        self.write_pending()?;
        let index = self.segments.last().map_or(0, |s| s.index + 1);
        let (segment, _) = Segment::open(&self.dir, index, true)?;
        self.segments.push(segment);
        self.dir_dirty = true;
        Ok(())
    }

    /// Appends one record; returns its position. Buffered: see `flush` and `sync`.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64, StoreError> {
        assert!(bytes.len() <= RECORD_BYTES_MAX, "record of {} bytes", bytes.len());
        let framed = FRAME_HEADER_BYTES + bytes.len() as u64;
        assert!(framed <= self.roll_bytes, "a record must fit in one segment");
        let fits =
            self.segments.last().is_some_and(|last| last.len + self.pending.len() as u64 + framed <= self.roll_bytes);
        if !fits {
            self.new_segment()?;
        }
        let position = self.len();
        push_key_entry(&mut self.pending_keys, position % self.roll_bytes, bytes, (self.key_of)(bytes));
        let len = bytes.len() as u32;
        self.pending.extend_from_slice(&len.to_le_bytes());
        self.pending.extend_from_slice(&frame_crc(len, bytes).to_le_bytes());
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= WRITE_BUFFER_BYTES {
            self.write_pending()?;
        }
        assert_eq!(self.len(), position + framed);
        Ok(position)
    }

    /// Writes the buffered records, then their key entries (a crash between leaves a key file
    /// short of its segment, which the next start-up fills in).
    fn write_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let last = self.segments.last_mut().expect("pending bytes belong to a segment");
        last.file.write_all_at(&self.pending, last.len).map_err(io_err(&last.path))?;
        last.len += self.pending.len() as u64;
        last.dirty = true;
        self.pending.clear();
        last.keys_file.write_all_at(&self.pending_keys, last.keys_len).map_err(io_err(&last.keys_path))?;
        last.keys_len += self.pending_keys.len() as u64;
        self.pending_keys.clear();
        if last.len - last.writeback_from >= WRITE_BACK_STEP_BYTES {
            let writeback = self.writeback.get_or_insert_with(|| Writeback::start(&self.dir));
            let ranges = [
                (&*last.file, last.writeback_from, last.len),
                (&last.keys_file, last.keys_writeback_from, last.keys_len),
            ];
            if writeback.request(ranges) {
                last.writeback_from = last.len;
                last.keys_writeback_from = last.keys_len;
            }
        }
        Ok(())
    }

    /// Hands every appended byte to the kernel (readable by `read`; not yet durable).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.write_pending()
    }

    /// Makes every appended byte durable: flush, fsync each segment written since the last
    /// sync, and the directory if segments were created or removed.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.write_pending()?;
        for segment in self.segments.iter_mut().filter(|s| s.dirty) {
            segment.file.sync_data().map_err(io_err(&segment.path))?;
            segment.keys_file.sync_data().map_err(io_err(&segment.keys_path))?;
            segment.dirty = false;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Cuts the log back to `len` (a checkpoint's recorded length): later segments are
    /// removed and the last one truncated, its key file to the entries that chain within it
    /// and then filled in from the records up to `len`. Durable when it returns.
    pub fn truncate(&mut self, len: u64) -> Result<(), StoreError> {
        self.write_pending()?;
        assert!(len <= self.len(), "truncate to {len} past the end {}", self.len());
        // The segment holding `len`; at a boundary, the last segment if the next does not
        // exist (a segment filled exactly to `roll_bytes`).
        let keep = match self.segments.len() {
            0 => 0,
            n => ((len / self.roll_bytes) as usize).min(n - 1) + 1,
        };
        while self.segments.len() > keep {
            let segment = self.segments.pop().expect("more segments than kept");
            remove_fingerprints(&segment.fps_path)?;
            std::fs::remove_file(&segment.path).map_err(io_err(&segment.path))?;
            std::fs::remove_file(&segment.keys_path).map_err(io_err(&segment.keys_path))?;
            self.dir_dirty = true;
        }
        if let Some(last) = self.segments.last() {
            // The last segment takes appends again: its fingerprints, if it had any, will not
            // describe it.
            remove_fingerprints(&last.fps_path)?;
            self.dir_dirty = true;
            let in_last = len - last.index * self.roll_bytes;
            assert!(in_last <= last.len, "truncate to {len}: inside the unused tail of segment {}", last.index);
            let (kept_keys, covered) = Segment::keys_cover(&last.read_keys()?, in_last);
            let missing = self.keys_of_records(last, covered, in_last)?;
            let last = self.segments.last_mut().expect("a last segment");
            last.file.set_len(in_last).map_err(io_err(&last.path))?;
            last.len = in_last;
            last.writeback_from = last.writeback_from.min(in_last);
            last.write_keys_from(kept_keys as u64, &missing)?;
        }
        self.sync()?;
        assert_eq!(self.len(), len);
        Ok(())
    }

    /// The key entries of the records in `[from, to)` of a segment (offsets in it), read from
    /// the records themselves.
    fn keys_of_records(&self, segment: &Segment, from: u64, to: u64) -> Result<Vec<u8>, StoreError> {
        let mut keys = Vec::new();
        let start = segment.index * self.roll_bytes;
        self.scan_segment(segment, from, to, &mut |position, record| {
            push_key_entry(&mut keys, position - start, record, (self.key_of)(record));
            Ok(())
        })?;
        Ok(keys)
    }

    /// The record at `position`, checked against its crc.
    pub fn read(&self, position: u64) -> Result<Vec<u8>, StoreError> {
        let written = self.len() - self.pending.len() as u64;
        if position >= written {
            // Still in the write buffer: the same frame check as on disk.
            let at = (position - written) as usize;
            return match checked_frame(&self.pending[at.min(self.pending.len())..]) {
                Ok((bytes, _)) => Ok(bytes.to_vec()),
                Err(FrameFault::Short) => {
                    Err(corrupt(format!("position {position}: runs past the end {}", self.len())))
                }
                Err(FrameFault::Checksum) => Err(corrupt(format!("position {position}: checksum mismatch"))),
            };
        }
        let (bytes, _) = self.read_frame(position)?;
        Ok(bytes)
    }

    /// Calls `each(position, key)` for every record in `[from, to)`, in order: from the key
    /// files, and where a key file stops short of its segment, from the records (the whole
    /// record is passed: its key is its front). Returns the segments whose key files fell
    /// short, for [`SegmentLog::rewrite_keys`]. Needs a flushed log.
    pub fn for_each_key(&self, from: u64, to: u64, each: &mut RecordVisitor<'_>) -> Result<Vec<u64>, StoreError> {
        assert!(self.pending.is_empty(), "flush before scanning");
        assert!(from <= to && to <= self.len(), "scan [{from}, {to}) of a log of {}", self.len());
        let mut short = Vec::new();
        let mut position = from;
        while position < to {
            let index = position / self.roll_bytes;
            let segment = &self.segments[index as usize];
            let start = index * self.roll_bytes;
            let end = (start + segment.len).min(to) - start;
            let mut offset = position - start;
            if offset < end {
                let keys = segment.read_keys()?;
                let mut chain = ChainedKeys::new(&keys, segment.len);
                while chain.covered < end {
                    let Some((at, key)) = chain.next() else { break };
                    if at >= offset {
                        each(start + at, key)?;
                    }
                }
                let covered = chain.covered;
                offset = offset.max(covered);
                if offset < end {
                    self.scan_segment(segment, offset, end, each)?;
                }
                if covered < segment.len && end == segment.len {
                    short.push(index);
                }
            }
            position = (index + 1) * self.roll_bytes;
        }
        Ok(short)
    }

    /// Rewrites the key files of `segments` from their records (after [`Self::for_each_key`]
    /// found them short: written by a version without key files, or damaged). Durable when it
    /// returns.
    pub fn rewrite_keys(&mut self, segments: &[u64]) -> Result<(), StoreError> {
        for &index in segments {
            let segment = &self.segments[index as usize];
            tracing::info!(segment = %segment.path.display(), "rewriting a key file from its records");
            let keys = self.keys_of_records(segment, 0, segment.len)?;
            self.segments[index as usize].write_keys_from(0, &keys)?;
        }
        self.sync()
    }

    /// Calls `each(position, record)` for every record framed in `[from, to)` of one segment
    /// (offsets in it), reading the file sequentially.
    fn scan_segment(
        &self,
        segment: &Segment,
        from: u64,
        to: u64,
        each: &mut RecordVisitor<'_>,
    ) -> Result<(), StoreError> {
        let start = segment.index * self.roll_bytes;
        let mut reader = std::io::BufReader::with_capacity(
            1024 * 1024,
            std::io::Read::take(ReadAt { file: &segment.file, offset: from }, to - from),
        );
        let mut bytes = Vec::new();
        let mut offset = from;
        while offset < to {
            let position = start + offset;
            let mut header = [0u8; FRAME_HEADER_BYTES as usize];
            std::io::Read::read_exact(&mut reader, &mut header).map_err(io_err(&segment.path))?;
            let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            if len as usize > RECORD_BYTES_MAX || offset + FRAME_HEADER_BYTES + u64::from(len) > to {
                return Err(corrupt(format!("position {position}: length {len} runs past the segment")));
            }
            bytes.resize(len as usize, 0);
            std::io::Read::read_exact(&mut reader, &mut bytes).map_err(io_err(&segment.path))?;
            if frame_crc(len, &bytes) != crc {
                return Err(corrupt(format!("position {position}: checksum mismatch")));
            }
            each(position, &bytes)?;
            offset += FRAME_HEADER_BYTES + u64::from(len);
        }
        Ok(())
    }

    /// The file pieces holding the framed bytes of `[from, to)`, in order, as
    /// `(path, offset, len)`: frames back to back once concatenated (each segment's unused
    /// tail is left out). The bytes never change afterwards (the log only appends), so a
    /// caller may copy them without holding the log.
    pub fn file_ranges(&self, from: u64, to: u64) -> Vec<(PathBuf, u64, u64)> {
        let written_end = self.len() - self.pending.len() as u64;
        assert!(from <= to && to <= written_end, "range [{from}, {to}) of a log flushed to {written_end}");
        let mut ranges = Vec::new();
        let mut position = from;
        while position < to {
            let index = position / self.roll_bytes;
            let segment = &self.segments[index as usize];
            let segment_start = index * self.roll_bytes;
            let end = (segment_start + segment.len).min(to);
            if position < end {
                ranges.push((segment.path.clone(), position - segment_start, end - position));
            }
            position = (index + 1) * self.roll_bytes;
        }
        ranges
    }

    /// Handles that make every byte flushed so far durable when synced, for a caller that syncs
    /// off the appending thread: each segment's file and the directory.
    pub fn sync_handles(&self) -> Result<Vec<(PathBuf, File)>, StoreError> {
        assert!(self.pending.is_empty(), "flush before taking sync handles");
        let mut handles = Vec::with_capacity(self.segments.len() + 1);
        for segment in &self.segments {
            handles.push((segment.path.clone(), segment.file.try_clone().map_err(io_err(&segment.path))?));
            handles
                .push((segment.keys_path.clone(), segment.keys_file.try_clone().map_err(io_err(&segment.keys_path))?));
        }
        handles.push((self.dir.clone(), File::open(&self.dir).map_err(io_err(&self.dir))?));
        Ok(handles)
    }

    /// The record at `position` and the position of the next one.
    fn read_frame(&self, position: u64) -> Result<(Vec<u8>, u64), StoreError> {
        let index = position / self.roll_bytes;
        let segment = self
            .segments
            .get(index as usize)
            .ok_or_else(|| corrupt(format!("position {position}: no segment {index}")))?;
        assert_eq!(segment.index, index);
        read_frame_in(&segment.file, &segment.path, segment.len, position, position % self.roll_bytes)
    }

    /// A reader of every record flushed so far, usable without the log (nor any lock around
    /// it): the records never move, and the files stay open while the reader lives.
    pub fn reader(&self) -> SegmentReader {
        let flushed = self.len() - self.pending.len() as u64;
        SegmentReader {
            roll_bytes: self.roll_bytes,
            flushed,
            segments: self.segments.iter().map(|s| (s.path.clone(), s.file.clone(), s.len)).collect(),
        }
    }

    /// Every record from `position` to the end, in order, with its position. Flush first to
    /// see buffered appends.
    pub fn scan(&self, mut position: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        assert!(self.pending.is_empty(), "flush before scanning");
        let mut out = Vec::new();
        while position < self.len() {
            let index = position / self.roll_bytes;
            let segment_end = self.segments[index as usize].len + index * self.roll_bytes;
            if position >= segment_end {
                // The writer rolled: the rest of this segment is unused.
                position = (index + 1) * self.roll_bytes;
                continue;
            }
            let (bytes, next) = self.read_frame(position)?;
            out.push((position, bytes));
            position = next;
        }
        Ok(out)
    }
}

/// What a caller fingerprints a record by: its key (or the whole record where the key file
/// falls short, its key being its front) to a 64-bit keyed hash.
pub type FingerprintOf<'a> = dyn Fn(&[u8]) -> Result<u64, StoreError> + Sync + 'a;

/// A fingerprint file: `magic ‖ seed: u64 ‖ segment length: u64 ‖ count: u64 ‖ count ×
/// (fingerprint: u64, position: u64) ‖ crc32`, integers little-endian, the crc over all before it.
const FPS_MAGIC: &[u8; 4] = b"LFP1";
const FPS_HEADER_BYTES: usize = 4 + 8 + 8 + 8;

/// Every record of `[from, to)` as `(fingerprint, position)` pairs, one run per segment, each
/// sorted (fingerprint, then position), from [`SegmentLog::fingerprint_runs`].
#[derive(Debug, Default)]
pub struct FingerprintRuns {
    pub runs: Vec<Vec<(u64, u64)>>,
    /// Segments whose key files fell short, for [`SegmentLog::rewrite_keys`].
    pub short: Vec<u64>,
    /// Sealed segments whose runs came from their fingerprint files (the rest were computed).
    pub loaded: usize,
}

/// Names the record's position in a corruption the fingerprint function found in it.
fn at_position(position: u64) -> impl FnOnce(StoreError) -> StoreError {
    move |e| match e {
        StoreError::Corrupt { what, detail } => {
            StoreError::Corrupt { what, detail: format!("at {position}: {detail}") }
        }
        other => other,
    }
}

fn remove_fingerprints(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// The run a fingerprint file holds, if it is whole, checks, and was written with `seed` for a
/// segment of `segment_len` bytes; `None` otherwise (then the run is computed again).
fn load_fingerprints(path: &Path, seed: u64, segment_len: u64) -> Option<Vec<(u64, u64)>> {
    let bytes = std::fs::read(path).ok()?;
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    let header = body.get(..FPS_HEADER_BYTES)?;
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let (count, pairs) = (word(20), &body[FPS_HEADER_BYTES..]);
    if &header[..4] != FPS_MAGIC
        || word(4) != seed
        || word(12) != segment_len
        || pairs.len() as u64 != count.checked_mul(16)?
        || crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes"))
    {
        return None;
    }
    Some(
        pairs
            .chunks_exact(16)
            .map(|pair| {
                let fingerprint = u64::from_le_bytes(pair[..8].try_into().expect("8 bytes"));
                (fingerprint, u64::from_le_bytes(pair[8..].try_into().expect("8 bytes")))
            })
            .collect(),
    )
}

/// Writes a sealed segment's fingerprint file (through a temporary file and a rename: a reader
/// sees the whole file or none). Not fsynced: it is derived data, checked when read.
fn save_fingerprints(path: &Path, seed: u64, segment_len: u64, run: &[(u64, u64)]) -> Result<(), StoreError> {
    let mut bytes = Vec::with_capacity(FPS_HEADER_BYTES + run.len() * 16 + 4);
    bytes.extend_from_slice(FPS_MAGIC);
    for word in [seed, segment_len, run.len() as u64] {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    for (fingerprint, position) in run {
        bytes.extend_from_slice(&fingerprint.to_le_bytes());
        bytes.extend_from_slice(&position.to_le_bytes());
    }
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let temporary = path.with_extension("fps.tmp");
    let file = File::create(&temporary).map_err(io_err(&temporary))?;
    PacedFile::new(&file).write_all(&bytes).map_err(io_err(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io_err(path))
}

/// A sealed segment without a fingerprint file, taken from the log so that the file can be
/// written without it ([`SegmentLog::unfingerprinted`]).
pub struct SealedSegment {
    start: u64,
    len: u64,
    keys_path: PathBuf,
    fps_path: PathBuf,
}

impl SealedSegment {
    /// Computes and writes the segment's fingerprint file from its key file. Returns false
    /// (and writes nothing) when the key file does not cover the segment: the next start-up
    /// reads the records instead and writes the file then.
    pub fn save_fingerprints(&self, seed: u64, fingerprint: &FingerprintOf<'_>) -> Result<bool, StoreError> {
        let keys = std::fs::read(&self.keys_path).map_err(io_err(&self.keys_path))?;
        let mut run = Vec::new();
        let mut chain = ChainedKeys::new(&keys, self.len);
        for (at, key) in chain.by_ref() {
            let position = self.start + at;
            run.push((fingerprint(key).map_err(at_position(position))?, position));
        }
        if chain.covered != self.len {
            return Ok(false);
        }
        run.sort_unstable();
        save_fingerprints(&self.fps_path, seed, self.len, &run)?;
        Ok(true)
    }
}

impl SegmentLog {
    /// The sealed segments (all but the last) that have no fingerprint file yet.
    pub fn unfingerprinted(&self) -> Vec<SealedSegment> {
        let sealed = self.segments.len().saturating_sub(1);
        self.segments[..sealed]
            .iter()
            .filter(|s| !s.fps_path.exists())
            .map(|s| SealedSegment {
                start: s.index * self.roll_bytes,
                len: s.len,
                keys_path: s.keys_path.clone(),
                fps_path: s.fps_path.clone(),
            })
            .collect()
    }

    /// Every record of `[from, to)` as `(fingerprint, position)` pairs, one sorted run per
    /// segment: a sealed segment's from its fingerprint file when that is valid for `seed`, the
    /// others computed from the keys as [`Self::for_each_key`] visits them (and a sealed
    /// segment's file written for the next start-up). Needs a flushed log.
    pub fn fingerprint_runs(
        &self,
        from: u64,
        to: u64,
        seed: u64,
        fingerprint: &FingerprintOf<'_>,
    ) -> Result<FingerprintRuns, StoreError> {
        assert!(self.pending.is_empty(), "flush before scanning");
        let mut out = FingerprintRuns::default();
        let sealed = self.segments.len().saturating_sub(1);
        let mut position = from;
        while position < to {
            let index = position / self.roll_bytes;
            let segment = &self.segments[index as usize];
            let start = index * self.roll_bytes;
            let end = (start + segment.len).min(to);
            let is_sealed = (index as usize) < sealed && end == start + segment.len;
            let mut run = match is_sealed.then(|| load_fingerprints(&segment.fps_path, seed, segment.len)).flatten() {
                Some(run) => {
                    out.loaded += 1;
                    run
                }
                None => {
                    // A sealed segment's file covers all of it, whatever `from` cuts off.
                    let scan_from = if is_sealed { start } else { position.min(end) };
                    let mut run = Vec::new();
                    let short = self.for_each_key(scan_from, end, &mut |at, key| {
                        run.push((fingerprint(key).map_err(at_position(at))?, at));
                        Ok(())
                    })?;
                    out.short.extend(short);
                    run.sort_unstable();
                    if is_sealed && let Err(e) = save_fingerprints(&segment.fps_path, seed, segment.len, &run) {
                        tracing::warn!(error = %e, "cannot write a fingerprint file; the next start-up computes it again");
                    }
                    run
                }
            };
            if position > start {
                run.retain(|(_, at)| *at >= position);
            }
            out.runs.push(run);
            position = (index + 1) * self.roll_bytes;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u32) -> Vec<u8> {
        format!("record {i}: {}", "x".repeat((i % 50) as usize)).into_bytes()
    }

    /// Goal: records read back at their positions, across segment rolls, after a reopen.
    #[test]
    fn records_read_back_across_rolls_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), 256, no_key).unwrap();
        let positions: Vec<u64> = (0..100).map(|i| log.append(&record(i)).unwrap()).collect();
        log.sync().unwrap();
        assert!(log.segments.len() > 10, "small segments roll");
        for (i, position) in positions.iter().enumerate() {
            assert_eq!(log.read(*position).unwrap(), record(i as u32));
        }
        let end = log.len();
        drop(log);
        let log = SegmentLog::open(dir.path(), 256, no_key).unwrap();
        assert_eq!(log.len(), end);
        let scanned = log.scan(0).unwrap();
        assert_eq!(scanned.len(), 100);
        for (i, (position, bytes)) in scanned.iter().enumerate() {
            assert_eq!((*position, bytes.clone()), (positions[i], record(i as u32)));
        }
    }

    /// Goal: recovery by length. Bytes past a checkpoint's length (a torn tail, or records the
    /// Raft log will redo) are cut off, across segments, and appending resumes there.
    #[test]
    fn truncate_to_a_checkpoint_length_drops_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), 256, no_key).unwrap();
        for i in 0..20 {
            log.append(&record(i)).unwrap();
        }
        log.sync().unwrap();
        let checkpoint_len = log.len();
        for i in 20..60 {
            log.append(&record(i)).unwrap();
        }
        log.flush().unwrap();
        // A torn write after the last record.
        let last = log.segments.last().unwrap();
        last.file.write_all_at(&[0xde, 0xad, 0xbe], last.len).unwrap();
        drop(log);
        let mut log = SegmentLog::open(dir.path(), 256, no_key).unwrap();
        log.truncate(checkpoint_len).unwrap();
        assert_eq!(log.len(), checkpoint_len);
        assert_eq!(log.scan(0).unwrap().len(), 20);
        let position = log.append(&record(99)).unwrap();
        log.sync().unwrap();
        assert_eq!(log.read(position).unwrap(), record(99));
        let log = SegmentLog::open(dir.path(), 256, no_key).unwrap();
        assert_eq!(log.scan(0).unwrap().len(), 21);
    }

    /// Goal: truncating to a segment boundary keeps the segment that starts there (empty),
    /// and to the end of a segment filled to the byte keeps that segment whole.
    #[test]
    fn truncate_at_segment_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        // Records of 8 + 24 bytes: exactly 4 per 128-byte segment.
        let mut log = SegmentLog::open(dir.path(), 128, no_key).unwrap();
        for i in 0..4u8 {
            log.append(&[i; 24]).unwrap();
        }
        assert_eq!(log.len(), 128, "the first segment is full to the byte");
        log.truncate(128).unwrap();
        assert_eq!((log.segments.len(), log.len()), (1, 128));
        let position = log.append(&[9; 24]).unwrap();
        assert_eq!(position, 128, "the next record starts the next segment");
        log.truncate(128).unwrap();
        assert_eq!((log.segments.len(), log.len()), (2, 128), "segment 1 kept, empty");
        log.truncate(0).unwrap();
        assert_eq!((log.segments.len(), log.len()), (1, 0));
        assert!(log.scan(0).unwrap().is_empty());
    }

    /// The key of a test record: its front up to the colon ("record 12").
    fn up_to_colon(record: &[u8]) -> usize {
        record.iter().position(|b| *b == b':').unwrap_or(0)
    }

    /// (position, key) of every record, as the start-up rebuild sees them, and the segments
    /// whose key files fell short.
    fn keys(log: &SegmentLog, from: u64) -> (Vec<(u64, Vec<u8>)>, Vec<u64>) {
        let mut seen = Vec::new();
        let short = log
            .for_each_key(from, log.len(), &mut |position, key| {
                let front = key.iter().position(|b| *b == b':').unwrap_or(key.len());
                seen.push((position, key[..front].to_vec()));
                Ok(())
            })
            .unwrap();
        (seen, short)
    }

    fn expected_keys(positions: &[u64], numbers: impl Iterator<Item = u32>) -> Vec<(u64, Vec<u8>)> {
        positions.iter().zip(numbers).map(|(p, i)| (*p, format!("record {i}").into_bytes())).collect()
    }

    /// A test fingerprint: the crc of the key's front up to the colon (a key file's key, or a
    /// whole record where the key file fell short).
    fn crc_fingerprint(key: &[u8]) -> Result<u64, StoreError> {
        Ok(u64::from(crc32fast::hash(&key[..up_to_colon(key)])))
    }

    /// The runs `fingerprint_runs` must give: each segment's records from `from`, sorted.
    fn expected_runs(log: &SegmentLog, from: u64) -> Vec<Vec<(u64, u64)>> {
        let mut runs: Vec<Vec<(u64, u64)>> = Vec::new();
        for (position, key) in keys(log, from).0 {
            let segment = (position / log.roll_bytes - from / log.roll_bytes) as usize;
            runs.resize_with(runs.len().max(segment + 1), Vec::new);
            runs[segment].push((crc_fingerprint(&key).unwrap(), position));
        }
        runs.iter_mut().for_each(|run| run.sort_unstable());
        runs
    }

    /// Goal: a sealed segment's fingerprint file gives the run its keys give, from any start;
    /// a file that does not match (another seed, a flipped byte) is ignored and written again;
    /// the last segment never has one; a truncate removes the files of the segments it cuts;
    /// a checkpoint's writer (`SealedSegment::save_fingerprints`) writes the missing ones; a
    /// temporary file a crash left behind is removed at the next open.
    #[test]
    fn fingerprint_files_stand_in_for_the_keys_of_sealed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), 256, up_to_colon).unwrap();
        for i in 0..60 {
            log.append(&record(i)).unwrap();
        }
        log.flush().unwrap();
        let sealed = log.segments.len() - 1;
        assert!(sealed >= 4, "small segments roll");
        let runs = |log: &SegmentLog, from: u64, seed: u64| {
            log.fingerprint_runs(from, log.len(), seed, &crc_fingerprint).unwrap()
        };
        let fps = |index: usize| dir.path().join(format!("{index:08}.fps"));

        let first = runs(&log, 0, 9);
        assert_eq!((first.runs.clone(), first.loaded, first.short), (expected_runs(&log, 0), 0, vec![]));
        assert!((0..sealed).all(|i| fps(i).exists()) && !fps(sealed).exists(), "files for sealed segments only");
        let again = runs(&log, 0, 9);
        assert_eq!((again.runs, again.loaded), (first.runs, sealed));
        // The second record of segment 1, and a cut in the middle of that segment.
        let from_mid = log.scan(0).unwrap().into_iter().filter(|(p, _)| p / 256 == 1).nth(1).unwrap().0;
        let mid = from_mid;
        assert_eq!(runs(&log, from_mid, 9).runs, expected_runs(&log, from_mid), "a start inside a sealed segment");

        assert_eq!(runs(&log, 0, 10).loaded, 0, "files of another seed are ignored");
        assert_eq!(runs(&log, 0, 10).loaded, sealed, "and written again");
        let mut damaged = std::fs::read(fps(2)).unwrap();
        damaged[FPS_HEADER_BYTES + 3] ^= 1;
        std::fs::write(fps(2), damaged).unwrap();
        let checked = runs(&log, 0, 10);
        assert_eq!((checked.runs, checked.loaded), (expected_runs(&log, 0), sealed - 1));

        log.truncate(mid).unwrap();
        assert!(fps(0).exists() && !fps(1).exists() && !fps(2).exists(), "the cut segment's file and later ones go");
        for i in 60..90 {
            log.append(&record(i)).unwrap();
        }
        log.flush().unwrap();
        let sealed = log.segments.len() - 1;
        let unfingerprinted = log.unfingerprinted();
        assert_eq!(unfingerprinted.len(), sealed - 1, "all sealed segments but the first");
        for segment in &unfingerprinted {
            assert!(segment.save_fingerprints(10, &crc_fingerprint).unwrap());
        }
        assert!(log.unfingerprinted().is_empty());
        let saved = runs(&log, 0, 10);
        assert_eq!((saved.runs, saved.loaded), (expected_runs(&log, 0), sealed));

        // A file a crash left half-written is removed at the next open.
        let leftover = dir.path().join("00000001.fps.tmp");
        std::fs::write(&leftover, b"LFP1").unwrap();
        drop(log);
        let log = SegmentLog::open(dir.path(), 256, up_to_colon).unwrap();
        assert!(!leftover.exists());
        assert_eq!(runs(&log, 0, 10).loaded, sealed);

        // A key the fingerprint function rejects is reported with its record's position.
        let rejecting = |key: &[u8]| match key.starts_with(b"record 8") {
            true => Err(StoreError::Corrupt { what: "test record", detail: "rejected key".into() }),
            false => crc_fingerprint(key),
        };
        let first_rejected = log.scan(0).unwrap().into_iter().find(|(_, r)| r.starts_with(b"record 8")).unwrap().0;
        let err = log.fingerprint_runs(0, log.len(), 11, &rejecting).unwrap_err();
        assert!(err.to_string().contains(&format!("at {first_rejected}: rejected key")), "{err}");
    }

    /// Goal: the rebuild reads keys from the key files, not the records: with every record's
    /// tail damaged, the keys still come back whole, in order, with their positions, and no
    /// segment is reported short.
    #[test]
    fn keys_come_from_the_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), 256, up_to_colon).unwrap();
        let positions: Vec<u64> = (0..60).map(|i| log.append(&record(i)).unwrap()).collect();
        log.sync().unwrap();
        for segment in &log.segments {
            let mut offset = 0;
            while offset < segment.len {
                let (bytes, next) = read_frame_in(&segment.file, &segment.path, segment.len, offset, offset).unwrap();
                segment.file.write_all_at(b"!", offset + FRAME_HEADER_BYTES + bytes.len() as u64 - 1).unwrap();
                offset = next;
            }
        }
        let log = SegmentLog::open(dir.path(), 256, up_to_colon).unwrap();
        assert_eq!(keys(&log, 0), (expected_keys(&positions, 0..60), vec![]));
        assert_eq!(keys(&log, positions[30]).0, expected_keys(&positions[30..], 30..60), "from a base");
        assert!(log.read(positions[0]).is_err(), "the records themselves are damaged");
    }

    /// Goal: a key file that is missing (a log written before key files), torn or damaged
    /// counts up to its last good entry; the rest comes from the records, the segment is
    /// reported short, and `rewrite_keys` makes it whole again, byte for byte.
    #[test]
    fn short_key_files_fall_back_to_the_records_and_are_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), 256, up_to_colon).unwrap();
        let positions: Vec<u64> = (0..60).map(|i| log.append(&record(i)).unwrap()).collect();
        log.sync().unwrap();
        let whole: Vec<Vec<u8>> = log.segments.iter().map(|s| std::fs::read(&s.keys_path).unwrap()).collect();
        let last = log.segments.len() - 1;
        std::fs::remove_file(&log.segments[1].keys_path).unwrap();
        log.segments[2].keys_file.set_len(whole[2].len() as u64 - 3).unwrap();
        log.segments[3].keys_file.write_all_at(b"X", 20).unwrap();
        drop(log);
        let mut log = SegmentLog::open(dir.path(), 256, up_to_colon).unwrap();
        let (seen, short) = keys(&log, 0);
        assert_eq!(seen, expected_keys(&positions, 0..60));
        assert_eq!(short, vec![1, 2, 3]);
        log.rewrite_keys(&short).unwrap();
        assert_eq!(keys(&log, 0), (expected_keys(&positions, 0..60), vec![]));
        for (i, segment) in log.segments.iter().enumerate() {
            assert_eq!(std::fs::read(&segment.keys_path).unwrap(), whole[i], "key file {i} of {last}");
        }
    }

    /// Goal: truncating drops the key entries past the cut (new records of other lengths
    /// never chain onto stale ones), and fills in entries a crash kept from the key file.
    #[test]
    fn truncate_cuts_and_fills_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), 4096, up_to_colon).unwrap();
        let mut positions: Vec<u64> = (0..20).map(|i| log.append(&record(i)).unwrap()).collect();
        log.sync().unwrap();
        let cut = log.len();
        for i in 20..40 {
            log.append(&record(i)).unwrap();
        }
        log.sync().unwrap();
        // A crash after the records were written and before the last ten key entries were.
        let keys_len = log.segments[0].keys_len;
        let entry = std::fs::read(&log.segments[0].keys_path).unwrap().len() as u64 / 40;
        log.segments[0].keys_file.set_len(keys_len - 25 * entry).unwrap();
        drop(log);
        let mut log = SegmentLog::open(dir.path(), 4096, up_to_colon).unwrap();
        log.truncate(cut).unwrap();
        positions.extend((100..110).map(|i| log.append(&record(i)).unwrap()));
        log.sync().unwrap();
        drop(log);
        let log = SegmentLog::open(dir.path(), 4096, up_to_colon).unwrap();
        assert_eq!(keys(&log, 0), (expected_keys(&positions, (0..20).chain(100..110)), vec![]));
    }

    /// Goal: a flipped byte is reported as corruption, never returned as a record.
    #[test]
    fn a_flipped_byte_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), 1024, no_key).unwrap();
        let position = log.append(b"the bytes that matter").unwrap();
        log.sync().unwrap();
        let segment = &log.segments[0];
        segment.file.write_all_at(b"X", position + FRAME_HEADER_BYTES + 4).unwrap();
        assert!(matches!(log.read(position), Err(StoreError::Corrupt { .. })));
        assert!(log.read(position + 1).is_err(), "a position inside a record is not a record");
        assert!(log.read(10_000).is_err());
    }
}
