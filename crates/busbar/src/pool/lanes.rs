//! The jobs of the queue, by priority: what `JobQueue` keeps under its lock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::mem::size_of;

use super::job::Job;

/// Jobs per chunk of a lane.
///
/// A lane grows by chunks rather than by doubling one buffer: a growing backlog never copies
/// the jobs already queued (a job holds its event inline, so copies are not cheap), and a
/// drained backlog frees its chunks.
pub(super) const CHUNK: usize = 256;

/// Jobs by priority: one FIFO lane per priority in use, highest priority first.
///
/// A binary heap of jobs moved large entries through `log n` cache-cold levels on every push
/// and pop: with a million queued events, throughput fell to a sixth of its small-queue value.
/// Lanes make push and pop O(1) in the queue's length (O(log p) in the number of distinct
/// priorities, which is small) and read memory sequentially; FIFO among equals comes free.
///
/// The most urgent lane, `front`, is kept inline rather than in the map, and so is its first
/// chunk. When workers keep up, a publisher and a worker take turns pushing and popping one
/// job, and all that both of them change (the length, the first chunk's ends) then lies on one
/// cache line with the lock word, which each has to take from the other anyway. Reached
/// through the map, the lane, its chunk list and the chunk were each a cache miss waiting for
/// the one before, on both sides, for every event. `#[repr(C)]` keeps those fields first (see
/// `queue::State`).
#[repr(C)]
#[derive(Default)]
pub(super) struct Lanes {
    /// Jobs queued, in all lanes.
    len: usize,
    /// Jobs pushed since the queue was made (wrapping); less `len`, the jobs taken out.
    pushed: usize,
    /// The lane of the most urgent priority queued, which `pop` takes from. While the queue is
    /// empty it is empty too, and keeps its priority and its chunk for the next push.
    front: Lane,
    /// The lanes of the other priorities queued, all less urgent than `front`'s; none is empty.
    others: BTreeMap<Reverse<i32>, Lane>,
    /// The last chunk that emptied, kept for reuse: otherwise each chunk would be allocated on
    /// a publisher's thread and freed on a worker's, and those cross-thread frees contend on
    /// the allocator's lock (glibc's arena lock). One bounds what is kept.
    spare_chunk: Option<VecDeque<Job>>,
}

/// One priority's jobs, in order: `head`, then the chunks of `rest`.
#[repr(C)]
#[derive(Default)]
struct Lane {
    /// The first jobs, at most `CHUNK`. Empty only if the lane is.
    head: VecDeque<Job>,
    priority: i32,
    /// Of its jobs, the ones queued at the last counted sweep already: a prefix, as the lane
    /// is FIFO (see `JobQueue::sweep_deferred`). Past the first cache line: a pop only reads
    /// it while it is zero, which it is between sweeps while workers keep up.
    old: usize,
    /// The jobs after `head`'s, in chunks of at most `CHUNK`; no chunk is empty.
    rest: VecDeque<VecDeque<Job>>,
}

impl Lanes {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Jobs pushed since the queue was made (wrapping).
    pub(super) fn pushed(&self) -> usize {
        self.pushed
    }

    /// Jobs taken out since the queue was made (wrapping).
    pub(super) fn taken(&self) -> usize {
        self.pushed.wrapping_sub(self.len)
    }

    /// Queues `job`, and returns where the next push of its priority will most likely go: the
    /// slot after this job's (see `super::prefetch`).
    pub(super) fn push(&mut self, job: Job) -> usize {
        let priority = job.event().priority();
        let spare_chunk = &mut self.spare_chunk;
        let at = if priority == self.front.priority || self.len == 0 {
            // An empty queue's front lane is empty: it takes any priority.
            self.front.priority = priority;
            self.front.push(job, spare_chunk)
        } else if priority > self.front.priority {
            let front = std::mem::replace(&mut self.front, Lane::new(priority));
            self.others.insert(Reverse(front.priority), front);
            self.front.push(job, spare_chunk)
        } else {
            self.others.entry(Reverse(priority)).or_insert_with(|| Lane::new(priority)).push(job, spare_chunk)
        };
        self.len += 1;
        self.pushed = self.pushed.wrapping_add(1);
        at + size_of::<Job>()
    }

    pub(super) fn pop(&mut self) -> Option<Job> {
        self.pop_hinting().map(|(job, _)| job)
    }

    /// [`pop`](Self::pop), also giving where the next pop will most likely read: the next
    /// job's slot, or, if none is queued, the slot after this one, where the next push of the
    /// same priority goes (see `super::prefetch`).
    pub(super) fn pop_hinting(&mut self) -> Option<(Job, usize)> {
        let (job, next) = self.front.pop(&mut self.spare_chunk)?;
        self.len -= 1;
        if self.front.head.is_empty() {
            if let Some((_, next)) = self.others.pop_first() {
                let emptied = std::mem::replace(&mut self.front, next);
                keep_spare(&mut self.spare_chunk, emptied.head);
                return Some((job, self.front.head.front().map_or(0, address_of)));
            }
        }
        Some((job, next))
    }

    /// The job `pop` would return next.
    pub(super) fn peek(&self) -> Option<&Job> {
        self.front.head.front()
    }

    /// Jobs still queued that were queued at the last call already; all queued jobs count as
    /// such at the next.
    pub(super) fn age(&mut self) -> usize {
        std::iter::once(&mut self.front)
            .chain(self.others.values_mut())
            .map(|lane| {
                let old = lane.old;
                // Counted here, once a sweep period, rather than kept on every push and pop.
                lane.old = lane.len();
                old
            })
            .sum()
    }

    /// Takes every job out, most urgent first.
    pub(super) fn drain(&mut self) -> Vec<Job> {
        self.len = 0;
        let mut jobs = Vec::new();
        let others = std::mem::take(&mut self.others).into_values();
        for lane in std::iter::once(std::mem::take(&mut self.front)).chain(others) {
            jobs.extend(lane.head);
            jobs.extend(lane.rest.into_iter().flatten());
        }
        jobs
    }

    /// The lanes' priorities, most urgent first, and how many chunks each holds (for tests).
    #[cfg(test)]
    pub(super) fn shape(&self) -> Vec<(i32, usize)> {
        std::iter::once(&self.front)
            .chain(self.others.values())
            .map(|lane| (lane.priority, usize::from(lane.head.capacity() > 0) + lane.rest.len()))
            .collect()
    }

    /// How many bytes from its start hold what pushing and popping a job at the front change:
    /// the counts, and the front lane's first chunk and priority.
    #[cfg(test)]
    pub(super) const HOT_BYTES: usize =
        std::mem::offset_of!(Lanes, front) + std::mem::offset_of!(Lane, priority) + size_of::<i32>();

    /// The capacity of the chunk kept for reuse, if one is (for tests).
    #[cfg(test)]
    pub(super) fn spare_capacity(&self) -> usize {
        self.spare_chunk.as_ref().map_or(0, VecDeque::capacity)
    }
}

impl Lane {
    fn new(priority: i32) -> Lane {
        Lane { priority, ..Lane::default() }
    }

    fn len(&self) -> usize {
        self.head.len() + self.rest.iter().map(VecDeque::len).sum::<usize>()
    }

    /// Queues `job` last, and returns the address of the slot it went to.
    fn push(&mut self, job: Job, spare_chunk: &mut Option<VecDeque<Job>>) -> usize {
        if self.rest.is_empty() && self.head.len() < CHUNK {
            if self.head.capacity() == 0 {
                self.head = new_chunk(spare_chunk);
            }
            return push_back(&mut self.head, job);
        }
        match self.rest.back_mut() {
            Some(chunk) if chunk.len() < CHUNK => push_back(chunk, job),
            _ => {
                let mut chunk = new_chunk(spare_chunk);
                let at = push_back(&mut chunk, job);
                // Moving the chunk moves its handle, not the jobs.
                self.rest.push_back(chunk);
                at
            }
        }
    }

    /// Takes the lane's first job; also gives where the next one is, or will be if the lane is
    /// now empty.
    fn pop(&mut self, spare_chunk: &mut Option<VecDeque<Job>>) -> Option<(Job, usize)> {
        let at = address_of(self.head.front()?);
        let job = self.head.pop_front()?;
        // The old jobs are the lane's first ones.
        if self.old > 0 {
            self.old -= 1;
        }
        if self.head.is_empty() {
            if let Some(next) = self.rest.pop_front() {
                keep_spare(spare_chunk, std::mem::replace(&mut self.head, next));
            }
        }
        let next = self.head.front().map_or(at + size_of::<Job>(), address_of);
        Some((job, next))
    }
}

/// Queues `job` last in `chunk`, and returns the address of the slot it went to.
fn push_back(chunk: &mut VecDeque<Job>, job: Job) -> usize {
    chunk.push_back(job);
    chunk.back().map_or(0, address_of)
}

fn address_of(job: &Job) -> usize {
    job as *const Job as usize
}

/// An empty chunk: the spare one if there is one.
fn new_chunk(spare_chunk: &mut Option<VecDeque<Job>>) -> VecDeque<Job> {
    spare_chunk.take().unwrap_or_else(|| VecDeque::with_capacity(CHUNK))
}

/// Keeps `chunk` (empty) for reuse, unless a chunk is kept already.
fn keep_spare(spare_chunk: &mut Option<VecDeque<Job>>, chunk: VecDeque<Job>) {
    if spare_chunk.is_none() && chunk.capacity() > 0 {
        *spare_chunk = Some(chunk);
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::{address_of, Lanes, CHUNK};
    use crate::event::Event;
    use crate::handle::EventHandle;
    use crate::pool::job::Job;

    fn job(priority: i32, number: usize) -> Job {
        let event = Event::new("t").with_priority(priority).with_data(number.into());
        let (_handle, reply) = EventHandle::pending(event.id());
        Job::new(event, None, reply)
    }

    fn number(job: &Job) -> usize {
        job.event().data().as_u64().and_then(|n| usize::try_from(n).ok()).expect("numbered")
    }

    /// Pushes and pops in a random mix, with priorities coming and going and backlogs long
    /// enough to span chunks, and checks every pop against a plain model: the most urgent
    /// job, the oldest among equals.
    #[test]
    fn pops_the_most_urgent_job_first_and_equals_in_order() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut lanes = Lanes::default();
        let mut model: Vec<(i32, usize)> = Vec::new();
        for pushed in 0..20_000 {
            // Mostly one priority, as in practice; bursts of pushes build backlogs.
            let priority = if rng.u8(..10) == 0 { rng.i32(-2..=2) } else { 0 };
            lanes.push(job(priority, pushed));
            model.push((priority, pushed));
            let pops = if rng.u8(..4) == 0 { 0 } else { rng.usize(0..=2) };
            for _ in 0..pops {
                let expected = model
                    .iter()
                    .enumerate()
                    .max_by_key(|(at, (priority, _))| (*priority, std::cmp::Reverse(*at)))
                    .map(|(at, _)| at)
                    .map(|at| model.remove(at));
                assert_eq!(lanes.pop().map(|job| (job.event().priority(), number(&job))), expected);
                assert_eq!(lanes.len(), model.len());
            }
        }
        assert!(model.len() > CHUNK, "the backlog spanned chunks: {}", model.len());
        let drained: Vec<_> = lanes.drain().iter().map(|job| (job.event().priority(), number(job))).collect();
        model.sort_by_key(|(priority, _)| std::cmp::Reverse(*priority));
        assert_eq!(drained, model, "drained most urgent first, in order among equals");
        assert_eq!((lanes.len(), lanes.pop().is_none()), (0, true));
    }

    /// The hint a worker fetches before it next locks (see `super::super::prefetch`).
    #[test]
    fn a_pop_tells_where_the_next_job_lies_or_will_be_pushed() {
        let mut lanes = Lanes::default();
        lanes.push(job(0, 1));
        lanes.push(job(0, 2));
        let (_, next) = lanes.pop_hinting().expect("two queued");
        assert_eq!(Some(next), lanes.peek().map(address_of), "the job queued next");
        let (_, next) = lanes.pop_hinting().expect("one queued");
        lanes.push(job(0, 3));
        assert_eq!(Some(next), lanes.peek().map(address_of), "where the next push went");
        // A more urgent lane moves to the front: the hint follows it.
        lanes.push(job(5, 4));
        lanes.push(job(5, 5));
        let (_, next) = lanes.pop_hinting().expect("queued");
        assert_eq!(Some(next), lanes.peek().map(address_of));
        let (_, next) = lanes.pop_hinting().expect("queued");
        assert_eq!(Some(next), lanes.peek().map(address_of), "the less urgent lane's job, now in front");
    }

    /// The hint a publisher fetches as its next publish begins (see `super::super::prefetch`).
    #[test]
    fn a_push_tells_where_the_next_push_of_its_priority_goes() {
        let mut lanes = Lanes::default();
        let next = lanes.push(job(0, 1));
        lanes.pop();
        // The queue empties between round trips; the next push goes to the slot after.
        lanes.push(job(0, 2));
        assert_eq!(Some(next), lanes.peek().map(address_of), "the slot after the last push's");
        let mut next = lanes.push(job(0, 3));
        let mut right = 0;
        for number in 4..(3 * CHUNK) {
            let went = lanes.push(job(0, number));
            // `went` less one slot: where that job went, which the hint should have named.
            right += usize::from(went - size_of::<Job>() == next);
            next = went;
        }
        // Wrong only where a push starts a new chunk.
        let pushes = 3 * CHUNK - 4;
        assert!(right >= pushes - 3, "{right} of {pushes} hints right");
    }

    #[test]
    fn a_more_urgent_job_goes_ahead_of_the_lane_in_front() {
        let mut lanes = Lanes::default();
        lanes.push(job(0, 1));
        lanes.push(job(0, 2));
        lanes.push(job(9, 3));
        lanes.push(job(-1, 4));
        assert_eq!(lanes.peek().map(number), Some(3));
        let order: Vec<usize> = std::iter::from_fn(|| lanes.pop()).map(|job| number(&job)).collect();
        assert_eq!(order, [3, 1, 2, 4]);
        // Empty now: its front lane takes the next priority, whichever it is.
        lanes.push(job(-5, 5));
        assert_eq!(lanes.shape(), [(-5, 1)]);
        assert_eq!(lanes.pop().map(|job| number(&job)), Some(5));
    }

    #[test]
    fn age_counts_the_jobs_queued_at_the_last_call_and_still_queued() {
        let mut lanes = Lanes::default();
        for pushed in 0..3 {
            lanes.push(job(0, pushed));
        }
        lanes.push(job(1, 3));
        assert_eq!(lanes.age(), 0, "nothing was queued at the last call");
        lanes.pop();
        lanes.pop();
        lanes.push(job(0, 4));
        // Of the four queued at the last call, two are left; the fifth is new.
        assert_eq!(lanes.age(), 2);
        assert_eq!(lanes.age(), 3);
    }
}
