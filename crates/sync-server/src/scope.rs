//! Who may see and write which documents (DESIGN.md §2). The server decides this for every
//! document a device asks for or sends; the app's own filtering is a convenience only.

use std::collections::HashSet;

use doorstep_core::doc::DocumentKind;
use doorstep_core::ids::{Code, GridId, MemberId};
pub use doorstep_core::model::Role;
use doorstep_core::sync::validate::DocFacts;

/// What one member may see and write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The member.
    pub member: MemberId,
    /// Their role.
    pub role: Role,
    /// Grids they work or supervise (grid workers, supervisors).
    pub grids: Vec<GridId>,
    /// Their department (department staff).
    pub department: Option<Code>,
}

impl Scope {
    /// May this member hold (read) a document with these facts? `helps_household` says
    /// whether the member is a helper of the request's household (volunteers only).
    pub fn may_hold(&self, facts: &DocFacts, helps_household: bool) -> bool {
        match self.role {
            Role::Admin => true,
            Role::GridWorker | Role::Supervisor => self.grids.contains(&facts.grid),
            Role::Volunteer => match facts.kind {
                DocumentKind::Household => facts.helpers.contains(&self.member),
                DocumentKind::Request => facts.assignee == Some(self.member) || helps_household,
            },
            Role::DepartmentStaff => {
                facts.kind == DocumentKind::Request
                    && facts.department.is_some()
                    && facts.department == self.department
            }
        }
    }

    /// May this member write to a document with these facts? Today the same as holding it:
    /// every role writes what it sees (department staff and volunteers only add events and
    /// visits, which the app enforces and the audit trail shows).
    pub fn may_write(&self, facts: &DocFacts, helps_household: bool) -> bool {
        self.may_hold(facts, helps_household)
    }
}

/// Whom a stored change can concern: the grids, departments and members named by the facts of
/// the documents it touched, before and after. A live connection whose scope meets none of them
/// has nothing new to be pushed, so it is not woken (see `http::ws`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    /// Grids of the documents.
    pub grids: HashSet<GridId>,
    /// Departments the requests are (or were) dispatched to.
    pub departments: HashSet<Code>,
    /// Members who hold the requests, or help with the households (volunteers' scope).
    pub members: HashSet<MemberId>,
}

impl Reach {
    /// Adds one document's facts (helpers of a request's household are added by the caller).
    pub fn add(&mut self, facts: &DocFacts) {
        self.grids.insert(facts.grid);
        self.departments.extend(facts.department.iter().cloned());
        self.members.extend(facts.assignee);
        self.members.extend(facts.helpers.iter().copied());
    }

    /// Whether a change with this reach can be in (or leave) this scope.
    pub fn concerns(&self, scope: &Scope) -> bool {
        match scope.role {
            Role::Admin => true,
            Role::GridWorker | Role::Supervisor => scope.grids.iter().any(|g| self.grids.contains(g)),
            Role::Volunteer => self.members.contains(&scope.member),
            Role::DepartmentStaff => scope.department.as_ref().is_some_and(|d| self.departments.contains(d)),
        }
    }
}
