//! An in-memory duplex pipe whose two ends implement `Read + Write` and tandem's `Stream`, so
//! the real `Engine` and tungstenite clients run over it without sockets.
//!
//! The harness controls everything a kernel would decide: how many bytes one `read` returns
//! (`read_chunk`), how many one `write` accepts (`write_chunk`), how many unread bytes a
//! direction holds before writes return `WouldBlock` (`window`), spurious `WouldBlock`s on
//! reads (`stall_reads`), half-close (`close_write`, a FIN) and a dropped end (EOF for the
//! peer, `BrokenPipe` for its writes). Each end also has an edge flag, set whenever something
//! happens that an edge-triggered poller would report to it (bytes arrived, the window
//! opened, the peer closed), which the simulated event loop turns into readiness events.
//!
//! Shared through `Rc<RefCell<_>>`: the simulation is single-threaded by construction.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;

/// The end that connects (index 0 in the shared state).
pub const CLIENT: usize = 0;
/// The end that accepts (index 1).
pub const SERVER: usize = 1;

/// What the harness can tune on one end.
#[derive(Clone, Copy, Debug)]
pub struct Knobs {
    /// Unread bytes the direction this end writes into may hold; writes beyond block.
    pub window: usize,
    /// Most bytes one `read` on this end returns.
    pub read_chunk: usize,
    /// Most bytes one `write` on this end accepts.
    pub write_chunk: usize,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            window: 1 << 20,
            read_chunk: 1 << 16,
            write_chunk: 1 << 16,
        }
    }
}

#[derive(Debug, Default)]
struct Pipe {
    bytes: VecDeque<u8>,
    /// The writer half-closed: reads see EOF once `bytes` is drained.
    fin: bool,
    /// Bytes ever written into this direction (for amplification checks).
    total: u64,
}

#[derive(Debug, Default)]
struct Shared {
    /// `pipes[side]` carries what `side` writes.
    pipes: [Pipe; 2],
    knobs: [Knobs; 2],
    dropped: [bool; 2],
    /// `edges[side]`: something happened that `side`'s poller would report.
    edges: [bool; 2],
    /// `stalls[side]`: reads on `side` that return `WouldBlock` even with bytes waiting.
    stalls: [u32; 2],
}

/// One end of a pipe.
#[derive(Debug)]
pub struct MemStream {
    shared: Rc<RefCell<Shared>>,
    side: usize,
    /// The stream proper (false for harness handles, whose drop closes nothing).
    owner: bool,
}

/// A connected pair: (client end, server end).
pub fn pair() -> (MemStream, MemStream) {
    let shared = Rc::new(RefCell::new(Shared::default()));
    let client = MemStream {
        shared: shared.clone(),
        side: CLIENT,
        owner: true,
    };
    (
        client,
        MemStream {
            shared,
            side: SERVER,
            owner: true,
        },
    )
}

impl MemStream {
    /// A handle on the same pipe end, for the harness to inspect and tune it while the engine
    /// or a tungstenite client owns the stream. Reading or writing through it is allowed but
    /// shares the stream's position.
    pub fn handle(&self) -> MemStream {
        MemStream {
            shared: self.shared.clone(),
            side: self.side,
            owner: false,
        }
    }

    /// Changes this end's knobs; a wider window is an edge for the peer.
    pub fn set_knobs(&self, knobs: Knobs) {
        let mut shared = self.shared.borrow_mut();
        if knobs.window > shared.knobs[self.side].window {
            shared.edges[self.side] = true;
        }
        shared.knobs[self.side] = knobs;
    }

    /// This end's knobs.
    pub fn knobs(&self) -> Knobs {
        self.shared.borrow().knobs[self.side]
    }

    /// The next `count` reads on this end return `WouldBlock` whatever is waiting.
    pub fn stall_reads(&self, count: u32) {
        self.shared.borrow_mut().stalls[self.side] = count;
    }

    /// Bytes waiting to be read by this end.
    pub fn readable_bytes(&self) -> usize {
        self.shared.borrow().pipes[1 - self.side].bytes.len()
    }

    /// Bytes this end wrote that the peer has not read yet.
    pub fn unread_by_peer(&self) -> usize {
        self.shared.borrow().pipes[self.side].bytes.len()
    }

    /// Bytes this end ever wrote.
    pub fn written_total(&self) -> u64 {
        self.shared.borrow().pipes[self.side].total
    }

    /// Whether the peer half-closed or dropped its end.
    pub fn peer_finished(&self) -> bool {
        let shared = self.shared.borrow();
        shared.pipes[1 - self.side].fin || shared.dropped[1 - self.side]
    }

    /// Whether the peer's end was dropped (the server reaped the connection).
    pub fn peer_dropped(&self) -> bool {
        self.shared.borrow().dropped[1 - self.side]
    }

    /// Whether this end's poller would report readiness now (the flag is kept).
    pub fn has_edge(&self) -> bool {
        self.shared.borrow().edges[self.side]
    }

    /// Takes this end's edge flag: true if its poller would have reported readiness.
    pub fn take_edge(&self) -> bool {
        std::mem::take(&mut self.shared.borrow_mut().edges[self.side])
    }

    /// Reads and discards everything waiting; returns the bytes.
    pub fn drain(&self) -> Vec<u8> {
        let mut shared = self.shared.borrow_mut();
        let bytes: Vec<u8> = shared.pipes[1 - self.side].bytes.drain(..).collect();
        if !bytes.is_empty() {
            shared.edges[1 - self.side] = true;
        }
        bytes
    }
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut shared = self.shared.borrow_mut();
        let side = self.side;
        if shared.stalls[side] > 0 {
            shared.stalls[side] -= 1;
            // A spurious WouldBlock clears the reader's readiness, so a poller reports again.
            shared.edges[side] = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let chunk = shared.knobs[side].read_chunk.max(1);
        let pipe = &mut shared.pipes[1 - side];
        if pipe.bytes.is_empty() {
            if pipe.fin || shared.dropped[1 - side] {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(chunk).min(pipe.bytes.len());
        for (slot, byte) in buf[..n].iter_mut().zip(pipe.bytes.drain(..n)) {
            *slot = byte;
        }
        // Room opened in the writer's window.
        shared.edges[1 - side] = true;
        Ok(n)
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut shared = self.shared.borrow_mut();
        let side = self.side;
        if shared.dropped[1 - side] || shared.pipes[side].fin {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let knobs = shared.knobs[side];
        let space = knobs.window.saturating_sub(shared.pipes[side].bytes.len());
        if space == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(space).min(knobs.write_chunk.max(1));
        let pipe = &mut shared.pipes[side];
        pipe.bytes.extend(&buf[..n]);
        pipe.total += n as u64;
        shared.edges[1 - side] = true;
        Ok(n)
    }

    /// As a socket does: as much of the slices, in order, as the window and chunk allow.
    fn write_vectored(&mut self, slices: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut total = 0;
        for slice in slices.iter().filter(|s| !s.is_empty()) {
            match self.write(slice) {
                Ok(n) => {
                    total += n;
                    if n < slice.len() || total >= self.knobs().write_chunk {
                        break;
                    }
                }
                Err(e) if total == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tandem::net::stream::Stream for MemStream {
    fn close_write(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.pipes[self.side].fin = true;
        shared.edges[1 - self.side] = true;
    }
}

impl Drop for MemStream {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        let mut shared = self.shared.borrow_mut();
        shared.dropped[self.side] = true;
        shared.edges[1 - self.side] = true;
    }
}
