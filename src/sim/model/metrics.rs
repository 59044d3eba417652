//! The world as Prometheus metrics (text exposition 0.0.4): what the bot
//! scrapes from the simulator.

use super::*;

impl World {
    /// Prometheus text exposition format 0.0.4.
    pub fn render_metrics(&self, out: &mut String) {
        let ev = &self.event;
        let room_labels =
            |r: &Room| format!("room=\"{}\",account=\"{}\"", esc(&r.id), esc(&r.account));
        // `,event="…"` on series of the room hosting the event, so alerts
        // about the room or its speakers join the event's incident.
        let event_label = |r: &Room| {
            if r.id == ev.room || ev.overflow.contains(&r.id) {
                format!(",event=\"{}\"", esc(&ev.id))
            } else {
                String::new()
            }
        };
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };

        family(
            out,
            "live_room_listeners",
            "gauge",
            "Listeners connected to the room.",
        );
        for r in &self.rooms {
            let event = event_label(r);
            let _ = writeln!(
                out,
                "live_room_listeners{{{}{event}}} {}",
                room_labels(r),
                r.listeners
            );
        }
        let gauges: [RoomGauge; 8] = [
            (
                "live_room_capacity",
                "Concurrent listeners the room's infrastructure can serve.",
                |r| Some(r.capacity as f64),
            ),
            (
                "live_room_admission_rate",
                "Join requests per second the room can process.",
                |r| Some(r.admission_rate as f64),
            ),
            (
                "live_room_listener_cap",
                "Admin-set cap on listeners; excess joins wait.",
                |r| r.cap.map(|c| c as f64),
            ),
            (
                "live_room_waiting",
                "Clients held in the room's waiting room (by a cap, or queued by an open waiting room).",
                |r| Some(r.waiting as f64),
            ),
            (
                "live_room_waiting_room_open",
                "1 while the room's waiting room queues every join and paces admission.",
                |r| Some(f64::from(u8::from(r.waiting_room))),
            ),
            (
                "live_room_scaling_admission_rate",
                "The admission rate a scale-up in flight will bring (absent when none is).",
                |r| r.scaling.and_then(|s| s.admission_rate).map(|a| a as f64),
            ),
            ("live_room_up", "1 unless the room has crashed.", |r| {
                Some(f64::from(u8::from(r.state != RoomState::Crashed)))
            }),
            (
                "live_room_utilisation",
                "Load: the larger of listeners/capacity and joins/admission rate.",
                |r| Some(r.utilisation),
            ),
        ];
        for (name, help, get) in gauges {
            family(out, name, "gauge", help);
            for r in &self.rooms {
                if let Some(v) = get(r) {
                    let _ = writeln!(out, "{name}{{{}}} {}", room_labels(r), num(v));
                }
            }
        }

        family(
            out,
            "live_join_requests_total",
            "counter",
            "Join attempts received by the room.",
        );
        for r in &self.rooms {
            let _ = writeln!(
                out,
                "live_join_requests_total{{{}}} {}",
                room_labels(r),
                r.join_requests
            );
        }
        // Counters split by a `reason` label, every reason from the start.
        let by_reason = |out: &mut String,
                         name: &str,
                         help: &str,
                         reasons: &[&str],
                         get: &dyn for<'r> Fn(&'r Room) -> &'r [u64]| {
            family(out, name, "counter", help);
            for r in &self.rooms {
                for (reason, v) in reasons.iter().zip(get(r).iter()) {
                    let _ = writeln!(out, "{name}{{{},reason=\"{reason}\"}} {v}", room_labels(r));
                }
            }
        };
        by_reason(
            out,
            "live_join_failures_total",
            "Failed join attempts by reason (capacity, overload, room_down).",
            &FAIL_REASONS,
            &|r| &r.failures[..],
        );
        by_reason(
            out,
            "live_listeners_left_total",
            "Listeners who left the room by reason (churn, quality, crash, moved_lost).",
            &LEFT_REASONS,
            &|r| &r.left[..],
        );

        family(
            out,
            "live_stream_latency_seconds",
            "histogram",
            "Audio stream latency sampled across listeners.",
        );
        for r in &self.rooms {
            let l = room_labels(r);
            for (le, c) in LATENCY_BUCKETS.iter().zip(r.latency.buckets) {
                let _ = writeln!(
                    out,
                    "live_stream_latency_seconds_bucket{{{l},le=\"{le}\"}} {c}"
                );
            }
            let h = &r.latency;
            let _ = writeln!(
                out,
                "live_stream_latency_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "live_stream_latency_seconds_sum{{{l}}} {}", num(h.sum));
            let _ = writeln!(out, "live_stream_latency_seconds_count{{{l}}} {}", h.count);
        }

        let speaker_gauges: [SpeakerGauge; 5] = [
            (
                "live_speaker_feedback_level",
                "Feedback level on the speaker's input (0..1), muted or not.",
                |s| s.feedback,
            ),
            (
                "live_speaker_packet_loss_ratio",
                "Packet loss on the speaker's uplink (0..1).",
                |s| s.packet_loss,
            ),
            ("live_speaker_muted", "1 if the speaker is muted.", |s| {
                f64::from(u8::from(s.muted))
            }),
            (
                "live_speaker_connected",
                "1 if the speaker is connected.",
                |s| f64::from(u8::from(s.connected)),
            ),
            (
                "live_speaker_audio_checked",
                "1 once a sound check has been done with the speaker.",
                |s| f64::from(u8::from(s.audio_checked)),
            ),
        ];
        for (name, help, get) in speaker_gauges {
            family(out, name, "gauge", help);
            for s in &self.speakers {
                let Some(r) = self.room_idx(&s.room).map(|i| &self.rooms[i]) else {
                    continue;
                };
                let event = event_label(r);
                let _ = writeln!(
                    out,
                    "{name}{{{},speaker=\"{}\"{event}}} {}",
                    room_labels(r),
                    esc(&s.id),
                    num(get(s))
                );
            }
        }

        let e = esc(&ev.id);
        family(
            out,
            "live_event_listeners",
            "gauge",
            "Listeners of the event, in all its rooms.",
        );
        let _ = writeln!(
            out,
            "live_event_listeners{{event=\"{e}\"}} {}",
            self.sum_event(|r| r.listeners)
        );
        family(
            out,
            "live_event_info",
            "gauge",
            "Where the event is: its room (role=\"stage\") and any overflow rooms relaying it (role=\"overflow\").",
        );
        for (k, i) in self.event_rooms().into_iter().enumerate() {
            let role = if k == 0 { "stage" } else { "overflow" };
            let _ = writeln!(
                out,
                "live_event_info{{event=\"{e}\",{},role=\"{role}\"}} 1",
                room_labels(&self.rooms[i])
            );
        }
        family(
            out,
            "live_secondary_room_ready",
            "gauge",
            "1 if a ready room exists on the event's secondary account.",
        );
        let _ = writeln!(
            out,
            "live_secondary_room_ready{{event=\"{e}\",account=\"{}\"}} {}",
            esc(&ev.secondary_account),
            u8::from(self.secondary_ready())
        );
        family(
            out,
            "live_sim_time_seconds",
            "gauge",
            "Simulated time, seconds since the Unix epoch.",
        );
        let _ = writeln!(
            out,
            "live_sim_time_seconds {}",
            num(self.time as f64 / 1000.0)
        );
    }
}

/// `(name, help, value)`; `None` omits the room's series.
pub(super) type RoomGauge = (&'static str, &'static str, fn(&Room) -> Option<f64>);
pub(super) type SpeakerGauge = (&'static str, &'static str, fn(&Speaker) -> f64);

pub(super) fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

pub(super) fn state_name(s: RoomState) -> &'static str {
    match s {
        RoomState::Ready => "ready",
        RoomState::Live => "live",
        RoomState::Crashed => "crashed",
        RoomState::Ended => "ended",
    }
}
