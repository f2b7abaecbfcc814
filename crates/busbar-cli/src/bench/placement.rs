//! Which CPUs a round trip's two sides run on, chosen by the bench rather than by the
//! scheduler's luck.
//!
//! A round trip between a publisher and a worker costs one thing when the two threads run on
//! different CPUs (every hand-over is a cache line's trip between them) and another when they
//! share one (every hand-over is a switch between the threads): on the machine of the README's
//! figures, 1.4 to 1.5 times as much together, for busbar and for the floor alike (the two
//! thread round-trip rows show both). Where the scheduler puts a new worker thread is decided
//! when it starts and kept for the run, and busbar's worker and the floor's are different
//! threads. Left to the scheduler, a run would now and then compare busbar together against
//! the floor apart, or the reverse: twelve unplaced runs of `busbar bench --scenario
//! thread-round-trip` gave ratios from 0.85 to 1.34, where each placement alone gives a
//! steady one. That measured the placement, not busbar. So the round-trip scenarios place
//! both sides the same way: a worker thread or a child process started while the bench's
//! thread is pinned to one CPU inherits that pinning (Linux copies a thread's affinity to the
//! threads and processes it creates), and the bench's thread then moves to the publisher's
//! CPU. The corelet round trip had the same lottery between the corelet child and the echo
//! child, rarer (a 1.59× run among two dozen, where 1.2× is usual). There the children are the
//! other side, and the bus's own threads are moved back to the publisher's CPU once started
//! ([`gather_with_publisher`]).
//!
//! Pinning is Linux's `sched_getaffinity` and `sched_setaffinity`, through `libc`, which the
//! bench uses already. `core_affinity` pins to one CPU but cannot put back a mask of several,
//! which the bench must do when it is done; `nix` can, but would add a crate for two calls.

use std::fmt;

use super::Error;

/// How a scenario's publisher and workers are placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// The publisher on one CPU, the threads started for it on another.
    Apart,
    /// The publisher and the threads started for it on the same CPU.
    Together,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::Apart => "on two CPUs",
            Placement::Together => "on one CPU",
        })
    }
}

/// How a measurement's threads are placed: by the bench (see [`Pinning::place`]), or, where
/// this thread may not change its CPUs, by the scheduler (`None`).
pub(super) type Placed<'a> = Option<(&'a Pinning, Placement)>;

/// Calls `measure` once for each placement this thread can have, two CPUs first; once with
/// `None` where it cannot place threads. The thread's CPUs are put back before this returns.
pub(super) fn for_each_placement<T>(
    mut measure: impl FnMut(Placed<'_>) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let Some(pinning) = Pinning::new() else {
        return Ok(vec![measure(None)?]);
    };
    [Placement::Apart, Placement::Together]
        .into_iter()
        .filter(|&placement| pinning.allows(placement))
        .map(|placement| measure(Some((&pinning, placement))))
        .collect()
}

/// Calls `start`, which starts the threads or processes a measurement needs, where `placed`
/// says (see [`Pinning::place`]).
pub(super) fn start_placed<T>(
    placed: Placed<'_>,
    start: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    match placed {
        Some((pinning, placement)) => pinning.place(placement, start),
        None => start(),
    }
}

/// Moves this process's threads whose names start with `prefix` to the CPU where `placed` put
/// the publisher, and returns how many it moved; an error if it found none to move.
///
/// For threads a measurement started that belong to the publisher's side: in the corelet
/// round trip, the other side is the child process, and the bus's own threads (its worker,
/// its watchdog, its corelet keeper) run in the parent. Left on the child's CPU, idle as they
/// mostly are, they slowed the echo child that later shared it with them (1.8 → 2.2–2.3 µs
/// p50), which flattered busbar's ratio.
pub(super) fn gather_with_publisher(placed: Placed<'_>, prefix: &str) -> Result<usize, Error> {
    let Some((pinning, _)) = placed else {
        return Ok(0);
    };
    let publisher = *pinning.cpus.first().ok_or("no CPU for the publisher")?;
    let mut moved = 0;
    for (thread, name) in threads_of_this_process()? {
        if name.starts_with(prefix) {
            Affinity::only(publisher).apply_to(thread)?;
            moved += 1;
        }
    }
    match moved {
        0 => Err(format!("found no thread named {prefix}* to place with the publisher").into()),
        moved => Ok(moved),
    }
}

/// The ids and names of this process's threads.
#[cfg(target_os = "linux")]
fn threads_of_this_process() -> Result<Vec<(libc::pid_t, String)>, Error> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let path = entry?.path();
        let id = path.file_name().and_then(|name| name.to_str()).and_then(|name| name.parse().ok());
        let Some(id) = id else { continue };
        // A thread that exited meanwhile has no name left to read: skip it.
        if let Ok(name) = std::fs::read_to_string(path.join("comm")) {
            threads.push((id, name.trim_end().to_owned()));
        }
    }
    Ok(threads)
}

#[cfg(not(target_os = "linux"))]
fn threads_of_this_process() -> Result<Vec<(i32, String)>, Error> {
    Err("listing a process's threads is only implemented on Linux".into())
}

/// How `placed` reads in a row's title.
pub(super) fn describe(placed: Placed<'_>) -> String {
    match placed {
        Some((_, placement)) => placement.to_string(),
        None => "placed by the scheduler".to_owned(),
    }
}

/// The calling thread's CPU affinity as it was before the bench pinned it; put back on drop.
pub(super) struct Pinning {
    original: Affinity,
    /// The CPUs this thread may run on, in order: the first is the publisher's.
    cpus: Vec<usize>,
}

impl Pinning {
    /// Remembers the calling thread's affinity; `None` if it cannot be read or changed here
    /// (not Linux, or a sandbox that refuses it), and the scenario then runs unplaced.
    fn new() -> Option<Pinning> {
        let original = Affinity::of_this_thread()?;
        let cpus = original.cpus();
        // Re-applying what is set proves that this thread may change its affinity.
        original.apply_to_this_thread().ok()?;
        Some(Pinning { original, cpus })
    }

    /// Whether `placement` can be had: `Apart` needs two CPUs.
    fn allows(&self, placement: Placement) -> bool {
        match placement {
            Placement::Apart => self.cpus.len() >= 2,
            Placement::Together => !self.cpus.is_empty(),
        }
    }

    /// Calls `start` with this thread pinned where the threads it starts should run, then
    /// pins this thread where the publisher should run, and returns what `start` returned.
    fn place<T>(&self, placement: Placement, start: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        let (publisher, workers) = match placement {
            Placement::Apart => (self.cpus.first(), self.cpus.get(1)),
            Placement::Together => (self.cpus.first(), self.cpus.first()),
        };
        let (Some(&publisher), Some(&workers)) = (publisher, workers) else {
            return Err(
                format!("cannot run {placement}: this thread may use {} CPU(s)", self.cpus.len()).into()
            );
        };
        Affinity::only(workers).apply_to_this_thread()?;
        let started = start();
        // Pinned for the publisher even if `start` failed; `start`'s error is the one to tell.
        let repinned = Affinity::only(publisher).apply_to_this_thread();
        let started = started?;
        repinned?;
        Ok(started)
    }
}

impl Drop for Pinning {
    fn drop(&mut self) {
        // Nothing to report it to: a bench that cannot restore its affinity runs its later
        // scenarios pinned, which their figures would show.
        let _ = self.original.apply_to_this_thread();
    }
}

#[cfg(target_os = "linux")]
struct Affinity(libc::cpu_set_t);

#[cfg(target_os = "linux")]
impl Affinity {
    fn of_this_thread() -> Option<Affinity> {
        // Thread id 0 is the calling thread.
        Affinity::of(0)
    }

    fn of(thread: libc::pid_t) -> Option<Affinity> {
        // SAFETY: `cpu_set_t` is a plain bit array, for which all zeroes is a valid (empty) set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable `cpu_set_t` of the size passed.
        let status = unsafe { libc::sched_getaffinity(thread, std::mem::size_of_val(&set), &mut set) };
        (status == 0).then_some(Affinity(set))
    }

    fn only(cpu: usize) -> Affinity {
        // SAFETY: as in `of_this_thread`: all zeroes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid `cpu_set_t`, and `cpu` came from `cpus()`, so it lies
        // within the set's bits.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        Affinity(set)
    }

    fn cpus(&self) -> Vec<usize> {
        let capacity = 8 * std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `self.0` is a valid `cpu_set_t`, and every `cpu` asked lies within its bits.
        (0..capacity).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &self.0) }).collect()
    }

    fn apply_to_this_thread(&self) -> Result<(), Error> {
        // Thread id 0 is the calling thread.
        self.apply_to(0)
    }

    fn apply_to(&self, thread: libc::pid_t) -> Result<(), Error> {
        // SAFETY: `self.0` is a valid `cpu_set_t` of the size passed, only read.
        let status = unsafe { libc::sched_setaffinity(thread, std::mem::size_of_val(&self.0), &self.0) };
        if status == 0 {
            Ok(())
        } else {
            let error = std::io::Error::last_os_error();
            Err(format!("could not set the CPUs of thread {thread} to {:?}: {error}", self.cpus()).into())
        }
    }
}

/// Elsewhere the bench does not place its threads.
#[cfg(not(target_os = "linux"))]
struct Affinity;

#[cfg(not(target_os = "linux"))]
impl Affinity {
    fn of_this_thread() -> Option<Affinity> {
        None
    }

    fn only(_cpu: usize) -> Affinity {
        Affinity
    }

    fn cpus(&self) -> Vec<usize> {
        Vec::new()
    }

    fn apply_to_this_thread(&self) -> Result<(), Error> {
        self.apply_to(0)
    }

    fn apply_to(&self, _thread: i32) -> Result<(), Error> {
        Err("placing threads on CPUs is only implemented on Linux".into())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The CPUs the calling thread may run on.
    fn cpus_of_this_thread() -> Vec<usize> {
        Affinity::of_this_thread().expect("readable").cpus()
    }

    #[test]
    fn threads_started_in_place_run_where_placed_and_the_caller_gets_its_cpus_back() {
        let before = cpus_of_this_thread();
        let Some(pinning) = Pinning::new() else {
            eprintln!("this sandbox refuses to change a thread's CPUs: nothing to check");
            return;
        };
        for placement in [Placement::Apart, Placement::Together] {
            if !pinning.allows(placement) {
                continue;
            }
            let started = pinning.place(placement, || Ok(std::thread::spawn(cpus_of_this_thread)));
            let workers = started.expect("placed").join().expect("the thread ran");
            let publisher = cpus_of_this_thread();
            let expected_workers = match placement {
                Placement::Apart => vec![before[1]],
                Placement::Together => vec![before[0]],
            };
            assert_eq!((publisher, workers), (vec![before[0]], expected_workers), "{placement}");
        }
        drop(pinning);
        assert_eq!(cpus_of_this_thread(), before);
    }

    #[test]
    fn threads_gathered_with_the_publisher_move_to_its_cpu() {
        let Some(pinning) = Pinning::new() else {
            eprintln!("this sandbox refuses to change a thread's CPUs: nothing to check");
            return;
        };
        if !pinning.allows(Placement::Apart) {
            eprintln!("one CPU: nothing to move");
            return;
        }
        let placed = Some((&pinning, Placement::Apart));
        let (done, finish) = std::sync::mpsc::channel::<()>();
        let (id_sender, id) = std::sync::mpsc::channel();
        let thread = start_placed(placed, || {
            let named = std::thread::Builder::new().name("gather-test-thread".into());
            Ok(named.spawn(move || {
                // SAFETY: gettid has no preconditions.
                id_sender.send(unsafe { libc::gettid() }).unwrap();
                let _ = finish.recv();
            })?)
        })
        .expect("started");
        let id = id.recv().expect("the thread's id");
        assert_eq!(Affinity::of(id).expect("readable").cpus(), vec![pinning.cpus[1]], "started apart");
        assert_eq!(gather_with_publisher(placed, "gather-test-").expect("moved"), 1);
        assert_eq!(
            Affinity::of(id).expect("readable").cpus(),
            vec![pinning.cpus[0]],
            "now with the publisher"
        );
        assert!(gather_with_publisher(placed, "no-such-thread-").is_err(), "finding none is an error");
        drop(done);
        thread.join().unwrap();
    }
}
