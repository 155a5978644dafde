//! The dashboard's read model: every household and request as doorstep-core reads them, kept
//! in memory and refreshed incrementally from the change log. A refresh loads only the
//! documents stored since the last refresh's log position, so a page costs the work of what
//! changed, and every figure is derived by the core's own read functions (status from the
//! event log, conflicts), never by SQL over copies of the data.

use std::collections::HashMap;

use doorstep_core::conflict::FieldConflict;
use doorstep_core::doc::{self, DocumentKind};
use doorstep_core::ids::{HouseholdId, RequestId};
use doorstep_core::model::{Household, Request};
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
                        self.households.insert(household.id, HouseholdEntry { household, facts, conflicts });
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
    }

    /// A household, if in `scope`.
    pub fn household(&self, scope: &Scope, id: HouseholdId) -> Option<&HouseholdEntry> {
        self.households.get(&id).filter(|h| scope.may_hold(&h.facts, false))
    }

    /// A request, if in `scope`.
    pub fn request(&self, scope: &Scope, id: RequestId) -> Option<&RequestEntry> {
        self.requests.get(&id).filter(|r| scope.may_hold(&r.facts, self.helps(scope, r)))
    }

    /// Every household in `scope`.
    pub fn households<'a>(&'a self, scope: &'a Scope) -> impl Iterator<Item = &'a HouseholdEntry> + 'a {
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
