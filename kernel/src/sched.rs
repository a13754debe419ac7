//! The scheduler's policy: one run queue per CPU, round robin. Generic over
//! what it schedules; the platform owns threads, their stacks and the
//! context switch, and calls `rotate` from its tick and yields.

use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicUsize, Ordering};

use spin::Mutex;

struct Queue<T> {
    current: Option<T>,
    ready: VecDeque<T>,
}

/// A CPU's run queue: the task it runs and the ready ones, in order.
/// Callers lock it with interrupts off (the tick takes it too).
pub struct RunQueue<T> {
    queue: Mutex<Queue<T>>,
    /// Ready tasks, readable without the lock (idle loops poll it).
    ready: AtomicUsize,
}

impl<T> Default for RunQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RunQueue<T> {
    pub const fn new() -> RunQueue<T> {
        RunQueue { queue: Mutex::new(Queue { current: None, ready: VecDeque::new() }), ready: AtomicUsize::new(0) }
    }

    /// Makes `task` the one running (the CPU's own context, at bring-up).
    pub fn set_current(&self, task: T) {
        self.queue.lock().current = Some(task);
    }

    /// Queues `task` behind the ready ones.
    pub fn push(&self, task: T) {
        let mut queue = self.queue.lock();
        queue.ready.push_back(task);
        self.ready.store(queue.ready.len(), Ordering::Release);
    }

    /// Whether a task is waiting for the CPU.
    pub fn has_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) > 0
    }

    /// Round robin: the first ready task becomes current and the previous
    /// one goes to the back, unless `still_runnable` says it is done.
    /// Returns (previous, next) for the switch; `None` if nothing is ready,
    /// or if no task is current yet (nothing to switch from).
    pub fn rotate(&self, still_runnable: impl FnOnce(&T) -> bool) -> Option<(T, T)>
    where
        T: Clone,
    {
        let mut queue = self.queue.lock();
        queue.current.as_ref()?;
        let next = queue.ready.pop_front()?;
        let previous = queue.current.replace(next.clone()).expect("checked above");
        if still_runnable(&previous) {
            queue.ready.push_back(previous.clone());
        }
        self.ready.store(queue.ready.len(), Ordering::Release);
        Some((previous, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_drops_finished_tasks() {
        let queue = RunQueue::new();
        assert_eq!(queue.rotate(|_| true), None::<(u32, u32)>, "nothing current: nothing to switch from");
        queue.push(1);
        assert!(queue.has_ready());
        assert_eq!(queue.rotate(|_| true), None, "still nothing current");
        queue.set_current(0);
        queue.push(2);
        assert_eq!(queue.rotate(|_| true), Some((0, 1)));
        assert_eq!(queue.rotate(|_| true), Some((1, 2)));
        // 2 runs, 0 and 1 wait; 2 finishes.
        assert_eq!(queue.rotate(|&t| t != 2), Some((2, 0)));
        assert_eq!(queue.rotate(|_| true), Some((0, 1)));
        assert_eq!(queue.rotate(|_| false), Some((1, 0)));
        assert!(!queue.has_ready(), "only the current one is left");
        assert_eq!(queue.rotate(|_| true), None);
    }
}
