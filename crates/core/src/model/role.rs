//! Members' roles (DESIGN.md §2). A role decides what a member's devices may hold (the server's
//! scope rules) and which request events they may append ([`Role::may_take`]); the server checks
//! both on every upload, whatever the app shows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::request::EventAction;

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 网格员: households and requests of the grids assigned to them.
    GridWorker,
    /// 志愿者 / 党员中心户: households assigned to them, requests they hold or of those households.
    Volunteer,
    /// 部门工作人员: requests dispatched to their department.
    DepartmentStaff,
    /// 社区/街道负责人: everything in the grids they supervise.
    Supervisor,
    /// 县级管理员: everything.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] =
        [Role::GridWorker, Role::Volunteer, Role::DepartmentStaff, Role::Supervisor, Role::Admin];

    /// The stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::GridWorker => "grid_worker",
            Role::Volunteer => "volunteer",
            Role::DepartmentStaff => "department_staff",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// The Simplified Chinese name.
    pub const fn label_zh(self) -> &'static str {
        match self {
            Role::GridWorker => "网格员",
            Role::Volunteer => "志愿者",
            Role::DepartmentStaff => "部门工作人员",
            Role::Supervisor => "社区负责人",
            Role::Admin => "管理员",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            format!("unknown role {s:?} (one of grid_worker, volunteer, department_staff, supervisor, admin)")
        })
    }
}

impl Role {
    /// May a member of this role append a request event of this kind? The same rule binds the
    /// dashboard, the phones and the server's upload check (DESIGN.md §2):
    ///
    /// | event | grid worker | volunteer | department staff | supervisor, administrator |
    /// |---|---|---|---|---|
    /// | raised (only as a new request's first event) | yes | yes | – | yes |
    /// | resolved on the spot, progress, resolved | yes | yes | progress, resolved | yes |
    /// | accepted, discussed, dispatched, assigned, followed up, reopened, cancelled | yes | – | – | yes |
    /// | claimed | yes | yes | – | yes |
    /// | supervised, closed, reviewed | – | – | – | yes |
    ///
    /// An event kind this build does not know is refused: its rules are not known here.
    pub fn may_take(self, action: &EventAction) -> bool {
        use EventAction as A;
        match self {
            Role::Supervisor | Role::Admin => !matches!(action, A::Unknown { .. }),
            Role::GridWorker => matches!(
                action,
                A::Raised
                    | A::ResolvedOnSpot
                    | A::Accepted
                    | A::Discussed
                    | A::Dispatched { .. }
                    | A::Assigned { .. }
                    | A::Claimed
                    | A::Progress
                    | A::Resolved
                    | A::FollowedUp { .. }
                    | A::Reopened
                    | A::Cancelled
            ),
            Role::Volunteer => {
                matches!(action, A::Raised | A::ResolvedOnSpot | A::Claimed | A::Progress | A::Resolved)
            }
            Role::DepartmentStaff => matches!(action, A::Progress | A::Resolved),
        }
    }

    /// May a member of this role register new households and change a household's helpers?
    /// Grid workers, supervisors and administrators, and only in grids of their scope (the
    /// server checks the grid).
    pub const fn manages_households(self) -> bool {
        matches!(self, Role::GridWorker | Role::Supervisor | Role::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Code, MemberId};
    use crate::lifecycle::RequestStatus;

    #[test]
    fn supervision_close_out_and_review_belong_to_supervisors_and_administrators() {
        let decisive = [
            EventAction::Supervised,
            EventAction::Closed,
            EventAction::Reviewed { outcome: Some(RequestStatus::Closed) },
        ];
        for action in &decisive {
            for role in [Role::GridWorker, Role::Volunteer, Role::DepartmentStaff] {
                assert!(!role.may_take(action), "{role} {action:?}");
            }
            for role in [Role::Supervisor, Role::Admin] {
                assert!(role.may_take(action), "{role} {action:?}");
            }
        }
    }

    #[test]
    fn each_role_takes_its_own_actions_and_nobody_an_unknown_one() {
        let dispatch = EventAction::Dispatched { department: Code::new("civil_affairs").expect("code") };
        assert!(Role::GridWorker.may_take(&dispatch));
        assert!(!Role::Volunteer.may_take(&dispatch));
        assert!(Role::DepartmentStaff.may_take(&EventAction::Resolved));
        assert!(!Role::DepartmentStaff.may_take(&EventAction::Raised));
        assert!(Role::Volunteer.may_take(&EventAction::Claimed));
        assert!(!Role::Volunteer.may_take(&EventAction::Assigned { assignee: MemberId::new_random() }));
        let unknown = EventAction::Unknown { stored_kind: "escalated".into() };
        assert!(Role::ALL.iter().all(|r| !r.may_take(&unknown)));
        assert!(!Role::Volunteer.manages_households() && Role::GridWorker.manages_households());
    }
}
