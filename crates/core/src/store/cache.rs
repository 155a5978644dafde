//! A small least-recently-used cache of loaded documents, so that a worker recording visits in
//! one stairwell does not reload the same households from SQLite each time.

use std::collections::{HashMap, VecDeque};

use automerge::AutoCommit;

use crate::doc::DocumentKind;
use crate::ids::DocumentId;

/// A loaded document and its kind.
pub(crate) struct Loaded {
    pub kind: DocumentKind,
    pub doc: AutoCommit,
}

/// Keeps at most `capacity` documents; the least recently used one leaves first.
pub(crate) struct DocCache {
    capacity: usize,
    docs: HashMap<DocumentId, Loaded>,
    order: VecDeque<DocumentId>,
}

impl DocCache {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), docs: HashMap::new(), order: VecDeque::new() }
    }

    pub fn contains(&self, id: &DocumentId) -> bool {
        self.docs.contains_key(id)
    }

    fn touch(&mut self, id: DocumentId) {
        if let Some(pos) = self.order.iter().position(|d| *d == id) {
            self.order.remove(pos);
        }
        self.order.push_back(id);
    }

    pub fn get_mut(&mut self, id: &DocumentId) -> Option<&mut Loaded> {
        if self.docs.contains_key(id) {
            self.touch(*id);
        }
        self.docs.get_mut(id)
    }

    pub fn insert(&mut self, id: DocumentId, loaded: Loaded) {
        self.docs.insert(id, loaded);
        self.touch(id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.docs.remove(&old);
            }
        }
    }

    pub fn remove(&mut self, id: &DocumentId) {
        self.docs.remove(id);
        if let Some(pos) = self.order.iter().position(|d| d == id) {
            self.order.remove(pos);
        }
    }
}
