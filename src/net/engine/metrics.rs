//! `/metrics`: the transport's counters in Prometheus text format, then the service's.

use std::fmt::Write as _;

use super::*;

use crate::net::service::family;

impl<S: Stream, A: Service> Engine<S, A> {
    /// Counts a refused HTTP request.
    pub(super) fn count_refusal(&mut self, status: Status) {
        if let Some(count) = self.stats.refused.get_mut(status.index()) {
            *count = count.saturating_add(1);
        }
    }

    /// Everything `/metrics` shows.
    pub(super) fn metrics_text(&self) -> String {
        let mut out = String::with_capacity(8 << 10);
        let s = &self.stats;
        family(
            &mut out,
            "tandem_connections_open",
            "gauge",
            "Connection slots in use (any phase).",
            &[("", self.conns.len() as u64)],
        );
        family(
            &mut out,
            "tandem_websockets_open",
            "gauge",
            "Open WebSocket connections.",
            &[("", self.websockets as u64)],
        );
        family(
            &mut out,
            "tandem_connections_accepted_total",
            "counter",
            "TCP connections accepted.",
            &[("", s.accepted)],
        );
        family(
            &mut out,
            "tandem_websockets_opened_total",
            "counter",
            "WebSocket upgrades completed.",
            &[("", s.opened)],
        );
        let refused: Vec<(String, u64)> = Status::ALL
            .iter()
            .map(|status| {
                let (code, _) = status.line();
                (
                    format!("status=\"{code}\""),
                    s.refused.get(status.index()).copied().unwrap_or(0),
                )
            })
            .collect();
        let refused: Vec<(&str, u64)> = refused.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            &mut out,
            "tandem_http_refused_total",
            "counter",
            "HTTP requests and upgrades refused, by status.",
            &refused,
        );
        family(
            &mut out,
            "tandem_address_refusals_total",
            "counter",
            "Connections refused or dropped for their address's limits.",
            &[("", s.address_refusals)],
        );
        family(
            &mut out,
            "tandem_slow_consumer_evictions_total",
            "counter",
            "Clients evicted for not taking what they are owed.",
            &[("", s.evicted)],
        );
        family(
            &mut out,
            "tandem_idle_closes_total",
            "counter",
            "Connections closed for silence.",
            &[("", s.idled_out)],
        );
        family(
            &mut out,
            "tandem_rate_pauses_total",
            "counter",
            "Times a sender was not read for the rest of its second.",
            &[("", s.paused)],
        );
        let (read, written) = self.bytes();
        family(
            &mut out,
            "tandem_bytes_in_total",
            "counter",
            "Socket bytes read.",
            &[("", read)],
        );
        family(
            &mut out,
            "tandem_bytes_out_total",
            "counter",
            "Socket bytes written.",
            &[("", written)],
        );
        let _ = writeln!(
            out,
            "# HELP tandem_turn_duration_seconds Event-loop turn duration.\n\
             # TYPE tandem_turn_duration_seconds histogram"
        );
        let mut cumulative = 0u64;
        for (i, count) in s.turns.iter().enumerate() {
            cumulative = cumulative.saturating_add(*count);
            let le = TURN_BUCKETS_US
                .get(i)
                .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
            let _ = writeln!(
                out,
                "tandem_turn_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "tandem_turn_duration_seconds_sum {}\ntandem_turn_duration_seconds_count {cumulative}",
            s.turn_us_sum as f64 / 1e6
        );
        self.gateway.metrics(&mut out);
        out
    }
}
