//! The byte streams the engine drives: sockets, or in-memory pipes in tests.

use std::io::{Read, Write};

/// A byte stream the engine can drive: a socket, or an in-memory pipe in tests.
pub trait Stream: Read + Write {
    /// Half-closes the write side (TCP FIN), telling the peer nothing more will come.
    fn close_write(&mut self);
}

impl Stream for mio::net::TcpStream {
    fn close_write(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Stream for std::net::TcpStream {
    fn close_write(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}
