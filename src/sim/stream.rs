//! The change log of one simulated stream: initial records occupy positions `0..initial`, every
//! later change (update, insert, delete) is appended at the next position. Positions map to the
//! upstream's update time / sequence / batch, so incremental pulls see each change exactly once.
//! Only this small overlay is kept in memory; record content is regenerated from its index.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

/// Rows per internet-plus exchange batch.
pub const BATCH_ROWS: u64 = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Insert => "i",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }
}

/// One position of the log: which record, at which version, and what happened to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub pos: u64,
    pub index: u64,
    pub version: u32,
    pub op: Op,
}

#[derive(Clone, Copy, Debug)]
struct Event {
    index: u64,
    version: u32,
    op: Op,
}

#[derive(Debug)]
pub struct StreamState {
    pub initial: u64,
    pub inserted: u64,
    events: Vec<Event>,
    /// index → (version, position of its latest entry, deleted)
    latest: HashMap<u64, (u32, u64, bool)>,
    /// positions no longer current (an older version, or a delete marker): skipped by views
    superseded: BTreeSet<u64>,
    /// start positions of the batches appended after the initial load
    batch_starts: Vec<u64>,
}

impl StreamState {
    pub fn new(initial: u64) -> StreamState {
        StreamState {
            initial,
            inserted: 0,
            events: Vec::new(),
            latest: HashMap::new(),
            superseded: BTreeSet::new(),
            batch_starts: Vec::new(),
        }
    }

    pub fn positions(&self) -> u64 {
        self.initial + self.events.len() as u64
    }

    /// Number of record indices ever created (initial + inserted).
    pub fn count(&self) -> u64 {
        self.initial + self.inserted
    }

    pub fn deleted(&self, index: u64) -> bool {
        self.latest.get(&index).is_some_and(|l| l.2)
    }

    pub fn version(&self, index: u64) -> u32 {
        self.latest.get(&index).map_or(0, |l| l.0)
    }

    pub fn deleted_indices(&self) -> impl Iterator<Item = u64> + '_ {
        self.latest.iter().filter(|(_, l)| l.2).map(|(i, _)| *i)
    }

    pub fn entry(&self, pos: u64) -> Option<Entry> {
        if pos < self.initial {
            return Some(Entry {
                pos,
                index: pos,
                version: 0,
                op: Op::Insert,
            });
        }
        let e = self.events.get((pos - self.initial) as usize)?;
        Some(Entry {
            pos,
            index: e.index,
            version: e.version,
            op: e.op,
        })
    }

    /// Appends a change; `index == count()` with `Op::Insert` creates a new record.
    pub fn push(&mut self, index: u64, op: Op) -> Entry {
        let pos = self.positions();
        let version = match op {
            Op::Insert => {
                self.inserted += 1;
                0
            }
            _ => self.version(index) + 1,
        };
        let old_pos = match self.latest.get(&index) {
            Some(l) => Some(l.1),
            None if index < self.initial => Some(index),
            None => None,
        };
        if let Some(p) = old_pos {
            self.superseded.insert(p);
        }
        if op == Op::Delete {
            self.superseded.insert(pos);
        }
        self.latest.insert(index, (version, pos, op == Op::Delete));
        self.events.push(Event { index, version, op });
        Entry {
            pos,
            index,
            version,
            op,
        }
    }

    /// Number of current entries at positions ≥ `start`.
    pub fn view_count(&self, start: u64) -> u64 {
        let total = self.positions();
        if start >= total {
            return 0;
        }
        total - start - self.superseded.range(start..).count() as u64
    }

    /// Current entries from `start`, skipping `skip` of them, at most `take`.
    pub fn view(&self, start: u64, skip: u64, take: usize) -> Vec<Entry> {
        let total = self.positions();
        let mut pos = start.saturating_add(skip);
        for h in self.superseded.range(start..) {
            if *h <= pos {
                pos += 1;
            } else {
                break;
            }
        }
        let mut out = Vec::with_capacity(take.min(1024));
        while pos < total && out.len() < take {
            if !self.superseded.contains(&pos)
                && let Some(e) = self.entry(pos)
            {
                out.push(e);
            }
            pos += 1;
        }
        out
    }

    fn initial_batches(&self) -> u64 {
        self.initial.div_ceil(BATCH_ROWS)
    }

    pub fn batch_count(&self) -> u64 {
        self.initial_batches() + self.batch_starts.len() as u64
    }

    /// Positions of batch `k` (0-based), if it exists.
    pub fn batch_range(&self, k: u64) -> Option<Range<u64>> {
        let ib = self.initial_batches();
        if k < ib {
            return Some(k * BATCH_ROWS..((k + 1) * BATCH_ROWS).min(self.initial));
        }
        let j = (k - ib) as usize;
        let start = *self.batch_starts.get(j)?;
        let end = self
            .batch_starts
            .get(j + 1)
            .copied()
            .unwrap_or(self.positions());
        Some(start..end)
    }

    /// Closes the changes appended since `from` into new batches of at most `BATCH_ROWS`.
    pub fn close_batches(&mut self, from: u64) {
        let mut p = from;
        while p < self.positions() {
            self.batch_starts.push(p);
            p += BATCH_ROWS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_skips_superseded_positions_and_shows_latest_versions() {
        let mut s = StreamState::new(10);
        s.push(3, Op::Update);
        s.push(3, Op::Update);
        s.push(7, Op::Update);
        let all = s.view(0, 0, 100);
        let idx: Vec<u64> = all.iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![0, 1, 2, 4, 5, 6, 8, 9, 3, 7]);
        assert_eq!(all[8].version, 2);
        assert_eq!(s.view_count(0), 10);
        // paging by skip gives the same sequence
        let paged: Vec<u64> = (0..4)
            .flat_map(|p| s.view(0, p * 3, 3))
            .map(|e| e.index)
            .collect();
        assert_eq!(paged, idx);
        assert_eq!(
            s.view(5, 0, 100)
                .iter()
                .map(|e| e.index)
                .collect::<Vec<_>>(),
            vec![5, 6, 8, 9, 3, 7]
        );
    }

    #[test]
    fn batches_cover_initial_load_then_each_mutation_call() {
        let mut s = StreamState::new(1001);
        assert_eq!(s.batch_count(), 3);
        assert_eq!(s.batch_range(2), Some(1000..1001));
        let from = s.positions();
        s.push(5, Op::Update);
        s.push(6, Op::Delete);
        s.close_batches(from);
        assert_eq!(s.batch_count(), 4);
        assert_eq!(s.batch_range(3), Some(1001..1003));
        assert_eq!(s.batch_range(4), None);
        assert!(s.deleted(6));
        assert_eq!(s.view_count(0), 1000);
    }
}
