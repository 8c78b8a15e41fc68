//! Per-address limits: how many connections one client address may hold, and how many it may
//! open per second. Pure bookkeeping over a fake-able clock; the engine asks it at accept time
//! (or, for a trusted proxy's connection, once the request names the client).
//!
//! An address is an IPv4 address, or an IPv6 /64 prefix (one home or one host gets a whole
//! /64, so counting single IPv6 addresses would limit nothing). IPv4-mapped IPv6 addresses
//! count as their IPv4 address.
//!
//! Connections being refused count too, and an address may hold at most
//! `REFUSALS_PER_ADDRESS` of them beyond its limit: past that its new connections are dropped
//! without an answer, so one address cannot fill the server's refusal slots either (which
//! keep `/health` answerable when every slot is taken).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use crate::time::Millis;

/// Connections an address may hold past its limit while they are answered 429.
pub const REFUSALS_PER_ADDRESS: u32 = 4;

/// The limits; 0 disables one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Connections (pending handshakes and WebSockets) per address.
    pub connections: u32,
    /// New connections per address per second.
    pub handshakes_per_sec: u32,
}

/// What to do with a new connection from an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Serve it (counted: call `leave` when it closes).
    Admit,
    /// Answer 429 (counted: call `leave` when it closes). `first` is the first refusal of
    /// the address's current second, for a log line.
    Refuse {
        /// First refusal of this address in its window.
        first: bool,
    },
    /// Close it without an answer (not counted).
    Drop,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    connections: u32,
    window_start: Millis,
    handshakes: u32,
    warned: bool,
}

/// Every address with connections, or seen within the last second.
#[derive(Debug, Default)]
pub struct Addresses {
    limits: Limits,
    table: HashMap<IpAddr, Entry>,
    next_sweep: Millis,
}

/// The address a client is counted under.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = v6.to_bits() & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from_bits(prefix))
            }
        },
    }
}

impl Addresses {
    /// An empty table with `limits`.
    pub fn new(limits: Limits) -> Addresses {
        Addresses {
            limits,
            table: HashMap::new(),
            next_sweep: Millis(0),
        }
    }

    /// A connection arrives from `address` (a `key`).
    pub fn arrive(&mut self, now: Millis, address: IpAddr) -> Admission {
        let limits = self.limits;
        let entry = self.table.entry(address).or_default();
        if now.since(entry.window_start) >= 1_000 || entry.handshakes == 0 {
            entry.window_start = now;
            entry.handshakes = 0;
            entry.warned = false;
        }
        entry.handshakes = entry.handshakes.saturating_add(1);
        let over_rate =
            limits.handshakes_per_sec > 0 && entry.handshakes > limits.handshakes_per_sec;
        let over_count = limits.connections > 0 && entry.connections >= limits.connections;
        if limits.connections > 0
            && entry.connections >= limits.connections.saturating_add(REFUSALS_PER_ADDRESS)
        {
            return Admission::Drop;
        }
        entry.connections = entry.connections.saturating_add(1);
        if over_rate || over_count {
            let first = !entry.warned;
            entry.warned = true;
            return Admission::Refuse { first };
        }
        Admission::Admit
    }

    /// A counted connection from `address` is gone.
    pub fn leave(&mut self, address: IpAddr) {
        if let Some(entry) = self.table.get_mut(&address) {
            entry.connections = entry.connections.saturating_sub(1);
        }
    }

    /// Connections counted for `address`.
    pub fn connections(&self, address: IpAddr) -> u32 {
        self.table.get(&address).map_or(0, |e| e.connections)
    }

    /// Forgets addresses with no connection whose window is over; at most once a second.
    pub fn sweep(&mut self, now: Millis) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now.after(1_000);
        self.table
            .retain(|_, e| e.connections > 0 || now.since(e.window_start) < 1_000);
    }

    /// Addresses tracked.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Releases table capacity left over from a crowd that has gone.
    pub fn compact(&mut self) {
        self.table.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));

    /// Connections past the limit are refused, a few more dropped; leaving frees a slot.
    #[test]
    fn connection_limit() {
        let mut table = Addresses::new(Limits {
            connections: 3,
            handshakes_per_sec: 0,
        });
        let now = Millis(10);
        for _ in 0..3 {
            assert_eq!(table.arrive(now, A), Admission::Admit);
        }
        assert_eq!(table.arrive(now, A), Admission::Refuse { first: true });
        for _ in 1..REFUSALS_PER_ADDRESS {
            assert_eq!(table.arrive(now, A), Admission::Refuse { first: false });
        }
        assert_eq!(table.arrive(now, A), Admission::Drop);
        assert_eq!(table.connections(A), 3 + REFUSALS_PER_ADDRESS);
        for _ in 0..=REFUSALS_PER_ADDRESS {
            table.leave(A);
        }
        assert_eq!(table.arrive(now, A), Admission::Admit);
        // Another address is not affected.
        let b: IpAddr = [203, 0, 113, 8].into();
        assert_eq!(table.arrive(now, b), Admission::Admit);
    }

    /// The handshake rate is per address per second; the window restarts after it.
    #[test]
    fn handshake_rate() {
        let mut table = Addresses::new(Limits {
            connections: 0,
            handshakes_per_sec: 2,
        });
        assert_eq!(table.arrive(Millis(0), A), Admission::Admit);
        assert_eq!(table.arrive(Millis(500), A), Admission::Admit);
        assert_eq!(
            table.arrive(Millis(999), A),
            Admission::Refuse { first: true }
        );
        assert_eq!(table.arrive(Millis(1_000), A), Admission::Admit);
        // Unlimited connections: never dropped, only refused.
        for _ in 0..100 {
            assert_ne!(table.arrive(Millis(1_001), A), Admission::Drop);
        }
    }

    /// IPv6 counts per /64; mapped IPv4 as IPv4. Swept entries go once idle.
    #[test]
    fn keys_and_sweep() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("v6");
        assert_eq!(key(a), key(b));
        assert_ne!(key(a), key("2001:db8:1:3::1".parse().expect("v6")));
        assert_eq!(
            key("::ffff:1.2.3.4".parse().expect("v6")),
            IpAddr::from([1, 2, 3, 4])
        );
        let mut table = Addresses::new(Limits::default());
        table.arrive(Millis(0), A);
        table.arrive(Millis(0), key(a));
        table.leave(A);
        table.sweep(Millis(2_000));
        assert_eq!(table.len(), 1, "the address with a connection stays");
    }
}
