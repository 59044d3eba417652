//! The admin API's operations on the world: create, scale and cap rooms,
//! move the event or add an overflow room, open a waiting room, check and
//! mute speakers. Each is logged as an admin action.

use super::*;

impl World {
    pub(super) fn log(&mut self, action: &str, room: &str, detail: String) {
        self.event.actions.push(AdminAction {
            at: self.time,
            action: action.to_owned(),
            room: room.to_owned(),
            detail,
        });
    }

    pub(super) fn check_event(&self, event: &str) -> Result<(), SimError> {
        if event == self.event.id {
            Ok(())
        } else {
            Err(SimError::UnknownEvent {
                got: event.into(),
                valid: self.event.id.clone(),
            })
        }
    }

    pub(super) fn room_or_404(&self, room: &str) -> Result<usize, SimError> {
        self.room_idx(room).ok_or_else(|| SimError::UnknownRoom {
            got: room.into(),
            valid: list(self.rooms.iter().map(|r| r.id.clone())),
        })
    }

    /// Creates a ready room on `account`, id `<account>-<n>`.
    pub fn create_room(
        &mut self,
        account: &str,
        capacity: Option<u64>,
        admission_rate: Option<u64>,
        title: Option<String>,
    ) -> Result<RoomSnapshot, SimError> {
        let Some(acct) = self.scenario.account(account) else {
            return Err(SimError::UnknownAccount {
                got: account.into(),
                valid: list(self.scenario.accounts.iter().map(|a| a.id.clone())),
            });
        };
        let (max_cap, max_rate) = (acct.max_room_capacity, acct.max_admission_rate);
        if let Some(left) = self.rooms_left(account)
            && left == 0
        {
            return Err(SimError::Conflict(format!(
                "account {account:?} may not create more rooms (its limit is {})",
                acct.max_new_rooms.unwrap_or(0)
            )));
        }
        let defaults = self.new_room_defaults(acct);
        let capacity = capacity.unwrap_or(defaults.capacity);
        let admission_rate = admission_rate.unwrap_or(defaults.admission_rate);
        if capacity == 0 || capacity > max_cap {
            return Err(SimError::Invalid(format!(
                "capacity {capacity} is out of range; expected 1..={max_cap} listeners (account {account:?})"
            )));
        }
        if admission_rate == 0 || admission_rate > max_rate {
            return Err(SimError::Invalid(format!(
                "admission_rate {admission_rate} is out of range; expected 1..={max_rate} joins per second (account {account:?})"
            )));
        }
        *self.created.entry(account.to_owned()).or_insert(0) += 1;
        let id = loop {
            let n = self.room_seq.entry(account.to_owned()).or_insert(0);
            *n += 1;
            let id = format!("{account}-{n}");
            if self.room_idx(&id).is_none() {
                break id;
            }
        };
        let title = title.unwrap_or_else(|| self.event.title.clone());
        let room = Room::new(
            id,
            account.to_owned(),
            title,
            capacity,
            admission_rate,
            self.time,
            self.scenario.dynamics.base_latency_s,
        );
        self.log(
            "create_room",
            &room.id,
            format!("capacity {capacity}, admission rate {admission_rate}/s"),
        );
        self.rooms.push(room);
        Ok(self.room_snapshot(self.rooms.len() - 1))
    }

    /// Moves the event, its speakers and listeners to a ready room.
    pub fn move_event(&mut self, event: &str, to: &str) -> Result<MoveRecord, SimError> {
        self.check_event(event)?;
        let ti = self.room_or_404(to)?;
        let fi = self.current_idx();
        if ti == fi {
            return Err(SimError::Conflict(format!(
                "event {event:?} is already in room {to:?}; move it to a ready room"
            )));
        }
        // Back to a room the event left is how a failed move is rolled back.
        self.free(
            ti,
            "the event can only move to a ready room or back to one it left",
        )?;
        let t = self.time;
        let loss = self.scenario.behaviour.move_loss;
        let from = &mut self.rooms[fi];
        let n = from.listeners;
        let lost = (n as f64 * loss).round() as u64;
        let moved = n - lost;
        let waiting = from.waiting;
        from.left[LEFT_MOVED] += lost;
        from.listeners = 0;
        from.waiting = 0;
        if from.state == RoomState::Live {
            from.state = RoomState::Ended;
            from.ended_at = Some(t);
            from.utilisation = 0.0;
        }
        let (from_room, from_account) = (from.id.clone(), from.account.clone());
        self.moved_lost += lost;
        let to_room = &mut self.rooms[ti];
        to_room.listeners += moved;
        to_room.waiting += waiting;
        to_room.state = RoomState::Live;
        to_room.ended_at = None;
        let to_account = to_room.account.clone();
        let mut speakers_moved = Vec::new();
        for s in &mut self.speakers {
            if s.room == from_room {
                s.room = to.to_owned();
                speakers_moved.push(s.id.clone());
            }
        }
        let returning = self.stranded;
        self.stranded = 0;
        let window = self.scenario.behaviour.return_window_s;
        self.schedule(returning, true, 1, window);
        self.event.room = to.to_owned();
        let rec = MoveRecord {
            at: t,
            at_rfc3339: rfc3339(t),
            from_room,
            from_account,
            to_room: to.to_owned(),
            to_account,
            listeners_moved: moved,
            listeners_lost: lost,
            waiting_moved: waiting,
            speakers_moved,
            returning,
        };
        self.event.moves.push(rec.clone());
        self.log("move", to, format!("from {}", rec.from_room));
        Ok(rec)
    }

    /// Refuses room `i` unless it is ready or one the event left, saying
    /// `why` and which rooms are.
    pub(super) fn free(&self, i: usize, why: &str) -> Result<(), SimError> {
        if matches!(self.rooms[i].state, RoomState::Ready | RoomState::Ended) {
            return Ok(());
        }
        let ready = list(
            self.rooms
                .iter()
                .filter(|r| matches!(r.state, RoomState::Ready | RoomState::Ended))
                .map(|r| r.id.clone()),
        );
        Err(SimError::Conflict(format!(
            "room {:?} is {}; {why} (those rooms: {ready})",
            self.rooms[i].id,
            state_name(self.rooms[i].state)
        )))
    }

    /// Splits the event across rooms: attaches a ready room (or one the
    /// event left) beside the event's room, relaying its stage. Joins the
    /// event's own room has no space or join service for go there.
    pub fn add_overflow(&mut self, event: &str, room: &str) -> Result<EventSnapshot, SimError> {
        self.check_event(event)?;
        let i = self.room_or_404(room)?;
        if room == self.event.room || self.is_overflow(room) {
            return Err(SimError::Conflict(format!(
                "room {room:?} already carries event {event:?}; attach a ready room"
            )));
        }
        self.free(
            i,
            "only a ready room (or one the event left) can take its overflow",
        )?;
        if self.event.overflow.len() >= MAX_OVERFLOW_ROOMS {
            return Err(SimError::Conflict(format!(
                "event {event:?} already has {MAX_OVERFLOW_ROOMS} overflow rooms, the most it may have"
            )));
        }
        let r = &mut self.rooms[i];
        r.state = RoomState::Live;
        r.ended_at = None;
        self.event.overflow.push(room.to_owned());
        let stage = self.event.room.clone();
        self.log("overflow", room, format!("relays {stage}"));
        Ok(self.event_snapshot())
    }

    /// Sets or clears a room's listener cap.
    pub fn set_cap(&mut self, room: &str, cap: Option<u64>) -> Result<RoomSnapshot, SimError> {
        let i = self.room_or_404(room)?;
        if let Some(c) = cap
            && (c == 0 || c > MAX_CAPACITY)
        {
            return Err(SimError::Invalid(format!(
                "max_listeners {c} is out of range; expected 1..={MAX_CAPACITY}, or null to clear the cap"
            )));
        }
        if self.rooms[i].state == RoomState::Ended {
            return Err(SimError::Conflict(format!(
                "room {room:?} has ended; cap the event's current room {:?}",
                self.event.room
            )));
        }
        self.rooms[i].cap = cap;
        let detail = cap.map_or_else(|| "cleared".to_owned(), |c| c.to_string());
        self.log("cap", room, detail);
        Ok(self.room_snapshot(i))
    }

    /// Scales a room ahead of an event: its capacity (concurrent
    /// listeners) and admission rate (joins per second); either may be
    /// left as it is.
    pub fn provision(
        &mut self,
        room: &str,
        capacity: Option<u64>,
        admission_rate: Option<u64>,
    ) -> Result<RoomSnapshot, SimError> {
        let i = self.room_or_404(room)?;
        for (field, v, unit) in [
            ("capacity", capacity, "listeners"),
            ("admission_rate", admission_rate, "joins per second"),
        ] {
            if let Some(v) = v
                && (v == 0 || v > MAX_CAPACITY)
            {
                return Err(SimError::Invalid(format!(
                    "{field} {v} is out of range; expected 1..={MAX_CAPACITY} {unit}"
                )));
            }
        }
        if self.rooms[i].state == RoomState::Ended {
            return Err(SimError::Conflict(format!(
                "room {room:?} has ended; provision the event's current room {:?}",
                self.event.room
            )));
        }
        let account = self.rooms[i].account.clone();
        if let Some(a) = self.scenario.account(&account) {
            for (field, v, max, unit) in [
                ("capacity", capacity, a.max_room_capacity, "listeners"),
                (
                    "admission_rate",
                    admission_rate,
                    a.max_admission_rate,
                    "joins per second",
                ),
            ] {
                if let Some(v) = v
                    && v > max
                {
                    return Err(SimError::Invalid(format!(
                        "{field} {v} is beyond what account {account:?} allows ({max} {unit})"
                    )));
                }
            }
        }
        let now = self.time;
        let delay = Millis::from(self.scenario.dynamics.scale_up_after_s) * 1000;
        let r = &mut self.rooms[i];
        // Growing a room that serves people means starting servers and
        // rebalancing them under load; shrinking, or sizing a room nobody
        // is in yet (ahead of an event), takes effect at once.
        let grows = capacity.is_some_and(|c| c > r.capacity)
            || admission_rate.is_some_and(|a| a > r.admission_rate);
        let serving = r.state == RoomState::Live && r.listeners + r.waiting > 0;
        if grows && serving {
            let pending = r.scaling.unwrap_or(Scaling {
                capacity: None,
                admission_rate: None,
                ready_at: now + delay,
            });
            r.scaling = Some(Scaling {
                capacity: capacity.or(pending.capacity),
                admission_rate: admission_rate.or(pending.admission_rate),
                ready_at: pending.ready_at,
            });
        } else {
            if let Some(c) = capacity {
                r.capacity = c;
            }
            if let Some(a) = admission_rate {
                r.admission_rate = a;
            }
            if let Some(sc) = &mut r.scaling {
                // A later, explicit size wins over one still starting.
                if capacity.is_some() {
                    sc.capacity = None;
                }
                if admission_rate.is_some() {
                    sc.admission_rate = None;
                }
                if sc.capacity.is_none() && sc.admission_rate.is_none() {
                    r.scaling = None;
                }
            }
        }
        let detail = format!("capacity {capacity:?}, admission rate {admission_rate:?}");
        self.log("provision", room, detail);
        Ok(self.room_snapshot(i))
    }

    /// Opens or closes a room's waiting room. Open, every join is queued
    /// and let in at a steady pace ([`WAITING_ROOM_PACE`] of the admission
    /// rate) while there is space; queued clients do not retry, but some
    /// give up waiting. Closed, the queue drains as space and the join
    /// service allow, and new joins are served (or fail) directly.
    pub fn set_waiting_room(&mut self, room: &str, open: bool) -> Result<RoomSnapshot, SimError> {
        let i = self.room_or_404(room)?;
        if matches!(self.rooms[i].state, RoomState::Ended | RoomState::Crashed) {
            return Err(SimError::Conflict(format!(
                "room {room:?} is {}; open the waiting room of the event's current room {:?}",
                state_name(self.rooms[i].state),
                self.event.room
            )));
        }
        self.rooms[i].waiting_room = open;
        self.log(
            "waiting_room",
            room,
            if open { "open" } else { "closed" }.into(),
        );
        Ok(self.room_snapshot(i))
    }

    /// A sound check with a speaker: it hears what their setup will put
    /// on air (the worst feedback of their scheduled faults, or their
    /// baseline), and the engineer fixes feedback beyond tolerance, so
    /// those faults no longer reach the input. The speaker counts as
    /// checked from now on (`live_speaker_audio_checked`).
    pub fn soundcheck(&mut self, room: &str, speaker: &str) -> Result<SoundCheck, SimError> {
        let i = self.speaker_idx(room, speaker)?;
        let latent = self
            .scenario
            .faults
            .iter()
            .filter(|f| f.speaker == speaker)
            .filter_map(|f| f.feedback)
            .fold(self.speakers[i].base_feedback, f64::max);
        let fixed = latent > SOUNDCHECK_TOLERANCE;
        let s = &mut self.speakers[i];
        s.audio_checked = true;
        if fixed {
            s.feedback_fixed = true;
            s.feedback = s.feedback.min(s.base_feedback);
        }
        Ok(SoundCheck {
            speaker: speaker_snapshot(s),
            found_feedback_level: latent,
            fixed,
        })
    }

    pub(super) fn speaker_idx(&self, room: &str, speaker: &str) -> Result<usize, SimError> {
        self.room_or_404(room)?;
        self.speakers
            .iter()
            .position(|s| s.id == speaker && s.room == room)
            .ok_or_else(|| SimError::UnknownSpeaker {
                room: room.into(),
                got: speaker.into(),
                valid: list(
                    self.speakers
                        .iter()
                        .filter(|s| s.room == room)
                        .map(|s| s.id.clone()),
                ),
            })
    }

    /// Mutes or unmutes a speaker in a room.
    pub fn mute(
        &mut self,
        room: &str,
        speaker: &str,
        muted: bool,
    ) -> Result<SpeakerSnapshot, SimError> {
        let i = self.speaker_idx(room, speaker)?;
        let s = &mut self.speakers[i];
        s.muted = muted;
        let snap = speaker_snapshot(s);
        let what = if muted { "muted" } else { "unmuted" };
        self.log("mute", room, format!("{speaker} {what}"));
        Ok(snap)
    }
}
