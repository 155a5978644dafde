//! Marking two households as the same one, undoing it, and reading a group as one household
//! (see [`crate::model::same_household`] for the rules).

use std::collections::HashMap;

use crate::doc::{self, DocumentKind};
use crate::error::{CoreError, Result};
use crate::ids::{HouseholdId, LinkId};
use crate::model::household::{Household, HouseholdSummary};
use crate::model::request::RequestSummary;
use crate::model::same_household::{HouseholdGroups, SameAsMark};
use crate::store::index::{self, RequestFilter};
use crate::store::replica::Replica;
use crate::time::Timestamp;

/// A household as the screens show it once duplicates are marked: the canonical household with
/// the residents and visits of every household of its group, and the requests of all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedHousehold {
    /// The canonical household's document, its residents and visit log extended with those of
    /// the other households of the group (newest visit first).
    pub household: Household,
    /// The other households of the group this replica holds (their documents stay as they are).
    pub merged: Vec<HouseholdId>,
    /// Requests about any household of the group.
    pub requests: Vec<RequestSummary>,
}

impl Replica {
    /// Every "same household as" mark this replica holds, resolved into groups.
    pub fn household_groups(&self) -> Result<HouseholdGroups> {
        Ok(HouseholdGroups::resolve(index::same_household_marks(&self.conn)?))
    }

    /// Marks households `a` and `b` (both held here) as the same household, as the signed-in
    /// member. The mark is written into both documents (one change and one transaction each;
    /// should the second write fail, the first already carries the whole mark, and any replica
    /// holding that document resolves it) and syncs like any edit; nothing is deleted. Returns
    /// the mark's id.
    pub fn mark_same_household(&mut self, a: HouseholdId, b: HouseholdId, at: Timestamp) -> Result<LinkId> {
        self.write_same_household_mark(a, b, true, at)
    }

    /// Undoes a "same household as" mark between `a` and `b`: from then on every replica shows
    /// them as two households again. Refused when the two are not marked as the same.
    pub fn unmark_same_household(&mut self, a: HouseholdId, b: HouseholdId, at: Timestamp) -> Result<LinkId> {
        let groups = self.household_groups()?;
        if !groups.current(a, b).is_some_and(|m| m.same) {
            return Err(CoreError::InvalidValue {
                field: "same_as",
                reason: "these two households are not marked as the same".into(),
            });
        }
        self.write_same_household_mark(a, b, false, at)
    }

    fn write_same_household_mark(
        &mut self,
        a: HouseholdId,
        b: HouseholdId,
        same: bool,
        at: Timestamp,
    ) -> Result<LinkId> {
        let by = self.require_member()?;
        if a == b {
            return Err(CoreError::InvalidValue {
                field: "same_as",
                reason: "a household cannot be marked as the same as itself".into(),
            });
        }
        // Both must be here before either document is written.
        self.household_summary(a)?;
        self.household_summary(b)?;
        let after = HouseholdGroups::seen_for(&index::same_household_marks(&self.conn)?, a, b);
        let mark = SameAsMark::new(LinkId::new_random(), a, b, same, by, at, after);
        for id in [a, b] {
            self.edit(id.into(), DocumentKind::Household, |d| doc::same_household::write_mark(d, id, &mark))?;
        }
        Ok(mark.id)
    }

    /// Household `id` as one with every household marked as the same (`id` may be any of the
    /// group). A household not marked reads as itself with its own requests.
    pub fn merged_household(&mut self, id: HouseholdId) -> Result<MergedHousehold> {
        let groups = self.household_groups()?;
        let mut held = Vec::new();
        for member in groups.group_of(id) {
            if member == id || index::household_summary_of(&self.conn, member)?.is_some() {
                held.push(member);
            }
        }
        let canonical = held.iter().copied().min().unwrap_or(id);
        let mut household = self.household(canonical)?;
        let mut requests = self.requests_about(canonical)?;
        let mut merged = Vec::new();
        for other in held.into_iter().filter(|h| *h != canonical) {
            let more = self.household(other)?;
            for r in more.residents {
                if !household.residents.iter().any(|x| x.id == r.id) {
                    household.residents.push(r);
                }
            }
            for v in more.visits {
                if !household.visits.iter().any(|x| x.id == v.id) {
                    household.visits.push(v);
                }
            }
            requests.extend(self.requests_about(other)?);
            merged.push(other);
        }
        household.visits.sort_by_key(|v| std::cmp::Reverse((v.at, v.id)));
        Ok(MergedHousehold { household, merged, requests })
    }

    fn requests_about(&self, household: HouseholdId) -> Result<Vec<RequestSummary>> {
        self.list_requests(&RequestFilter { household: Some(household), ..RequestFilter::default() })
    }

    /// Shows each group of households marked as the same as one row (the canonical one, with
    /// the latest visit and the open requests of the whole group); unmarked rows are unchanged.
    pub(super) fn collapse_same_households(
        &self,
        rows: Vec<HouseholdSummary>,
    ) -> Result<Vec<HouseholdSummary>> {
        let groups = self.household_groups()?;
        if groups.groups().is_empty() {
            return Ok(rows);
        }
        let present: HashMap<HouseholdId, usize> = rows.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        // Within the list, a group is shown as its smallest member present.
        let shown_as =
            |id: HouseholdId| groups.group_of(id).into_iter().find(|m| present.contains_key(m)).unwrap_or(id);
        let mut out: Vec<HouseholdSummary> = Vec::with_capacity(rows.len());
        let mut extra: HashMap<HouseholdId, (Option<Timestamp>, u32, bool)> = HashMap::new();
        for row in &rows {
            let target = shown_as(row.id);
            if target != row.id {
                let e = extra.entry(target).or_default();
                e.0 = e.0.max(row.last_visit_at);
                e.1 += row.open_requests;
                e.2 |= row.has_conflict;
            }
        }
        for mut row in rows.into_iter().filter(|r| shown_as(r.id) == r.id) {
            if let Some((last, open, conflict)) = extra.get(&row.id) {
                row.last_visit_at = row.last_visit_at.max(*last);
                row.open_requests += open;
                row.has_conflict |= conflict;
            }
            out.push(row);
        }
        Ok(out)
    }
}
