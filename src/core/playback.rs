//! Playback commands: the stock host's relayed facts, the scheduling host's requests, the
//! ready barrier, held deliveries and the `state_update` filter.
//!
//! Two kinds of host. A stock OpenWatchParty host has already acted when its `player_event`
//! arrives, so its command is relayed at once to the other members with
//! `target_server_ts = server_ts = now`. A host that declared `follows_schedule` sends
//! requests: a play waits for ready members (or the ready-wait deadline) and then goes to
//! every member, host included, `play_schedule_ms` ahead; other commands go
//! `control_schedule_ms` ahead.
//!
//! Two kinds of member. One that follows the schedule gets every command at once, target
//! included. A stock member schedules plays but executes everything else on receipt, so
//! those are held on the timer wheel until their instant, in a FIFO that keeps the host's
//! order (a play issued behind a held pause waits behind it).

use super::room::{Held, PendingPlay, Room};
use super::types::{
    later, ControlAction, ControlMessage, CoreTimer, Event, Outbox, PlayState, Report,
};
use super::Core;
use crate::time::Millis;

/// Commands replayed to a joiner are at most this many (the rate limit bounds them anyway).
pub const IN_FLIGHT_MAX: usize = 32;
/// Commands held for a room's stock members at most. Each waits at most
/// `play_schedule_ms + PLAY_GUARD_MS`, so at the default rate limit a room holds a few dozen.
pub const HELD_MAX: usize = 64;
/// How long after a scheduled play starts a held command may reach a stock member. The
/// stock client starts a scheduled play from a timer on its own estimate of the server clock
/// and cannot cancel it; a pause arriving just before that timer fires would be overridden.
pub const PLAY_GUARD_MS: u64 = 200;

impl Core {
    /// A host's `player_event`.
    pub(super) fn control(&mut self, key: usize, control: super::types::Control, out: &mut Outbox) {
        let Some(host) = self.rooms.get(key).map(|room| room.host) else {
            return;
        };
        let scheduling = self
            .seats
            .get(host)
            .is_some_and(|s| s.caps.follows_schedule);
        if let Some(room) = self.rooms.get_mut(key) {
            room.pending_play = None;
        }
        if !scheduling {
            self.relay_fact(key, control, out);
        } else if control.action == ControlAction::Play {
            if self.rooms.get(key).is_some_and(Room::all_ready) {
                self.start_play(key, control.position, out);
            } else {
                self.hold_play(key, control.position);
            }
        } else {
            self.schedule_control(key, control, out);
        }
    }

    /// Moves the room clock to the command, effective at `at`, and notes it for the
    /// state_update filter.
    fn record(&mut self, key: usize, control: &super::types::Control, at: Millis) {
        let now = self.now.mono;
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let (action, position, play_state) =
            (&control.action, control.position, control.play_state);
        room.clock
            .apply_control(now, at, action, position, play_state);
        note_command(room, action, position, play_state, now);
    }

    /// Stock host: the command already happened; tell the others now.
    fn relay_fact(&mut self, key: usize, control: super::types::Control, out: &mut Outbox) {
        let now = self.now.mono;
        self.record(key, &control, now);
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let message = ControlMessage {
            relay: control.relay,
            target: self.now.wall,
        };
        let recipients: Vec<usize> = room
            .members
            .iter()
            .map(|m| m.key)
            .filter(|&k| k != room.host)
            .collect();
        let play = control.action == ControlAction::Play;
        self.deliver(key, message, now, play, &recipients, out);
    }

    /// Scheduling host: a pause, seek or other command for everyone, a little ahead.
    fn schedule_control(&mut self, key: usize, control: super::types::Control, out: &mut Outbox) {
        let (at, target) = later(self.now, self.config.control_schedule_ms);
        self.record(key, &control, at);
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let message = ControlMessage {
            relay: control.relay,
            target,
        };
        let recipients: Vec<usize> = room.members.iter().map(|m| m.key).collect();
        self.remember_in_flight(key, at, &message, control.action);
        self.deliver(key, message, at, false, &recipients, out);
    }

    /// Scheduling host, not everyone ready: wait for the last `ready` or the deadline.
    fn hold_play(&mut self, key: usize, position: Option<f64>) {
        let epoch = self.next_serial();
        let deadline = self.now.mono.after(self.config.ready_wait_ms_max);
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.pending_play = Some(PendingPlay {
            position,
            epoch,
            deadline,
        });
        self.timers
            .insert(deadline, CoreTimer::ReadyDeadline { room: key, epoch });
    }

    /// Everyone starts together `play_schedule_ms` from now.
    fn start_play(&mut self, key: usize, position: Option<f64>, out: &mut Outbox) {
        let now = self.now.mono;
        let (at, target) = later(self.now, self.config.play_schedule_ms);
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.pending_play = None;
        let position = position.unwrap_or_else(|| room.clock.state_at(at).read(at));
        room.clock
            .apply_control(now, at, &ControlAction::Play, Some(position), None);
        note_command(room, &ControlAction::Play, Some(position), None, now);
        let message = ControlMessage {
            relay: Room::play_relay(position),
            target,
        };
        let recipients: Vec<usize> = room.members.iter().map(|m| m.key).collect();
        self.remember_in_flight(key, at, &message, ControlAction::Play);
        self.deliver(key, message, at, true, &recipients, out);
    }

    /// Releases a pending play once nobody is left to wait for.
    pub(super) fn check_barrier(&mut self, key: usize, out: &mut Outbox) {
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        if let Some(pending) = &room.pending_play {
            if room.all_ready() {
                let position = pending.position;
                self.counters.plays_released_ready =
                    self.counters.plays_released_ready.saturating_add(1);
                self.start_play(key, position, out);
            }
        }
    }

    /// The ready-wait expired: members still loading are not waited for (until they send
    /// `ready` again, which they then are anyway), and the play starts.
    pub(super) fn ready_deadline(&mut self, key: usize, epoch: u64, out: &mut Outbox) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let Some(pending) = room.pending_play.as_ref().filter(|p| p.epoch == epoch) else {
            return;
        };
        let position = pending.position;
        for member in &mut room.members {
            member.ready = true;
            member.buffering = false;
        }
        self.counters.plays_released_deadline =
            self.counters.plays_released_deadline.saturating_add(1);
        self.start_play(key, position, out);
    }

    /// Sends `message` to `recipients`: at once to members that follow the schedule, and to
    /// stock members when they can take it now (a play they schedule themselves, or a command
    /// due now); otherwise holds it for them until `at`, behind anything already held.
    fn deliver(
        &mut self,
        key: usize,
        message: ControlMessage,
        at: Millis,
        play: bool,
        recipients: &[usize],
        out: &mut Outbox,
    ) {
        let now = self.now.mono;
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let host_user = self
            .seats
            .get(room.host)
            .map(|s| s.user_id.clone())
            .unwrap_or_default();
        let index = out.event(Event::Control {
            room: room.id,
            host: room.host_seat(),
            host_user,
            message: message.clone(),
        });
        let mut held_for = Vec::new();
        let mut stock_now = false;
        let play_pending = room.stock_play_at > now;
        for &seat in recipients {
            let holder = self.seats.get(seat);
            let follows = holder.is_some_and(|s| s.caps.follows_schedule);
            // Whatever is still held for this member goes first, whatever it declares now.
            let behind = room.held.iter().any(|h| h.recipients.contains(&seat));
            let now_ok = room.held.is_empty() && (play || (at <= now && !play_pending));
            if (follows && !behind) || now_ok {
                if let Some(conn) = holder.and_then(|s| s.conn) {
                    out.send(conn, index);
                }
                stock_now |= !follows;
            } else {
                held_for.push(seat);
            }
        }
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        if play && stock_now && at > now {
            room.stock_play_at = room.stock_play_at.max(at);
        }
        if held_for.is_empty() {
            return;
        }
        if room.held.len() >= HELD_MAX {
            // A bound on memory whatever the settings: past it, commands go out at once
            // (early for a stock member) rather than wait in the room.
            for seat in held_for {
                if let Some(conn) = self.seats.get(seat).and_then(|s| s.conn) {
                    out.send(conn, index);
                }
            }
            return;
        }
        let own = if play {
            now
        } else {
            at.max(room.stock_play_at.after(PLAY_GUARD_MS))
        };
        let due = own.max(room.held.back().map_or(Millis(0), |h| h.due));
        room.held.push_back(Held {
            due,
            message,
            recipients: held_for,
            play,
            at,
        });
        let serial = room.serial;
        self.timers
            .insert(due, CoreTimer::HeldDue { room: key, serial });
    }

    /// Delivers held commands whose instant has come, to those still members.
    pub(super) fn deliver_held(&mut self, key: usize, serial: u64, out: &mut Outbox) {
        let now = self.now.mono;
        let seats = &self.seats;
        let Some(room) = self.rooms.get_mut(key).filter(|r| r.serial == serial) else {
            return;
        };
        while room.held.front().is_some_and(|h| h.due <= now) {
            let Some(mut held) = room.held.pop_front() else {
                break;
            };
            if held.play && held.at > now {
                // A play keeps its start instant, which the stock client schedules.
                room.stock_play_at = room.stock_play_at.max(held.at);
            } else {
                // A stock member acts on receipt and measures elapsed time from server_ts,
                // so the command is stamped with the instant it is delivered.
                held.message.target = self.now.wall;
            }
            let host_user = seats
                .get(room.host)
                .map(|s| s.user_id.clone())
                .unwrap_or_default();
            let index = out.event(Event::Control {
                room: room.id,
                host: room.host_seat(),
                host_user,
                message: held.message,
            });
            for seat in held.recipients.into_iter().filter(|&k| room.has(k)) {
                if let Some(conn) = seats.get(seat).and_then(|s| s.conn) {
                    out.send(conn, index);
                }
            }
        }
    }

    fn remember_in_flight(
        &mut self,
        key: usize,
        at: Millis,
        message: &ControlMessage,
        action: ControlAction,
    ) {
        let now = self.now.mono;
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.in_flight.retain(|(when, _, _)| *when > now);
        if room.in_flight.len() >= IN_FLIGHT_MAX {
            room.in_flight.remove(0);
        }
        room.in_flight.push((at, message.clone(), action));
    }

    /// A joiner gets the commands whose instant is still ahead, as members got them.
    pub(super) fn replay_in_flight(&mut self, key: usize, seat: usize, out: &mut Outbox) {
        let now = self.now.mono;
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let pending: Vec<_> = room
            .in_flight
            .iter()
            .filter(|(when, _, _)| *when > now)
            .cloned()
            .collect();
        for (at, message, action) in pending {
            self.deliver(
                key,
                message,
                at,
                action == ControlAction::Play,
                &[seat],
                out,
            );
        }
    }

    /// A host's `state_update`: always moves the room clock; relayed to the others only if
    /// it passes the original's filter, compared with the last relayed state.
    pub(super) fn report(&mut self, key: usize, report: Report, out: &mut Outbox) {
        let now = self.now.mono;
        let config = (
            self.config.command_cooldown_ms,
            self.config.state_update_interval_ms,
        );
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let play_state = report.play_state_text.as_deref().and_then(PlayState::parse);
        room.clock.apply_report(now, report.position, play_state);
        if !passes_filter(room, &report, now, config) {
            return;
        }
        if let Some(position) = report.position {
            room.filter.position = position;
        }
        if let Some(state) = play_state {
            room.filter.play_state = state;
        }
        room.filter.last_state_at = now;
        let host_user = self
            .seats
            .get(room.host)
            .map(|s| s.user_id.clone())
            .unwrap_or_default();
        let index = out.event(Event::State {
            room: room.id,
            host: room.host_seat(),
            host_user,
            relay: report.relay,
            server_ts: self.now.wall,
        });
        for member in room.members.iter().filter(|m| m.key != room.host) {
            if let Some(conn) = self.seats.get(member.key).and_then(|s| s.conn) {
                out.send(conn, index);
            }
        }
    }
}

/// Records a relayed command in the filter state, as the original's `room.state` does.
fn note_command(
    room: &mut Room,
    action: &ControlAction,
    position: Option<f64>,
    play_state: Option<PlayState>,
    now: Millis,
) {
    let filter = &mut room.filter;
    if let Some(position) = position {
        filter.position = position;
    }
    if let Some(state) = play_state {
        filter.play_state = state;
    }
    match action {
        ControlAction::Play => filter.play_state = PlayState::Playing,
        ControlAction::Pause => filter.play_state = PlayState::Paused,
        _ => {}
    }
    filter.last_state_at = now;
    filter.last_command_at = Some(now);
}

/// The original's `state_update` filter (reference §2.7): a play-state change always
/// passes; otherwise drop inside the command cooldown, under the minimum interval, for a
/// small backward jitter (-2.0 ≤ diff < -0.5 s) or a small forward step (0 ≤ diff < 0.5 s).
fn passes_filter(
    room: &Room,
    report: &Report,
    now: Millis,
    (cooldown, interval): (u64, u64),
) -> bool {
    if !report.has_payload {
        return true;
    }
    let filter = &room.filter;
    let new_state = report
        .play_state_text
        .as_deref()
        .unwrap_or(filter.play_state.as_str());
    if new_state != filter.play_state.as_str() {
        return true;
    }
    let diff = report.position_number.unwrap_or(filter.position) - filter.position;
    let cooling = filter
        .last_command_at
        .is_some_and(|t| now.since(t) < cooldown);
    let too_soon = now.since(filter.last_state_at) < interval;
    let jitter_back = (-2.0..-0.5).contains(&diff);
    let small_step = (0.0..0.5).contains(&diff);
    !(cooling || too_soon || jitter_back || small_step)
}
