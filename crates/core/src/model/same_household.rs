//! Two workers may register the same household offline. Marking two households as the same one
//! is itself synced data: a [`SameAsMark`] written into both household documents (never a
//! deletion), and every replica resolves the marks it holds the same way into groups
//! ([`HouseholdGroups`]) shown as one household with every visit and request. A later mark with
//! `same == false` undoes a wrong merge; the documents and their histories are untouched.
//!
//! Order is causal, never by device clock: each mark lists the marks of the same pair its
//! device had seen (`after`). For each pair, the marks no other mark has seen are the current
//! ones; if two were made concurrently, the one with the greater id decides, on every replica.
//!
//! ```
//! use doorstep_core::ids::{HouseholdId, LinkId, MemberId};
//! use doorstep_core::model::same_household::{HouseholdGroups, SameAsMark};
//! use doorstep_core::time::Timestamp;
//!
//! let (a, b) = (HouseholdId::new_random(), HouseholdId::new_random());
//! let by = MemberId::new_random();
//! let merge = SameAsMark::new(LinkId::new_random(), a, b, true, by, Timestamp(1), vec![]);
//! let undo = SameAsMark::new(LinkId::new_random(), b, a, false, by, Timestamp(0), vec![merge.id]);
//! assert_eq!(HouseholdGroups::resolve([merge.clone()]).canonical(b), a.min(b));
//! // The undo saw the merge, so it wins whatever the clocks say.
//! assert_eq!(HouseholdGroups::resolve([merge, undo]).canonical(b), b);
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::ids::{HouseholdId, LinkId, MemberId};
use crate::time::Timestamp;

/// One "same household as" mark (or, with `same == false`, its undoing) between two households.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SameAsMark {
    /// The mark's id (the same in both documents it is written into).
    pub id: LinkId,
    /// The pair, smaller id first.
    pub pair: (HouseholdId, HouseholdId),
    /// `true`: the two are one household; `false`: they are not (undo).
    pub same: bool,
    /// Who marked it.
    pub by: MemberId,
    /// Device time of the mark (shown, never used for order).
    pub at: Timestamp,
    /// The marks of this pair the device had seen.
    pub after: Vec<LinkId>,
}

impl SameAsMark {
    /// A mark between `a` and `b` (in either order).
    pub fn new(
        id: LinkId,
        a: HouseholdId,
        b: HouseholdId,
        same: bool,
        by: MemberId,
        at: Timestamp,
        after: Vec<LinkId>,
    ) -> Self {
        Self { id, pair: (a.min(b), a.max(b)), same, by, at, after }
    }

    /// The other household of the pair, seen from `id`.
    pub fn other(&self, id: HouseholdId) -> HouseholdId {
        if self.pair.0 == id { self.pair.1 } else { self.pair.0 }
    }
}

/// The households that are one, as resolved from every mark a replica holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HouseholdGroups {
    canonical: HashMap<HouseholdId, HouseholdId>,
    groups: BTreeMap<HouseholdId, Vec<HouseholdId>>,
    current: BTreeMap<(HouseholdId, HouseholdId), SameAsMark>,
}

impl HouseholdGroups {
    /// Resolves marks (duplicates, as read from both documents of a pair, count once).
    pub fn resolve(marks: impl IntoIterator<Item = SameAsMark>) -> Self {
        let mut by_pair: BTreeMap<(HouseholdId, HouseholdId), BTreeMap<LinkId, SameAsMark>> = BTreeMap::new();
        for mark in marks {
            if mark.pair.0 != mark.pair.1 {
                by_pair.entry(mark.pair).or_default().insert(mark.id, mark);
            }
        }
        let mut out = Self::default();
        let mut parent: HashMap<HouseholdId, HouseholdId> = HashMap::new();
        for (pair, marks) in by_pair {
            let seen: HashSet<LinkId> = marks.values().flat_map(|m| m.after.iter().copied()).collect();
            // Marks are keyed by id, so the last current one has the greatest id.
            let Some(decisive) = marks.values().rfind(|m| !seen.contains(&m.id)).cloned() else {
                continue;
            };
            if decisive.same {
                let (ra, rb) = (root(&mut parent, pair.0), root(&mut parent, pair.1));
                if ra != rb {
                    parent.insert(ra.max(rb), ra.min(rb));
                }
            }
            out.current.insert(pair, decisive);
        }
        let ids: Vec<HouseholdId> = parent.keys().copied().collect();
        for id in ids {
            let r = root(&mut parent, id);
            out.canonical.insert(id, r);
            out.groups.entry(r).or_default().push(id);
        }
        for members in out.groups.values_mut() {
            members.sort();
            members.dedup();
        }
        out.groups.retain(|_, members| members.len() > 1);
        out.canonical.retain(|id, _| out.groups.values().any(|m| m.contains(id)));
        out
    }

    /// The household that stands for `id`'s group (the smallest id of the group; `id` itself
    /// when it is not merged with any other).
    pub fn canonical(&self, id: HouseholdId) -> HouseholdId {
        self.canonical.get(&id).copied().unwrap_or(id)
    }

    /// Every household of `id`'s group, `id` included, sorted.
    pub fn group_of(&self, id: HouseholdId) -> Vec<HouseholdId> {
        self.groups.get(&self.canonical(id)).cloned().unwrap_or_else(|| vec![id])
    }

    /// Every group of more than one household, by canonical id.
    pub fn groups(&self) -> &BTreeMap<HouseholdId, Vec<HouseholdId>> {
        &self.groups
    }

    /// The current mark of a pair, if any was made.
    pub fn current(&self, a: HouseholdId, b: HouseholdId) -> Option<&SameAsMark> {
        self.current.get(&(a.min(b), a.max(b)))
    }

    /// The ids of every mark of the pair, for a new mark's `after`.
    pub fn seen_for(marks: &[SameAsMark], a: HouseholdId, b: HouseholdId) -> Vec<LinkId> {
        let pair = (a.min(b), a.max(b));
        let ids: BTreeSet<LinkId> = marks.iter().filter(|m| m.pair == pair).map(|m| m.id).collect();
        ids.into_iter().collect()
    }
}

/// The address written the way two workers typing it independently most likely agree: full-
/// width characters made half-width, spaces and punctuation dropped, letters lower-cased, and
/// the usual suffixes (栋/幢/号楼/楼, 单元, 室/号) left out. Two households with the same key
/// are likely duplicates (the dashboard suggests them; a person decides).
///
/// ```
/// use doorstep_core::ids::GridId;
/// use doorstep_core::model::Address;
/// use doorstep_core::model::same_household::address_key;
///
/// let grid = GridId::new_random();
/// let typed = |building: &str, unit: &str, room: &str| Address {
///     community: "幸福社区".into(), grid, building: building.into(), unit: unit.into(), room: room.into(),
/// };
/// assert_eq!(address_key(&typed("3栋", "2单元", "501")), address_key(&typed("３号楼", "2", "501室")));
/// assert_ne!(address_key(&typed("3栋", "2单元", "501")), address_key(&typed("3栋", "2单元", "502")));
/// ```
pub fn address_key(address: &crate::model::household::Address) -> String {
    fn norm(text: &str, suffixes: &[&str]) -> String {
        let mut out: String = text
            .chars()
            .map(|c| match c {
                '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                '\u{3000}' => ' ',
                c => c,
            })
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        for suffix in suffixes {
            if let Some(stripped) = out.strip_suffix(suffix) {
                out = stripped.to_owned();
                break;
            }
        }
        out
    }
    [
        norm(&address.community, &[]),
        norm(&address.building, &["号楼", "栋", "幢", "楼", "座"]),
        norm(&address.unit, &["单元"]),
        norm(&address.room, &["室", "号"]),
    ]
    .join("|")
}

fn root(parent: &mut HashMap<HouseholdId, HouseholdId>, id: HouseholdId) -> HouseholdId {
    let mut r = *parent.entry(id).or_insert(id);
    while let Some(&p) = parent.get(&r) {
        if p == r {
            break;
        }
        r = p;
    }
    parent.insert(id, r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<HouseholdId> {
        let mut v: Vec<HouseholdId> = (0..n).map(|_| HouseholdId::new_random()).collect();
        v.sort();
        v
    }

    #[test]
    fn chains_of_marks_form_one_group_under_the_smallest_id() {
        let h = ids(3);
        let by = MemberId::new_random();
        let m1 = SameAsMark::new(LinkId::new_random(), h[2], h[1], true, by, Timestamp(0), vec![]);
        let m2 = SameAsMark::new(LinkId::new_random(), h[1], h[0], true, by, Timestamp(0), vec![]);
        let groups = HouseholdGroups::resolve([m1.clone(), m2.clone(), m1]);
        assert_eq!(groups.group_of(h[2]), h);
        assert!(h.iter().all(|id| groups.canonical(*id) == h[0]));
    }

    #[test]
    fn concurrent_merge_and_undo_resolve_the_same_in_any_order() {
        let h = ids(2);
        let by = MemberId::new_random();
        let merge = SameAsMark::new(LinkId::new_random(), h[0], h[1], true, by, Timestamp(9), vec![]);
        let a = SameAsMark::new(LinkId::new_random(), h[0], h[1], false, by, Timestamp(1), vec![merge.id]);
        let b = SameAsMark::new(LinkId::new_random(), h[0], h[1], true, by, Timestamp(2), vec![merge.id]);
        let one = HouseholdGroups::resolve([merge.clone(), a.clone(), b.clone()]);
        let two = HouseholdGroups::resolve([b.clone(), a.clone(), merge]);
        assert_eq!(one, two);
        let winner = if a.id > b.id { &a } else { &b };
        assert_eq!(one.current(h[1], h[0]), Some(winner));
    }
}
