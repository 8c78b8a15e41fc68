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
            } => *header_len as usize + payload.as_bytes().len(),
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
                let header = &header[..*header_len as usize];
                let payload = payload.as_bytes();
                if offset < header.len() {
                    [&header[offset..], payload]
                } else {
                    [&payload[offset - header.len()..], &[]]
                }
            }
            Chunk::Owned(bytes) => [&bytes[offset..], &[]],
        }
    }
}

/// A socket and its outgoing queue.
#[derive(Debug)]
pub struct Wire<S> {
    stream: S,
    queue: VecDeque<Chunk>,
    /// Bytes of the first chunk already written.
    offset: usize,
    /// Bytes owed to the socket.
    queued: usize,
}

impl<S> Wire<S> {
    /// An empty queue over `stream`.
    pub fn new(stream: S) -> Wire<S> {
        Wire {
            stream,
            queue: VecDeque::new(),
            offset: 0,
            queued: 0,
        }
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
        self.queued += written as usize + payload.as_bytes().len();
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
                if count + 2 > SLICES_PER_WRITE {
                    break;
                }
                for part in chunk.parts(if i == 0 { self.offset } else { 0 }) {
                    if !part.is_empty() {
                        slices[count] = IoSlice::new(part);
                        count += 1;
                    }
                }
            }
            let written = match self.stream.write_vectored(&slices[..count]) {
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
        self.queued -= written;
        while written > 0 {
            let Some(front) = self.queue.front() else {
                break;
            };
            let left = front.len() - self.offset;
            if written < left {
                self.offset += written;
                return;
            }
            written -= left;
            self.offset = 0;
            self.queue.pop_front();
        }
    }
}

impl<S: Read> Read for Wire<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl<S> Write for Wire<S> {
    /// tungstenite's frames: taken whole, never blocking.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !buf.is_empty() {
            self.queue.push_back(Chunk::Owned(buf.to_vec()));
            self.queued += buf.len();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
}
