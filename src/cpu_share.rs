//! HTTP workers that run on and on give their CPU up now and then.
//!
//! Linux takes the CPU from a thread that never stops only at the scheduler tick: every 4 ms
//! at the common HZ=250. An HTTP worker whose connections keep it busy can run that long,
//! and every thread queued behind it on that CPU waits the whole time: the other worker's
//! replies, and the clients' own threads on a shared machine. In the benchmark's `me`
//! scenario those waits were the slowest hundredth of requests (`perf sched`: workers ran up
//! to 5 ms at a stretch, while the load generator's threads waited up to 4.9 ms; p99 was
//! 4.5 ms against a p50 of 0.8). So a worker that has run for [`RUN_LIMIT`] without once
//! sleeping or being switched out yields, which costs one system call when no other thread
//! wants the CPU. A worker that was switched out in the meantime has let others run
//! already: yielding it again put login requests, whose workers share the CPU with the
//! login writer, behind other threads for nothing (their p99/p50 went from 2.4-2.9 to
//! 3.3-3.9).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long a worker may run without a break before it yields.
pub const RUN_LIMIT: Duration = Duration::from_micros(250);

/// When the calling thread last counted its context switches, and the count then.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Look {
    at: Instant,
    switches: u64,
}

thread_local! {
    static LAST_LOOK: Cell<Option<Look>> = const { Cell::new(None) };
}

/// Yields the CPU if the calling thread has run without a break since it last looked, at
/// least [`RUN_LIMIT`] before `now`. Cheap enough for every request: it counts context
/// switches (a system call) at most once per [`RUN_LIMIT`].
pub fn yield_if_run_too_long(now: Instant) {
    let last = LAST_LOOK.get();
    let (look, yield_now) = look_again(last, now, RUN_LIMIT, context_switches);
    if yield_now {
        std::thread::yield_now();
    }
    LAST_LOOK.set(look);
}

/// The thread's next look given its `last` one, and whether it should yield: only when at
/// least `limit` has passed since `last` (only then are the switches counted) with no
/// context switch in between.
fn look_again(
    last: Option<Look>,
    now: Instant,
    limit: Duration,
    count_switches: impl FnOnce() -> Option<u64>,
) -> (Option<Look>, bool) {
    if let Some(last) = last {
        if now.saturating_duration_since(last.at) < limit {
            return (Some(last), false);
        }
    }
    let Some(switches) = count_switches() else {
        // Nothing to go by: never yield.
        return (None, false);
    };
    let ran_throughout = last.is_some_and(|l| l.switches == switches);
    (Some(Look { at: now, switches }), ran_throughout)
}

/// How many times the calling thread has been switched out so far, slept or preempted.
#[cfg(target_os = "linux")]
fn context_switches() -> Option<u64> {
    // SAFETY: getrusage writes only to the struct it is given, which outlives the call.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut usage) != 0 {
            return None;
        }
        usage
    };
    Some(usage.ru_nvcsw as u64 + usage.ru_nivcsw as u64)
}

/// Elsewhere there is no per-thread count, and workers never yield.
#[cfg(not(target_os = "linux"))]
fn context_switches() -> Option<u64> {
    None
}

/// Puts the calling thread at the lowest priority (nice 19), for background work that must
/// not take the CPU from requests: such a thread runs on time nobody else wants, and still
/// gets a share when every CPU is busy (unlike `SCHED_IDLE`), so its work never stops.
/// Lowering a priority needs no privilege. Elsewhere than Linux, where a priority belongs
/// to the whole process, it does nothing.
pub fn give_way() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions; setpriority changes only the named thread.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "lowering a thread's priority failed");
        }
    }
}

/// The nice value of thread `tid` of this process (Linux: from `/proc`), for tests.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn thread_nice(tid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The name, in parentheses, may hold spaces: the fields after it start with the state
    // (field 3), so the nice value (field 19) is the 17th.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(16)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(at: Instant, switches: u64) -> Option<Look> {
        Some(Look { at, switches })
    }

    #[test]
    fn a_thread_that_ran_throughout_the_limit_yields_and_looks_afresh() {
        let t0 = Instant::now();
        let now = t0 + RUN_LIMIT;
        assert_eq!(
            look_again(look(t0, 7), now, RUN_LIMIT, || Some(7)),
            (look(now, 7), true)
        );
    }

    #[test]
    fn a_thread_switched_out_since_its_last_look_does_not_yield() {
        let t0 = Instant::now();
        let now = t0 + 3 * RUN_LIMIT;
        assert_eq!(
            look_again(look(t0, 7), now, RUN_LIMIT, || Some(8)),
            (look(now, 8), false)
        );
    }

    #[test]
    fn within_the_limit_nothing_is_counted_and_nobody_yields() {
        let t0 = Instant::now();
        let last = look(t0, 7);
        assert_eq!(
            look_again(last, t0 + RUN_LIMIT / 2, RUN_LIMIT, || -> Option<u64> {
                panic!("counted switches within the limit")
            }),
            (last, false)
        );
    }

    #[test]
    fn a_first_look_or_a_failed_count_never_yields() {
        let now = Instant::now();
        assert_eq!(
            look_again(None, now, RUN_LIMIT, || Some(3)),
            (look(now, 3), false)
        );
        assert_eq!(
            look_again(look(now - RUN_LIMIT, 3), now, RUN_LIMIT, || None),
            (None, false)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sleeping_counts_as_a_context_switch_of_the_sleeping_thread() {
        let before = context_switches().expect("getrusage(RUSAGE_THREAD) works on Linux");
        std::thread::sleep(Duration::from_millis(2));
        let after = context_switches().unwrap();
        assert!(
            after > before,
            "{before} switches before the sleep, {after} after"
        );
    }

    #[test]
    fn yielding_checks_keep_the_threads_last_look_current() {
        // The first call only looks; one after the limit looks again.
        let t0 = Instant::now();
        yield_if_run_too_long(t0);
        let first = LAST_LOOK.get().map(|l| l.at);
        yield_if_run_too_long(t0 + RUN_LIMIT / 2);
        assert_eq!(LAST_LOOK.get().map(|l| l.at), first);
        yield_if_run_too_long(t0 + 2 * RUN_LIMIT);
        let expected = if cfg!(target_os = "linux") {
            Some(t0 + 2 * RUN_LIMIT)
        } else {
            None
        };
        assert_eq!(LAST_LOOK.get().map(|l| l.at), expected);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn giving_way_lowers_only_the_calling_thread_to_the_lowest_priority() {
        // SAFETY: gettid has no preconditions.
        let here = unsafe { libc::gettid() };
        let before = thread_nice(here).expect("this thread's nice value");
        let there = std::thread::spawn(|| {
            give_way();
            // SAFETY: as above.
            thread_nice(unsafe { libc::gettid() })
        })
        .join()
        .unwrap();
        assert_eq!(there, Some(19));
        assert_eq!(thread_nice(here), Some(before));
    }
}
