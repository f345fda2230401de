//! When each probe runs: the cron plan of every scheduled probe, as a state
//! machine the driver feeds with the time. It decides, and does nothing
//! else: what is due now (one run per probe however many ticks passed),
//! what ran while the daemon was down (a missed schedule runs once at
//! start, a probe that never ran runs at start), when to wake up next, and
//! what suspending, resuming and reloading change. Time and randomness come
//! in as arguments, so tests drive it with any clock.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::schedule::CronSchedule;
use crate::store::{ScheduleState, Trigger};

/// One probe's schedule.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub schedule: CronSchedule,
    /// Each scheduled run starts up to this much after its tick (uniformly).
    pub jitter: Duration,
}

/// A run to start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub name: String,
    /// The tick it stands for (the latest one, when several were passed).
    pub tick: Timestamp,
    pub trigger: Trigger,
}

/// Picks a jitter delay in `[0, max]`.
pub type Jitter = Box<dyn FnMut(Duration) -> Duration + Send>;

/// Uniform jitter from `fastrand`.
pub fn random_jitter() -> Jitter {
    Box::new(|max: Duration| {
        if max.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_millis(fastrand::u64(0..=max.as_millis() as u64))
        }
    })
}

struct Entry {
    plan: Plan,
    suspended: bool,
    /// The next tick to run for.
    tick: Option<Timestamp>,
    /// When that run starts: the tick plus its jitter.
    fire_at: Option<Timestamp>,
}

/// Every scheduled probe's next run.
pub struct Scheduler {
    entries: BTreeMap<String, Entry>,
    jitter: Jitter,
}

impl Scheduler {
    /// The plans as of `now`, with what the store remembers (suspended,
    /// last tick run). Returns the runs due at start: a catch-up run for a
    /// probe whose ticks were missed since its last one, a start-up run for
    /// a probe that never ran. Suspended probes get neither.
    pub fn start(
        plans: Vec<Plan>,
        states: &HashMap<String, ScheduleState>,
        now: Timestamp,
        jitter: Jitter,
    ) -> (Scheduler, Vec<Due>) {
        let mut s = Scheduler {
            entries: BTreeMap::new(),
            jitter,
        };
        let mut due = Vec::new();
        for plan in plans {
            let state = states.get(&plan.name);
            let suspended = state.is_some_and(|st| st.suspended);
            if !suspended {
                match state.and_then(|st| st.last_tick) {
                    None => due.push(Due {
                        name: plan.name.clone(),
                        tick: now,
                        trigger: Trigger::Startup,
                    }),
                    Some(last) => {
                        if let Some(tick) = plan.schedule.latest_in(last, now) {
                            due.push(Due {
                                name: plan.name.clone(),
                                tick,
                                trigger: Trigger::CatchUp,
                            });
                        }
                    }
                }
            }
            s.insert(plan, suspended, now);
        }
        (s, due)
    }

    fn insert(&mut self, plan: Plan, suspended: bool, now: Timestamp) {
        let name = plan.name.clone();
        let mut entry = Entry {
            plan,
            suspended,
            tick: None,
            fire_at: None,
        };
        self.arm(&mut entry, now);
        self.entries.insert(name, entry);
    }

    /// Sets the entry's next tick after `now` and draws its jitter.
    fn arm(&mut self, entry: &mut Entry, now: Timestamp) {
        entry.tick = entry.plan.schedule.next_after(now);
        entry.fire_at = entry.tick.map(|t| {
            let delay = (self.jitter)(entry.plan.jitter).min(entry.plan.jitter);
            t.saturating_add(SignedDuration::try_from(delay).unwrap_or_default())
                .unwrap_or(t)
        });
    }

    /// The runs due at `now`: each probe whose start time has come, once,
    /// for the latest tick passed; their next ticks are armed after `now`.
    /// A suspended probe's ticks pass without a run.
    pub fn due(&mut self, now: Timestamp) -> Vec<Due> {
        let mut out = Vec::new();
        let names: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.fire_at.is_some_and(|f| f <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let mut entry = self.entries.remove(&name).expect("listed above");
            if !entry.suspended {
                let first = entry.tick.expect("armed with a fire time");
                // Ticks passed meanwhile (a long run of the host, a sleep):
                // one run, for the latest.
                let tick = entry
                    .plan
                    .schedule
                    .latest_in(first, now)
                    .filter(|t| *t <= now)
                    .unwrap_or(first);
                out.push(Due {
                    name: name.clone(),
                    tick,
                    trigger: Trigger::Schedule,
                });
            }
            self.arm(&mut entry, now);
            self.entries.insert(name, entry);
        }
        out
    }

    /// When the next run is due, if any probe is scheduled and not suspended.
    pub fn next_wake(&self) -> Option<Timestamp> {
        self.entries
            .values()
            .filter(|e| !e.suspended)
            .filter_map(|e| e.fire_at)
            .min()
    }

    /// A probe's next run time (None when suspended or not scheduled).
    pub fn next_run(&self, name: &str) -> Option<Timestamp> {
        self.entries
            .get(name)
            .filter(|e| !e.suspended)
            .and_then(|e| e.fire_at)
    }

    /// Every scheduled probe's next run time.
    pub fn next_runs(&self) -> HashMap<String, Option<Timestamp>> {
        self.entries
            .keys()
            .map(|n| (n.clone(), self.next_run(n)))
            .collect()
    }

    /// Suspends or resumes a probe; resuming arms the first tick after `now`
    /// (what passed while suspended is not caught up). False when the probe
    /// has no schedule.
    pub fn set_suspended(&mut self, name: &str, suspended: bool, now: Timestamp) -> bool {
        let Some(mut entry) = self.entries.remove(name) else {
            return false;
        };
        if entry.suspended && !suspended {
            self.arm(&mut entry, now);
        }
        entry.suspended = suspended;
        self.entries.insert(name.to_string(), entry);
        true
    }

    /// A reloaded config: probes whose schedule (expression, zone, jitter)
    /// is unchanged keep their next run; new or changed ones are armed after
    /// `now`; removed ones go. Suspension is kept.
    pub fn replace(&mut self, plans: Vec<Plan>, now: Timestamp) {
        let mut old = std::mem::take(&mut self.entries);
        for plan in plans {
            match old.remove(&plan.name) {
                Some(e)
                    if e.plan.schedule.source() == plan.schedule.source()
                        && e.plan.schedule.timezone() == plan.schedule.timezone()
                        && e.plan.jitter == plan.jitter =>
                {
                    self.entries.insert(plan.name.clone(), Entry { plan, ..e });
                }
                Some(e) => self.insert(plan, e.suspended, now),
                None => self.insert(plan, false, now),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn plan(name: &str, expr: &str, jitter_s: u64) -> Plan {
        Plan {
            name: name.into(),
            schedule: CronSchedule::parse(expr, "UTC").unwrap(),
            jitter: Duration::from_secs(jitter_s),
        }
    }

    fn state(name: &str, last: Option<&str>, suspended: bool) -> (String, ScheduleState) {
        (
            name.into(),
            ScheduleState {
                name: name.into(),
                suspended,
                last_tick: last.map(ts),
            },
        )
    }

    fn no_jitter() -> Jitter {
        Box::new(|_| Duration::ZERO)
    }

    #[test]
    fn a_probe_that_never_ran_runs_at_start_then_on_its_ticks() {
        let now = ts("2026-12-01T10:00:30Z");
        let (mut s, due) = Scheduler::start(
            vec![plan("a", "0 * * * * *", 0)],
            &HashMap::new(),
            now,
            no_jitter(),
        );
        assert_eq!(
            due,
            [Due {
                name: "a".into(),
                tick: now,
                trigger: Trigger::Startup
            }]
        );
        assert_eq!(s.next_wake(), Some(ts("2026-12-01T10:01:00Z")));
        assert!(s.due(ts("2026-12-01T10:00:59Z")).is_empty());
        let d = s.due(ts("2026-12-01T10:01:00Z"));
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].tick, d[0].trigger),
            (ts("2026-12-01T10:01:00Z"), Trigger::Schedule)
        );
        assert_eq!(s.next_wake(), Some(ts("2026-12-01T10:02:00Z")));
    }

    #[test]
    fn missed_ticks_after_a_restart_run_once_for_the_latest() {
        // Down from 10:00:05 to 13:30:10: 210 minute ticks missed, one run.
        let states: HashMap<_, _> = [
            state("missed", Some("2026-12-01T10:00:00Z"), false),
            state("on-time", Some("2026-12-01T13:00:00Z"), false),
            state("held", Some("2026-12-01T10:00:00Z"), true),
        ]
        .into();
        let (s, due) = Scheduler::start(
            vec![
                plan("missed", "0 * * * * *", 0),
                plan("on-time", "0 0 * * * *", 0),
                plan("held", "0 * * * * *", 0),
            ],
            &states,
            ts("2026-12-01T13:30:10Z"),
            no_jitter(),
        );
        assert_eq!(
            due,
            [Due {
                name: "missed".into(),
                tick: ts("2026-12-01T13:30:00Z"),
                trigger: Trigger::CatchUp
            }]
        );
        assert_eq!(s.next_run("on-time"), Some(ts("2026-12-01T14:00:00Z")));
        assert_eq!(s.next_run("held"), None, "suspended");
    }

    #[test]
    fn ticks_passed_while_the_driver_slept_make_one_run() {
        let now = ts("2026-12-01T10:00:00Z");
        let states: HashMap<_, _> = [state("a", Some("2026-12-01T10:00:00Z"), false)].into();
        let (mut s, due) = Scheduler::start(
            vec![plan("a", "*/10 * * * * *", 0)],
            &states,
            now,
            no_jitter(),
        );
        assert!(due.is_empty());
        let d = s.due(ts("2026-12-01T10:01:05Z"));
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].tick, ts("2026-12-01T10:01:00Z"));
        assert_eq!(s.next_wake(), Some(ts("2026-12-01T10:01:10Z")));
    }

    #[test]
    fn jitter_delays_the_start_within_its_bound() {
        let drawn = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = drawn.clone();
        let jitter: Jitter = Box::new(move |max| {
            record.lock().unwrap().push(max);
            Duration::from_secs(7)
        });
        let states: HashMap<_, _> = [state("a", Some("2026-12-01T10:00:00Z"), false)].into();
        let (mut s, _) = Scheduler::start(
            vec![plan("a", "0 * * * * *", 30)],
            &states,
            ts("2026-12-01T10:00:00Z"),
            jitter,
        );
        assert_eq!(s.next_wake(), Some(ts("2026-12-01T10:01:07Z")));
        assert!(s.due(ts("2026-12-01T10:01:06Z")).is_empty());
        let d = s.due(ts("2026-12-01T10:01:07Z"));
        assert_eq!(
            d[0].tick,
            ts("2026-12-01T10:01:00Z"),
            "the tick, not the jittered time"
        );
        assert_eq!(drawn.lock().unwrap()[0], Duration::from_secs(30));
        // The random source never goes past the bound.
        let mut r = random_jitter();
        for _ in 0..1000 {
            assert!(r(Duration::from_secs(3)) <= Duration::from_secs(3));
        }
        assert_eq!(r(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn suspended_probes_skip_their_ticks_and_resume_after_now() {
        let states: HashMap<_, _> = [state("a", Some("2026-12-01T10:00:00Z"), false)].into();
        let (mut s, _) = Scheduler::start(
            vec![plan("a", "0 * * * * *", 0)],
            &states,
            ts("2026-12-01T10:00:00Z"),
            no_jitter(),
        );
        assert!(s.set_suspended("a", true, ts("2026-12-01T10:00:10Z")));
        assert_eq!(s.next_wake(), None);
        assert!(s.due(ts("2026-12-01T10:05:00Z")).is_empty());
        assert!(s.set_suspended("a", false, ts("2026-12-01T10:05:30Z")));
        assert_eq!(s.next_run("a"), Some(ts("2026-12-01T10:06:00Z")));
        assert!(!s.set_suspended("unknown", true, ts("2026-12-01T10:05:30Z")));
    }

    #[test]
    fn a_reload_keeps_unchanged_schedules_and_rearms_changed_ones() {
        let states: HashMap<_, _> = [
            state("same", Some("2026-12-01T10:00:00Z"), false),
            state("changed", Some("2026-12-01T10:00:00Z"), true),
            state("gone", Some("2026-12-01T10:00:00Z"), false),
        ]
        .into();
        let (mut s, _) = Scheduler::start(
            vec![
                plan("same", "0 0 * * * *", 0),
                plan("changed", "0 0 * * * *", 0),
                plan("gone", "0 0 * * * *", 0),
            ],
            &states,
            ts("2026-12-01T10:00:00Z"),
            no_jitter(),
        );
        s.replace(
            vec![
                plan("same", "0 0 * * * *", 0),
                plan("changed", "0 */15 * * * *", 0),
                plan("new", "0 */5 * * * *", 0),
            ],
            ts("2026-12-01T10:20:00Z"),
        );
        let next = s.next_runs();
        assert_eq!(next["same"], Some(ts("2026-12-01T11:00:00Z")));
        assert_eq!(next["changed"], None, "still suspended");
        assert_eq!(next["new"], Some(ts("2026-12-01T10:25:00Z")));
        assert!(!next.contains_key("gone"));
        s.set_suspended("changed", false, ts("2026-12-01T10:20:00Z"));
        assert_eq!(s.next_run("changed"), Some(ts("2026-12-01T10:30:00Z")));
    }
}
