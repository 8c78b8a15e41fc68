//! Networking: the HTTP upgrade, connections, the engine (generic over streams) and the mio
//! event loop (the only mio-aware code).

pub mod addresses;
mod conn;
pub mod engine;
pub mod event_loop;
pub mod memory;
pub mod service;
pub mod state_file;
pub mod stream;
pub mod upgrade;
pub mod wire;
