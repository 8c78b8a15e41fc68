//! The bytes owed to one socket, and the socket.
//!
//! tungstenite reads and parses frames from the socket through this type, and writes its own
//! frames (pongs, close frames, pings) into it; the server's data frames are queued here
//! directly as a header plus the broadcast's shared payload, so a message sent to a whole
//! room is serialized once and never copied per recipient. Everything is written to the socket
//! by `send`, in queue order, with vectored writes: all frames queued for a connection during
//! a turn go out in one system call.
//!
//! Because tungstenite's `Write` here never blocks and takes whole buffers, its frames enter
//! the queue whole, so its frames and ours never interleave mid-frame.
//!
//! Memory: what a connection is owed is `footprint()`: the frame bytes plus a fixed cost per
//! queued frame (`CHUNK_BYTES`), so a flood of tiny frames is charged for its bookkeeping too.
//! Pongs are coalesced past `PONGS_WAITING_MAX`: while that many pongs wait unsent, the next
//! one replaces the newest waiting (RFC 6455 §5.5.3 allows answering only the latest ping),
//! so a client that pings without reading is owed a few pongs, not one per ping, while a
//! client that reads gets a pong for every ping of a burst.
//!
//! Reading: tungstenite reads through this type, which applies a per-turn byte budget (past it
//! reads answer `WouldBlock` and `take_starved()` says so, so the engine comes back next turn
//! instead of letting one sender hold the loop) and follows the frame boundaries of the
//! inbound stream (`Inbound`), so the engine knows when tungstenite holds no partial frame
//! and can drop a read buffer that grew for a large message.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};

use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::{Bytes, Utf8Bytes};

/// Slices handed to one vectored write.
const SLICES_PER_WRITE: usize = 64;

#[derive(Debug)]
enum Chunk {
    /// A data frame: its header (at most 10 bytes unmasked) and a payload shared with other
    /// recipients. One queue entry per message keeps a slow client's backlog small.
    Frame {
        header: [u8; 10],
        header_len: u8,
        payload: Payload,
    },
    /// Bytes tungstenite wrote (its control frames).
    Owned(Vec<u8>),
}

/// A frame's payload, shared with other recipients.
#[derive(Debug)]
enum Payload {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Payload {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Text(text) => text.as_bytes(),
            Payload::Binary(data) => data,
        }
    }
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Frame {
                header_len,
                payload,
                ..
            } => usize::from(*header_len).saturating_add(payload.as_bytes().len()),
            Chunk::Owned(bytes) => bytes.len(),
        }
    }

    /// The unwritten parts from `offset` on, as at most two slices.
    fn parts(&self, offset: usize) -> [&[u8]; 2] {
        match self {
            Chunk::Frame {
                header,
                header_len,
                payload,
            } => {
                let header = header.get(..usize::from(*header_len)).unwrap_or_default();
                let payload = payload.as_bytes();
                match header.get(offset..) {
                    Some(rest) if !rest.is_empty() => [rest, payload],
                    _ => {
                        let skip = offset.saturating_sub(header.len());
                        [payload.get(skip..).unwrap_or_default(), &[]]
                    }
                }
            }
            Chunk::Owned(bytes) => [bytes.get(offset..).unwrap_or_default(), &[]],
        }
    }
}

/// Pongs that may wait unsent before the next replaces the newest of them: a burst of pings
/// from a client that reads gets every pong (the Autobahn suite sends 10 at once).
pub const PONGS_WAITING_MAX: usize = 16;

/// What one queued frame costs besides its bytes: its queue entry.
pub const CHUNK_BYTES: usize = std::mem::size_of::<Chunk>();

/// Queue capacity (entries) kept once a queue has emptied; more is released.
const QUEUE_KEPT: usize = 16;

/// A socket and its outgoing queue.
#[derive(Debug)]
pub struct Wire<S> {
    stream: S,
    queue: VecDeque<Chunk>,
    /// Bytes of the first chunk already written.
    offset: usize,
    /// Bytes owed to the socket.
    queued: usize,
    /// Chunks written and removed so far: the sequence number of the queue's front.
    popped: u64,
    /// Sequence number of the last pong queued, while it may still be in the queue.
    pong: Option<u64>,
    /// Pongs queued and not yet written.
    pongs_waiting: usize,
    /// The last frame queued with `push_latest`: its key and sequence number, while it may
    /// still be in the queue.
    latest: Option<(u64, u64)>,
    /// Bytes tungstenite may still read this turn.
    read_budget: usize,
    /// A read was refused because the budget was spent.
    starved: bool,
    /// Frame boundaries of what tungstenite has read.
    inbound: Inbound,
    /// Bytes read from and written to the socket, for metrics.
    pub read_total: u64,
    pub written_total: u64,
}

impl<S> Wire<S> {
    /// An empty queue over `stream`.
    pub fn new(stream: S) -> Wire<S> {
        Wire {
            stream,
            queue: VecDeque::new(),
            offset: 0,
            queued: 0,
            popped: 0,
            pong: None,
            pongs_waiting: 0,
            latest: None,
            read_budget: usize::MAX,
            starved: false,
            inbound: Inbound::default(),
            read_total: 0,
            written_total: 0,
        }
    }

    /// What the queue holds, in bytes: frame bytes plus `CHUNK_BYTES` per queued frame.
    pub fn footprint(&self) -> usize {
        self.queued
            .saturating_add(self.queue.len().saturating_mul(CHUNK_BYTES))
    }

    /// Allows tungstenite to read at most `bytes` until the next call.
    pub fn set_read_budget(&mut self, bytes: usize) {
        self.read_budget = bytes;
        self.starved = false;
    }

    /// Whether the last `WouldBlock` came from the budget rather than the socket (cleared).
    pub fn take_starved(&mut self) -> bool {
        std::mem::take(&mut self.starved)
    }

    /// Whether every byte tungstenite has read belongs to a complete frame and no fragmented
    /// message is open: after tungstenite reports `WouldBlock`, it then holds no input.
    pub fn at_rest(&self) -> bool {
        self.inbound.at_rest()
    }

    /// Follows bytes tungstenite was handed without reading them through this wire (those
    /// that came with the HTTP request), so frame boundaries stay aligned.
    pub fn note_read(&mut self, bytes: &[u8]) {
        self.inbound.feed(bytes);
    }

    /// Data frames (text, binary, continuation) read so far, for pacing.
    pub fn data_frames(&self) -> u64 {
        self.inbound.data_frames
    }

    /// Whether a frame larger than `bytes` arrived since the last `reset_large`.
    pub fn saw_large(&self) -> bool {
        self.inbound.large
    }

    /// Sets the size above which a frame counts as large, and forgets earlier ones.
    pub fn reset_large(&mut self, above: usize) {
        self.inbound.large = false;
        self.inbound.large_above = above as u64;
    }

    /// The socket.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The socket, dropping anything unsent.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Queues a text frame whose payload is shared, not copied.
    pub fn push_text(&mut self, text: &Utf8Bytes) {
        self.push(OpCode::Data(Data::Text), Payload::Text(text.clone()));
    }

    /// Queues a text frame that supersedes the previous one queued with the same `key`, if
    /// that one is still entirely unsent: it is removed, and this one goes to the back. A
    /// client that lags gets the newest state, not a backlog of old ones.
    pub fn push_latest(&mut self, text: &Utf8Bytes, key: u64) {
        if let Some((last_key, seq)) = self.latest.take() {
            let index = seq.wrapping_sub(self.popped);
            let started = index == 0 && self.offset > 0;
            let queued = seq >= self.popped && (index as usize) < self.queue.len();
            if last_key == key && queued && !started {
                if let Some(old) = self.queue.remove(index as usize) {
                    self.queued = self.queued.saturating_sub(old.len());
                    // Everything behind it moved up one place.
                    if let Some(pong) = self.pong.as_mut().filter(|p| **p > seq) {
                        *pong = pong.wrapping_sub(1);
                    }
                }
            }
        }
        self.push_text(text);
        let seq = self
            .popped
            .wrapping_add(self.queue.len() as u64)
            .wrapping_sub(1);
        self.latest = Some((key, seq));
    }

    /// Queues a binary frame whose payload is shared, not copied.
    pub fn push_binary(&mut self, data: &Bytes) {
        self.push(OpCode::Data(Data::Binary), Payload::Binary(data.clone()));
    }

    fn push(&mut self, opcode: OpCode, payload: Payload) {
        let header = FrameHeader {
            is_final: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
        };
        let length = payload.as_bytes().len() as u64;
        let mut bytes = [0u8; 10];
        let mut cursor = io::Cursor::new(&mut bytes[..]);
        // An unmasked header is at most 10 bytes, so formatting into 10 bytes cannot fail.
        let written = match header.format(length, &mut cursor) {
            Ok(()) => cursor.position() as u8,
            Err(_) => return,
        };
        let bytes_queued = usize::from(written).saturating_add(payload.as_bytes().len());
        self.queued = self.queued.saturating_add(bytes_queued);
        self.queue.push_back(Chunk::Frame {
            header: bytes,
            header_len: written,
            payload,
        });
    }
}

impl<S: Write> Wire<S> {
    /// Writes the queue to the socket until it is empty (`Ok`) or the socket is full
    /// (`Err(WouldBlock)`: the rest stays queued).
    pub fn send(&mut self) -> io::Result<()> {
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); SLICES_PER_WRITE];
            let mut count = 0;
            for (i, chunk) in self.queue.iter().enumerate() {
                if count > SLICES_PER_WRITE - 2 {
                    break;
                }
                for part in chunk.parts(if i == 0 { self.offset } else { 0 }) {
                    if let (false, Some(slot)) = (part.is_empty(), slices.get_mut(count)) {
                        *slot = IoSlice::new(part);
                        count = count.saturating_add(1);
                    }
                }
            }
            let filled = slices.get(..count).unwrap_or_default();
            let written = match self.stream.write_vectored(filled) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written);
        }
        Ok(())
    }

    fn consume(&mut self, mut written: usize) {
        self.written_total = self.written_total.saturating_add(written as u64);
        self.queued = self.queued.saturating_sub(written);
        while written > 0 {
            let Some(front) = self.queue.front() else {
                break;
            };
            let left = front.len().saturating_sub(self.offset);
            if written < left {
                self.offset = self.offset.saturating_add(written);
                return;
            }
            written = written.saturating_sub(left);
            self.offset = 0;
            if let Some(Chunk::Owned(bytes)) = self.queue.pop_front() {
                if is_pong(&bytes) {
                    self.pongs_waiting = self.pongs_waiting.saturating_sub(1);
                }
            }
            self.popped = self.popped.wrapping_add(1);
        }
        if self.queue.is_empty() && self.queue.capacity() > QUEUE_KEPT {
            // A burst must not pin its peak queue for the connection's lifetime.
            self.queue.shrink_to(QUEUE_KEPT);
        }
    }
}

impl<S: Read> Read for Wire<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read_budget == 0 {
            self.starved = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let room = buf.len().min(self.read_budget);
        let window = buf.get_mut(..room).unwrap_or_default();
        let n = self.stream.read(window)?;
        self.read_budget = self.read_budget.saturating_sub(n);
        self.read_total = self.read_total.saturating_add(n as u64);
        self.inbound.feed(window.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// Whether `frame` is one whole unmasked pong frame with a short payload (as tungstenite
/// writes its automatic replies).
fn is_pong(frame: &[u8]) -> bool {
    matches!(frame, [0x8A, len, rest @ ..] if usize::from(*len) == rest.len())
}

impl<S> Wire<S> {
    /// Replaces the pong still waiting in the queue with `frame`; false if there is none.
    fn replace_pong(&mut self, frame: &[u8]) -> bool {
        let Some(seq) = self.pong else {
            return false;
        };
        let Some(index) = seq.checked_sub(self.popped) else {
            return false;
        };
        let Ok(index) = usize::try_from(index) else {
            return false;
        };
        // One whose first bytes are already on the wire must finish as it began.
        if index == 0 && self.offset > 0 {
            return false;
        }
        let Some(Chunk::Owned(bytes)) = self.queue.get_mut(index) else {
            return false;
        };
        self.queued = self
            .queued
            .saturating_sub(bytes.len())
            .saturating_add(frame.len());
        bytes.clear();
        bytes.extend_from_slice(frame);
        true
    }
}

impl<S> Write for Wire<S> {
    /// tungstenite's frames: taken whole, never blocking; a pong replaces one still waiting.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let pong = is_pong(buf);
        if pong && self.pongs_waiting >= PONGS_WAITING_MAX && self.replace_pong(buf) {
            return Ok(buf.len());
        }
        if pong {
            self.pong = Some(self.popped.wrapping_add(self.queue.len() as u64));
            self.pongs_waiting = self.pongs_waiting.saturating_add(1);
        }
        self.queue.push_back(Chunk::Owned(buf.to_vec()));
        self.queued = self.queued.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Follows frame boundaries in the bytes a client sent (RFC 6455 §5.2 headers; payloads are
/// skipped by length, never looked at).
#[derive(Debug, Default)]
struct Inbound {
    /// Header bytes of the frame being read.
    head: [u8; 14],
    /// How many of them have arrived.
    have: u8,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// A data frame without FIN opened a fragmented message not yet finished.
    fragmented: bool,
    /// A frame with a payload over `large_above` arrived.
    large: bool,
    /// The size that makes a frame large.
    large_above: u64,
    /// Data frames (text, binary, continuation) whose header has arrived.
    data_frames: u64,
}

impl Inbound {
    fn at_rest(&self) -> bool {
        self.have == 0 && self.remaining == 0 && !self.fragmented
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let take =
                    usize::try_from(self.remaining).map_or(bytes.len(), |r| r.min(bytes.len()));
                self.remaining = self.remaining.saturating_sub(take as u64);
                bytes = bytes.get(take..).unwrap_or_default();
                continue;
            }
            let Some((&byte, rest)) = bytes.split_first() else {
                return;
            };
            bytes = rest;
            if let Some(slot) = self.head.get_mut(usize::from(self.have)) {
                *slot = byte;
            }
            self.have = self.have.saturating_add(1);
            self.header_done();
        }
    }

    /// Completes the header once all of it has arrived.
    fn header_done(&mut self) {
        let [first, second, ..] = self.head;
        if self.have < 2 {
            return;
        }
        let extended = match second & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        let need = 2usize.saturating_add(extended).saturating_add(mask);
        if usize::from(self.have) < need {
            return;
        }
        let length = match extended {
            2 => {
                let [_, _, high, low, ..] = self.head;
                u64::from(u16::from_be_bytes([high, low]))
            }
            8 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(self.head.get(2..10).unwrap_or(&[0; 8]));
                u64::from_be_bytes(be)
            }
            _ => u64::from(second & 0x7F),
        };
        let opcode = first & 0x0F;
        if opcode <= 2 {
            // Continuation, text or binary: FIN closes the message, its absence opens one.
            self.fragmented = first & 0x80 == 0;
            self.data_frames = self.data_frames.wrapping_add(1);
        }
        self.large |= length > self.large_above;
        self.have = 0;
        self.remaining = length;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes at most `window` bytes per write.
    struct Trickle {
        taken: Vec<u8>,
        window: usize,
        blocked: bool,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.blocked {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.window);
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Frames come out whole and in order through partial writes, and a full socket keeps
    /// the rest queued.
    #[test]
    fn partial_writes_keep_order() {
        let mut wire = Wire::new(Trickle {
            taken: Vec::new(),
            window: 3,
            blocked: false,
        });
        let text = Utf8Bytes::from("hello".to_string());
        wire.push_text(&text);
        wire.write_all(b"\x8a\x00").expect("queued");
        wire.push_text(&Utf8Bytes::from("x".repeat(200)));
        let total = wire.queued();
        assert_eq!(total, 2 + 5 + 2 + 4 + 200);
        wire.send().expect("sent");
        assert_eq!(wire.queued(), 0);
        let taken = &wire.get_mut().taken;
        assert_eq!(&taken[..7], b"\x81\x05hello");
        assert_eq!(&taken[7..9], b"\x8a\x00");
        assert_eq!(&taken[9..13], &[0x81, 126, 0, 200]);

        wire.get_mut().blocked = true;
        wire.push_text(&text);
        assert_eq!(
            wire.send().map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        assert_eq!(wire.queued(), 7);
    }

    /// `push_latest`: an unsent frame of the same key is superseded (the newer goes to the
    /// back); one already partly written is not; pongs keep being tracked across the removal.
    #[test]
    fn latest_supersedes_unsent_only() {
        let mut wire = Wire::new(Trickle {
            taken: Vec::new(),
            window: 3,
            blocked: true,
        });
        let frame = |s: &str| Utf8Bytes::from(s.to_string());
        wire.push_latest(&frame("s1"), 7);
        wire.write_all(b"\x8a\x00").expect("pong queued");
        wire.push_text(&frame("chat"));
        wire.push_latest(&frame("s2"), 7);
        assert_eq!(wire.queue.len(), 3, "s1 is gone");
        assert_eq!(wire.queued(), 2 + 6 + 4);
        // The pong is still the one tracked: replacing it works.
        assert!(wire.replace_pong(b"\x8a\x01!"));
        // Another key does not supersede.
        wire.push_latest(&frame("t1"), 9);
        assert_eq!(wire.queue.len(), 4);
        // A frame whose first bytes left is never taken back.
        let mut front = Wire::new(Trickle {
            taken: Vec::new(),
            window: 1,
            blocked: true,
        });
        front.push_latest(&frame("a"), 5);
        front.offset = 1;
        front.push_latest(&frame("b"), 5);
        assert_eq!(front.queue.len(), 2, "a partly written frame stays");
        wire.get_mut().blocked = false;
        wire.get_mut().window = 1 << 20;
        wire.send().expect("sent");
        let taken = String::from_utf8_lossy(&wire.get_mut().taken).into_owned();
        let order: Vec<usize> = ["!", "chat", "s2", "t1"]
            .iter()
            .map(|m| taken.find(m).expect(m))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{taken:?}");
        assert!(!taken.contains("s1"));
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::*;

    struct Blocked;

    impl Write for Blocked {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Read for Blocked {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(0x81);
            Ok(buf.len())
        }
    }

    /// A client that pings without reading is owed at most PONGS_WAITING_MAX pongs: past them
    /// each replaces the newest, and a pong already partly written is never rewritten.
    #[test]
    fn pongs_are_coalesced() {
        let mut wire = Wire::new(Blocked);
        wire.push_text(&Utf8Bytes::from("data".to_string()));
        for i in 0..10_000u32 {
            let payload = i.to_be_bytes();
            let mut frame = vec![0x8A, 4];
            frame.extend_from_slice(&payload);
            wire.write_all(&frame).expect("queued");
        }
        assert_eq!(wire.queue.len(), 1 + PONGS_WAITING_MAX);
        assert_eq!(wire.queued(), 6 + 6 * PONGS_WAITING_MAX);
        assert_eq!(
            wire.footprint(),
            6 + 6 * PONGS_WAITING_MAX + (1 + PONGS_WAITING_MAX) * CHUNK_BYTES
        );
        let Some(Chunk::Owned(last)) = wire.queue.back() else {
            panic!("no pong queued")
        };
        assert_eq!(&last[2..], &9_999u32.to_be_bytes());
        // Other control frames are never merged.
        wire.write_all(&[0x88, 0]).expect("queued");
        wire.write_all(&[0x88, 0]).expect("queued");
        assert_eq!(wire.queue.len(), 3 + PONGS_WAITING_MAX);
        // A pong that started going out is finished as it began; the next one queues anew.
        let mut wire = Wire::new(Vec::<u8>::new());
        for i in 0..PONGS_WAITING_MAX as u8 {
            wire.write_all(&[0x8A, 1, i]).expect("queued");
        }
        wire.pong = Some(0);
        wire.offset = 1;
        wire.write_all(&[0x8A, 1, 200]).expect("queued");
        assert_eq!(wire.queue.len(), PONGS_WAITING_MAX + 1);
        wire.write_all(&[0x8A, 1, 201]).expect("queued");
        assert_eq!(wire.queue.len(), PONGS_WAITING_MAX + 1);
        // Written pongs no longer count as waiting: a reader gets every pong of a burst.
        let mut wire = Wire::new(Vec::<u8>::new());
        for round in 0..3u8 {
            for i in 0..10u8 {
                wire.write_all(&[0x8A, 1, round * 10 + i]).expect("queued");
            }
            assert_eq!(wire.queue.len(), 10);
            wire.send().expect("sent");
        }
        assert_eq!(wire.get_mut().len(), 30 * 3);
    }

    /// The per-turn budget caps what tungstenite can read, and says it was the budget.
    #[test]
    fn read_budget() {
        let mut wire = Wire::new(Blocked);
        wire.set_read_budget(10);
        let mut buf = [0u8; 64];
        assert_eq!(wire.read(&mut buf).ok(), Some(10));
        assert!(!wire.take_starved());
        let error = wire.read(&mut buf).map_err(|e| e.kind());
        assert_eq!(error, Err(io::ErrorKind::WouldBlock));
        assert!(wire.take_starved());
        assert!(!wire.take_starved());
    }

    /// Frame boundaries are followed through any split of the input.
    #[test]
    fn inbound_boundaries() {
        let mask = [1, 2, 3, 4];
        let frame = |first: u8, len: usize| -> Vec<u8> {
            let mut out = vec![first];
            if len < 126 {
                out.push(0x80 | len as u8);
            } else if len <= 0xFFFF {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
            out.extend_from_slice(&mask);
            out.extend(std::iter::repeat_n(0u8, len));
            out
        };
        let mut stream = Vec::new();
        stream.extend(frame(0x81, 5));
        stream.extend(frame(0x01, 300)); // fragment opens
        stream.extend(frame(0x89, 3)); // ping in between
        stream.extend(frame(0x80, 70_000)); // final fragment
        for split in [1, 3, 7, 1_000, stream.len()] {
            let mut inbound = Inbound {
                large_above: 1_024,
                ..Inbound::default()
            };
            let mut rests = Vec::new();
            for piece in stream.chunks(split) {
                inbound.feed(piece);
                rests.push(inbound.at_rest());
            }
            assert!(inbound.at_rest(), "split {split}");
            assert!(inbound.large);
            if split == 1 {
                // Mid-way (inside the fragmented message) it is never at rest.
                let first = 5 + 6;
                let fragment_end = first + 8 + 300;
                assert!(rests[first - 1]);
                assert!(!rests[fragment_end]);
            }
        }
        let mut small = Inbound {
            large_above: 1_024,
            ..Inbound::default()
        };
        small.feed(&frame(0x81, 1_000));
        assert!(small.at_rest() && !small.large);
    }
}
