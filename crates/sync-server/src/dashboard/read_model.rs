//! The dashboard's read model: every household and request as doorstep-core reads them, kept
//! in memory and refreshed incrementally from the change log. A refresh loads only the
//! documents stored since the last refresh's log position, so a page costs the work of what
//! changed, and every figure is derived by the core's own read functions (status from the
//! event log, conflicts), never by SQL over copies of the data.

use std::collections::HashMap;

use doorstep_core::conflict::FieldConflict;
use doorstep_core::doc::{self, DocumentKind};
use doorstep_core::ids::{HouseholdId, RequestId};
use doorstep_core::model::{Household, HouseholdGroups, Request, SameAsMark};
use doorstep_core::sync::validate::{self, DocFacts};

use crate::scope::Scope;
use crate::storage::dashboard::ChangedDocument;

/// A household as read, with its scope facts and field conflicts.
#[derive(Clone, Debug)]
pub struct HouseholdEntry {
    /// The household.
    pub household: Household,
    /// Facts the scope rules use.
    pub facts: DocFacts,
    /// Fields holding concurrent values.
    pub conflicts: Vec<FieldConflict>,
    /// The "same household as" marks the document carries.
    pub marks: Vec<SameAsMark>,
    /// Households marked as the same as this one whose residents and visits are folded into
    /// this entry (empty for a household read as it is).
    pub merged: Vec<HouseholdId>,
}

impl HouseholdEntry {
    /// This household and those folded into it.
    pub fn members(&self) -> impl Iterator<Item = HouseholdId> + '_ {
        std::iter::once(self.household.id).chain(self.merged.iter().copied())
    }
}

/// A request as read (status derived), with its scope facts.
#[derive(Clone, Debug)]
pub struct RequestEntry {
    /// The request.
    pub request: Request,
    /// Facts the scope rules use.
    pub facts: DocFacts,
}

/// Every document as of log position [`ReadModel::seq`].
#[derive(Default)]
pub struct ReadModel {
    seq: u64,
    households: HashMap<HouseholdId, HouseholdEntry>,
    requests: HashMap<RequestId, RequestEntry>,
    groups: HouseholdGroups,
    folded: HashMap<HouseholdId, HouseholdEntry>,
}

impl ReadModel {
    /// The log position the model reflects.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Reads documents changed since [`Self::seq`] and replaces their entries. A document the
    /// core cannot read is skipped (and logged): it cannot have been accepted by the relay's
    /// checks, so it can only come from damage.
    pub fn apply(&mut self, changed: Vec<ChangedDocument>) {
        let mut refold = false;
        for ChangedDocument { id, doc, last_seq } in changed {
            self.seq = self.seq.max(last_seq);
            let facts = match validate::facts(&doc, id) {
                Ok(facts) => facts,
                Err(e) => {
                    tracing::warn!(%id, reason = %e.message, "dashboard skips an unreadable document");
                    continue;
                }
            };
            match facts.kind {
                DocumentKind::Household => match doc::household::read(&doc, id.as_household()) {
                    Ok(household) => {
                        let conflicts = doc::household::conflicts(&doc, household.id);
                        let marks = doc::same_household::marks(&doc);
                        refold |= !marks.is_empty();
                        self.households.insert(
                            household.id,
                            HouseholdEntry { household, facts, conflicts, marks, merged: Vec::new() },
                        );
                    }
                    Err(e) => tracing::warn!(%id, error = %e, "dashboard skips an unreadable household"),
                },
                DocumentKind::Request => match doc::request::read(&doc, id.as_request()) {
                    Ok(request) => {
                        self.requests.insert(request.id, RequestEntry { request, facts });
                    }
                    Err(e) => tracing::warn!(%id, error = %e, "dashboard skips an unreadable request"),
                },
            }
        }
        // Marks are rare: resolve groups again only when a household with marks changed.
        if refold || !self.groups.groups().is_empty() {
            self.fold_same_households();
        }
    }

    /// Resolves the "same household as" marks of every household into groups, and folds each
    /// group's residents and visits into its canonical household's entry. Only a mark that both
    /// households of its pair carry counts: a mark written into one document alone (which the
    /// relay no longer accepts across scopes, but an old database may hold) joins nothing.
    fn fold_same_households(&mut self) {
        let two_sided: Vec<SameAsMark> = self
            .households
            .values()
            .flat_map(|h| {
                h.marks.iter().filter(|m| {
                    self.households
                        .get(&m.other(h.household.id))
                        .is_some_and(|other| other.marks.iter().any(|x| x.id == m.id))
                })
            })
            .cloned()
            .collect();
        self.groups = HouseholdGroups::resolve(two_sided);
        self.folded.clear();
        for (canonical, members) in self.groups.groups() {
            let Some(base) = self.households.get(canonical) else { continue };
            let mut entry = base.clone();
            for other in members.iter().filter(|m| *m != canonical) {
                let Some(more) = self.households.get(other) else { continue };
                for r in &more.household.residents {
                    if !entry.household.residents.iter().any(|x| x.id == r.id) {
                        entry.household.residents.push(r.clone());
                    }
                }
                entry.household.visits.extend(more.household.visits.iter().cloned());
                entry.conflicts.extend(more.conflicts.iter().cloned());
                entry.merged.push(*other);
            }
            entry.household.visits.sort_by_key(|v| std::cmp::Reverse((v.at, v.id)));
            self.folded.insert(*canonical, entry);
        }
    }

    /// The groups of households marked as the same.
    pub fn groups(&self) -> &HouseholdGroups {
        &self.groups
    }

    /// Is every household of `id`'s group in `scope`? Only then does the viewer see the group
    /// folded into one: a mark never shows anyone a household outside their scope, and never
    /// hides a household from a viewer who cannot see the one it is folded into.
    fn group_in_scope(&self, scope: &Scope, id: HouseholdId) -> bool {
        // Most households are in no group: nothing to look up (this runs once per listed row).
        let Some(members) = self.groups.groups().get(&self.groups.canonical(id)) else { return true };
        members.iter().all(|m| self.households.get(m).is_none_or(|h| scope.may_hold(&h.facts, false)))
    }

    /// Is `id` shown, to this viewer, through another household of its group?
    fn hidden(&self, scope: &Scope, id: HouseholdId) -> bool {
        let canonical = self.groups.canonical(id);
        canonical != id && self.households.contains_key(&canonical) && self.group_in_scope(scope, id)
    }

    /// A household as stored (never folded), if in `scope`.
    pub fn household_as_stored(&self, scope: &Scope, id: HouseholdId) -> Option<&HouseholdEntry> {
        self.households.get(&id).filter(|h| scope.may_hold(&h.facts, false))
    }

    /// A household, if in `scope`: a household marked as the same as others reads as their
    /// group, with every resident and visit.
    pub fn household(&self, scope: &Scope, id: HouseholdId) -> Option<&HouseholdEntry> {
        let stored = self.household_as_stored(scope, id)?;
        if !self.group_in_scope(scope, id) {
            return Some(stored);
        }
        let canonical = self.groups.canonical(id);
        self.folded.get(&canonical).or(Some(stored)).filter(|h| scope.may_hold(&h.facts, false))
    }

    /// A request, if in `scope`.
    pub fn request(&self, scope: &Scope, id: RequestId) -> Option<&RequestEntry> {
        self.requests.get(&id).filter(|r| scope.may_hold(&r.facts, self.helps(scope, r)))
    }

    /// Every household in `scope`, each group of households marked as the same once.
    pub fn households<'a>(&'a self, scope: &'a Scope) -> impl Iterator<Item = &'a HouseholdEntry> + 'a {
        self.households
            .values()
            .filter(move |h| scope.may_hold(&h.facts, false) && !self.hidden(scope, h.household.id))
            .map(move |h| {
                if self.group_in_scope(scope, h.household.id) {
                    self.folded.get(&h.household.id).unwrap_or(h)
                } else {
                    h
                }
            })
    }

    /// Every household in `scope` as stored, duplicates included.
    pub fn households_as_stored<'a>(
        &'a self,
        scope: &'a Scope,
    ) -> impl Iterator<Item = &'a HouseholdEntry> + 'a {
        self.households.values().filter(move |h| scope.may_hold(&h.facts, false))
    }

    /// Every request in `scope`.
    pub fn requests<'a>(&'a self, scope: &'a Scope) -> impl Iterator<Item = &'a RequestEntry> + 'a {
        self.requests.values().filter(move |r| scope.may_hold(&r.facts, self.helps(scope, r)))
    }

    /// Is the scope's member a helper of the request's household (volunteers' scope)?
    fn helps(&self, scope: &Scope, request: &RequestEntry) -> bool {
        request
            .facts
            .household
            .and_then(|h| self.households.get(&h))
            .is_some_and(|h| h.household.helpers.contains(&scope.member))
    }
}
