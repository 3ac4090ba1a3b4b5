//! The stream's memory: every event the simulator has published, serialized once, with
//! its sequence. It is also the simulator's own record of what it sent, for tests.
//! Bounded: the oldest events are dropped past `retain`, and a client that asks for
//! them gets a gap notice.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::watch;

pub use firebreak_server::Read;

pub struct Journal {
    inner: Mutex<Inner>,
    head: watch::Sender<u64>,
    retain: usize,
    /// This journal's stream identity: a new one per journal, since every journal's
    /// sequence starts at 1 (a console that saw another run's numbers starts over).
    stream_id: String,
}

struct Inner {
    /// Sequence of `frames[0]`.
    first: u64,
    frames: VecDeque<Utf8Bytes>,
}

impl Journal {
    pub fn new(retain: usize) -> Journal {
        Journal {
            inner: Mutex::new(Inner {
                first: 1,
                frames: VecDeque::new(),
            }),
            head: watch::channel(0).0,
            retain: retain.max(1),
            stream_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the deque half-updated.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `count` events, each serialized by `make(sequence)`, in one critical section.
    pub fn publish(&self, count: usize, mut make: impl FnMut(u64, usize) -> String) -> u64 {
        if count == 0 {
            return self.head();
        }
        let mut inner = self.lock();
        let mut seq = inner.first + inner.frames.len() as u64;
        for i in 0..count {
            inner.frames.push_back(Utf8Bytes::from(make(seq, i)));
            seq += 1;
        }
        while inner.frames.len() > self.retain {
            inner.frames.pop_front();
            inner.first += 1;
        }
        let head = seq - 1;
        drop(inner);
        self.head.send_replace(head);
        head
    }

    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// (head, first retained).
    pub fn bounds(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.first + inner.frames.len() as u64 - 1, inner.first)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Up to `max` frames after sequence `after`.
    pub fn read_after(&self, after: u64, max: usize) -> Read {
        let inner = self.lock();
        let head = inner.first + inner.frames.len() as u64 - 1;
        if after + 1 < inner.first {
            return Read::Gap {
                first_available: inner.first,
            };
        }
        if after >= head {
            return Read::Nothing;
        }
        let start = (after + 1 - inner.first) as usize;
        let frames: Vec<Utf8Bytes> = inner.frames.range(start..).take(max).cloned().collect();
        let last = after + frames.len() as u64;
        Read::Frames { frames, last }
    }

    /// Every retained frame, for tests comparing what was sent with what arrived.
    pub fn snapshot(&self) -> (u64, Vec<String>) {
        let inner = self.lock();
        (
            inner.first,
            inner.frames.iter().map(|f| f.as_str().to_owned()).collect(),
        )
    }
}

impl firebreak_server::EventSource for Journal {
    fn bounds(&self) -> (u64, u64) {
        Journal::bounds(self)
    }
    fn stream_id(&self) -> String {
        self.stream_id.clone()
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        Journal::subscribe(self)
    }
    async fn read_after(&self, after: u64, max: usize) -> Read {
        Journal::read_after(self, after, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resume_and_gaps_are_explicit() {
        let j = Journal::new(3);
        j.publish(5, |seq, _| seq.to_string());
        // Retains 3..=5; asking after 0 must say 1 and 2 are gone.
        assert!(matches!(
            j.read_after(0, 10),
            Read::Gap { first_available: 3 }
        ));
        match j.read_after(3, 10) {
            Read::Frames { frames, last } => {
                assert_eq!(
                    frames.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
                    ["4", "5"]
                );
                assert_eq!(last, 5);
            }
            _ => panic!("frames expected after 3"),
        }
        assert!(matches!(j.read_after(5, 10), Read::Nothing));
        assert_eq!(j.bounds(), (5, 3));
    }
}
