//! The level-1 reference model: what each client must believe, built only from the messages
//! it received (and from what it sent), checked against the core's real state after every
//! step. Every check returns `Err(description)`; the driver adds seed and step.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tandem::core::Core;
use tandem::id::{ConnId, RoomId};

/// Result of a check.
pub type Check = Result<(), String>;

/// One entry of a room list, as compared: (room id, member count).
pub type ListEntry = (String, u64);

/// A client's view of the world.
#[derive(Debug, Default)]
pub struct View {
    /// The room it was last told it is in (`room_state`), until told it is gone.
    pub room: Option<String>,
    /// Host-command markers received since joining `room` (a re-join keeps them).
    pub seen: BTreeSet<u64>,
    /// `room` was joined before: replays of commands it already has are tolerated.
    pub rejoined: bool,
    /// Every room this connection was ever told it is in.
    pub joined: BTreeSet<String>,
    /// The room's last command marker when this membership began.
    pub issued_at_join: u64,
    /// A command issued after `issued_at_join` arrived.
    pub fresh_seen: bool,
    /// The last room list it received.
    pub list: Option<Vec<ListEntry>>,
    /// A joiner's `room_state` of a playing room is followed by a synthetic play.
    pub expect_joiner_play: bool,
    /// A v1 client: it has no room list (the dialect has none).
    pub v1: bool,
}

/// A play from a scheduling host, waiting for ready members.
#[derive(Debug, Clone, Copy)]
pub struct PendingPlay {
    /// Its marker.
    pub marker: u64,
    /// When it must have been released.
    pub deadline: u64,
}

/// Model state shared by every client.
#[derive(Debug, Default)]
pub struct Model {
    /// Per open connection.
    pub views: BTreeMap<ConnId, View>,
    /// Per room id: the pending plays of its scheduling host, not yet seen delivered.
    pub pending: BTreeMap<String, Vec<PendingPlay>>,
    /// (room, marker) of pending plays a later host command cancelled.
    pub cancelled: BTreeSet<(String, u64)>,
    /// The room list content last observed, and when it last changed.
    pub list: Vec<ListEntry>,
    pub list_changed_at: u64,
    /// The last command marker each room's host issued.
    pub issued: BTreeMap<String, u64>,
    /// Commands delivered twice to a member that re-joined a room (a bug since fixed; see
    /// `rejoin_does_not_duplicate_a_held_command`), counted rather than failed on so the rest
    /// of the model stays checkable.
    pub rejoin_duplicates: u64,
}

impl Model {
    /// Applies one message received by `conn` at `now`; checks what can be checked at once.
    pub fn receive(&mut self, conn: ConnId, message: &Value, core: &Core, now: u64) -> Check {
        let kind = message["type"].as_str().unwrap_or_default();
        let room = message["room"].as_str().map(String::from);
        let view = self
            .views
            .get_mut(&conn)
            .ok_or(format!("message for closed {conn}"))?;
        let joiner_play = std::mem::take(&mut view.expect_joiner_play);
        match kind {
            "room_state" => {
                let payload = &message["payload"];
                if view.room != room {
                    view.seen.clear();
                }
                // Joined before (now, or in an earlier membership): copies of commands it
                // already has may come again (a known bug, tolerated and counted).
                let id = room.clone().unwrap_or_default();
                view.rejoined = !view.joined.insert(id.clone());
                view.issued_at_join = self.issued.get(&id).copied().unwrap_or(0);
                view.fresh_seen = false;
                view.room = room;
                let host = payload["host_id"].as_str();
                view.expect_joiner_play = payload["state"]["play_state"] == "playing"
                    && host != message["client"].as_str();
            }
            "room_closed" if view.room == room => view.room = None,
            "room_list" => {
                let list = parse_list(message)?;
                let actual = snapshot(core);
                if list != actual {
                    return Err(format!("room_list {list:?} but the core has {actual:?}"));
                }
                view.list = Some(list);
            }
            "participants_update" | "state_update" | "client_left" | "chat_message"
                if view.room != room =>
            {
                return Err(format!(
                    "{kind} about {room:?} to {conn}, in {:?}",
                    view.room
                ));
            }
            "player_event" => {
                if view.room != room {
                    return Err(format!(
                        "player_event about {room:?} to {conn}, in {:?}",
                        view.room
                    ));
                }
                let play = message["payload"]["action"] == "play";
                if !(joiner_play && play) {
                    self.command_received(conn, message, now)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A host command reached `conn`: in order, and not a cancelled or late pending play.
    fn command_received(&mut self, conn: ConnId, message: &Value, now: u64) -> Check {
        let room = message["room"].as_str().unwrap_or_default().to_string();
        let Some(marker) = message["payload"]["position"].as_f64().map(|p| p as u64) else {
            return Err(format!("player_event without a marker: {message}"));
        };
        if self.cancelled.contains(&(room.clone(), marker)) {
            return Err(format!(
                "play {marker} delivered to {conn} after a later command"
            ));
        }
        if let Some(plays) = self.pending.get_mut(&room) {
            if let Some(play) = plays.iter().find(|p| p.marker == marker) {
                if now > play.deadline {
                    return Err(format!(
                        "play {marker} released at {now}, deadline {}",
                        play.deadline
                    ));
                }
                plays.retain(|p| p.marker != marker);
            }
        }
        let view = self.views.get_mut(&conn).ok_or("closed")?;
        if view.rejoined && marker <= view.issued_at_join {
            // A command from before this membership, replayed because its instant is still
            // ahead: it comes once, in order, and never after a command issued since the join.
            if view.fresh_seen {
                return Err(format!("{conn} got old command {marker} after a newer one"));
            }
            let last = view.seen.last().copied();
            if !view.seen.insert(marker) || last.is_some_and(|last| marker < last) {
                self.rejoin_duplicates += 1;
                return Err(format!(
                    "{conn} got old command {marker} twice or out of order"
                ));
            }
            return Ok(());
        }
        if view.seen.contains(&marker) {
            return Err(format!("{conn} got command {marker} twice"));
        }
        if let Some(&last) = view.seen.last() {
            if marker < last {
                return Err(format!("{conn} got command {marker} after {last}"));
            }
        }
        view.seen.insert(marker);
        view.fresh_seen |= marker > view.issued_at_join;
        Ok(())
    }

    /// The host of `room` issued command `marker` (admitted): older pending plays are void.
    pub fn host_command(&mut self, room: &str, marker: u64) {
        self.issued.insert(room.to_string(), marker);
        if let Some(plays) = self.pending.remove(room) {
            for play in plays.into_iter().filter(|p| p.marker < marker) {
                self.cancelled.insert((room.to_string(), play.marker));
            }
        }
    }

    /// Checks that need the whole step: membership agrees with the core, every room has one
    /// host among its members, lists are fresh, pending plays are not overdue.
    pub fn check_step(&mut self, core: &Core, now: u64, list_interval: u64) -> Check {
        core.check_invariants();
        check_rooms(core)?;
        for (&conn, view) in &self.views {
            let actual = core.room_of(conn).map(|r| r.to_string());
            if view.room != actual {
                return Err(format!(
                    "{conn} believes it is in {:?}, the core says {actual:?}",
                    view.room
                ));
            }
        }
        let list = snapshot(core);
        if list != self.list {
            self.list = list;
            self.list_changed_at = now;
        } else if now >= self.list_changed_at + list_interval {
            let lobby = self.views.iter().filter(|(_, v)| v.room.is_none() && !v.v1);
            for (&conn, view) in lobby {
                if view.list.as_ref() != Some(&self.list) {
                    return Err(format!(
                        "lobby {conn} has list {:?}, not {:?}",
                        view.list, self.list
                    ));
                }
            }
        }
        for (room, plays) in &self.pending {
            if let Some(play) = plays.iter().find(|p| now > p.deadline) {
                return Err(format!(
                    "play {} in {room} not released by {}",
                    play.marker, play.deadline
                ));
            }
        }
        Ok(())
    }

    /// A room is gone: its pending plays with it.
    pub fn forget_closed_rooms(&mut self, core: &Core) {
        self.pending
            .retain(|room, _| RoomId::parse(room).is_some_and(|id| core.host(id).is_some()));
    }
}

/// Every room has exactly one host, a member; members are in one room at most. Members
/// whose connection is gone (seats in grace) have no connection to check: a host may be one.
fn check_rooms(core: &Core) -> Check {
    let mut seen = BTreeSet::new();
    for summary in core.room_list() {
        let members = core.members(summary.id);
        let hosts = core
            .host(summary.id)
            .map_or(0, |host| members.iter().filter(|&&m| m == host).count());
        let host = core.host(summary.id);
        let away_host = host.is_none();
        if (!away_host && hosts != 1) || members.len() > summary.count {
            return Err(format!(
                "room {}: host {host:?} {hosts}x among {members:?}",
                summary.id
            ));
        }
        for member in members {
            if !seen.insert(member) {
                return Err(format!("{member} is in two rooms"));
            }
            if core.room_of(member) != Some(summary.id) {
                return Err(format!(
                    "{member} listed in {} but room_of disagrees",
                    summary.id
                ));
            }
        }
    }
    Ok(())
}

/// The core's room list as compared with received lists.
pub fn snapshot(core: &Core) -> Vec<ListEntry> {
    core.listing()
        .rooms
        .into_iter()
        .map(|r| (r.id.to_string(), r.count as u64))
        .collect()
}

fn parse_list(message: &Value) -> Result<Vec<ListEntry>, String> {
    let entries = message["payload"]
        .as_array()
        .ok_or("room_list without an array")?;
    entries
        .iter()
        .map(|e| match (e["id"].as_str(), e["count"].as_u64()) {
            (Some(id), Some(count)) => Ok((id.to_string(), count)),
            _ => Err(format!("malformed room_list entry {e}")),
        })
        .collect()
}
