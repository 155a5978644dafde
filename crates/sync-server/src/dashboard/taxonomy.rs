//! The county's own categories and departments: the administrator adds, renames and retires
//! them on the dashboard. Every edit raises the taxonomy's version; devices holding an older
//! version receive the new one with their next sync (`docs/PROTOCOL.md`, "County taxonomy").
//!
//! Retiring never deletes: a retired entry keeps its code and names, so requests raised in it
//! still show its name; it is only no longer offered for new requests or dispatches.

use doorstep_core::ids::Code;
use doorstep_core::model::{Category, Department, Taxonomy};

use crate::storage::{Storage, StorageError};

/// One administrator's edit of the taxonomy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaxonomyEdit {
    /// A new category, owned by default by an (active) department.
    AddCategory {
        /// Code (kept for ever).
        code: String,
        /// Chinese name.
        name_zh: String,
        /// English name.
        name_en: String,
        /// Default department's code.
        department: String,
        /// Hours from raising to the due time.
        due_hours: u32,
    },
    /// A new department.
    AddDepartment {
        /// Code (kept for ever).
        code: String,
        /// Chinese name.
        name_zh: String,
        /// English name.
        name_en: String,
    },
    /// New names for a category.
    RenameCategory {
        /// Code.
        code: String,
        /// Chinese name.
        name_zh: String,
        /// English name.
        name_en: String,
    },
    /// New names for a department.
    RenameDepartment {
        /// Code.
        code: String,
        /// Chinese name.
        name_zh: String,
        /// English name.
        name_en: String,
    },
    /// Retires (`true`) or reinstates (`false`) a category.
    RetireCategory {
        /// Code.
        code: String,
        /// Retired from now on.
        retired: bool,
    },
    /// Retires (`true`) or reinstates (`false`) a department.
    RetireDepartment {
        /// Code.
        code: String,
        /// Retired from now on.
        retired: bool,
    },
}

/// Why an edit was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaxonomyEditError {
    /// The code is empty, too long or has characters codes may not have.
    #[error("invalid code {0:?}")]
    InvalidCode(String),
    /// A name is empty or too long.
    #[error("names must be 1 to {MAX_NAME_CHARS} characters")]
    InvalidName,
    /// The due time is zero or longer than a year.
    #[error("the due time must be 1 to 8760 hours")]
    InvalidDueHours,
    /// The code is already used (perhaps by a retired entry, which can be reinstated).
    #[error("code {0} already exists")]
    Exists(String),
    /// No category or department with this code.
    #[error("unknown code {0}")]
    Unknown(String),
    /// The department is retired: new categories cannot default to it.
    #[error("department {0} is retired")]
    RetiredDepartment(String),
    /// Active categories still default to the department being retired.
    #[error("categories still default to department {0}")]
    DepartmentInUse(String),
    /// The version cannot be raised any further.
    #[error("the taxonomy version is exhausted")]
    VersionExhausted,
}

/// Longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;

fn code(text: &str) -> Result<Code, TaxonomyEditError> {
    Code::new(text.trim()).map_err(|_| TaxonomyEditError::InvalidCode(text.chars().take(64).collect()))
}

fn names(zh: &str, en: &str) -> Result<(String, String), TaxonomyEditError> {
    let (zh, en) = (zh.trim(), en.trim());
    let ok = |s: &str| !s.is_empty() && s.chars().count() <= MAX_NAME_CHARS;
    if ok(zh) && ok(en) { Ok((zh.to_owned(), en.to_owned())) } else { Err(TaxonomyEditError::InvalidName) }
}

/// Applies `edit` to `current`, returning the new taxonomy with its version raised by one.
pub fn edit(current: &Taxonomy, edit: &TaxonomyEdit) -> Result<Taxonomy, TaxonomyEditError> {
    let mut next = current.clone();
    next.version = current.version.checked_add(1).ok_or(TaxonomyEditError::VersionExhausted)?;
    match edit {
        TaxonomyEdit::AddCategory { code: c, name_zh, name_en, department, due_hours } => {
            let c = code(c)?;
            let (name_zh, name_en) = names(name_zh, name_en)?;
            if next.categories.iter().any(|x| x.code == c) {
                return Err(TaxonomyEditError::Exists(c.to_string()));
            }
            let department = code(department)?;
            match next.department(department.as_str()) {
                None => return Err(TaxonomyEditError::Unknown(department.to_string())),
                Some(d) if d.retired => {
                    return Err(TaxonomyEditError::RetiredDepartment(department.to_string()));
                }
                Some(_) => {}
            }
            if !(1..=8760).contains(due_hours) {
                return Err(TaxonomyEditError::InvalidDueHours);
            }
            next.categories.push(Category {
                code: c,
                name_zh,
                name_en,
                department,
                due_hours: *due_hours,
                retired: false,
            });
        }
        TaxonomyEdit::AddDepartment { code: c, name_zh, name_en } => {
            let c = code(c)?;
            let (name_zh, name_en) = names(name_zh, name_en)?;
            if next.departments.iter().any(|x| x.code == c) {
                return Err(TaxonomyEditError::Exists(c.to_string()));
            }
            next.departments.push(Department { code: c, name_zh, name_en, retired: false });
        }
        TaxonomyEdit::RenameCategory { code: c, name_zh, name_en } => {
            let (zh, en) = names(name_zh, name_en)?;
            let category = next
                .categories
                .iter_mut()
                .find(|x| x.code.as_str() == c.trim())
                .ok_or_else(|| TaxonomyEditError::Unknown(c.chars().take(64).collect()))?;
            category.name_zh = zh;
            category.name_en = en;
        }
        TaxonomyEdit::RenameDepartment { code: c, name_zh, name_en } => {
            let (zh, en) = names(name_zh, name_en)?;
            let department = next
                .departments
                .iter_mut()
                .find(|x| x.code.as_str() == c.trim())
                .ok_or_else(|| TaxonomyEditError::Unknown(c.chars().take(64).collect()))?;
            department.name_zh = zh;
            department.name_en = en;
        }
        TaxonomyEdit::RetireCategory { code: c, retired } => {
            let category = next
                .categories
                .iter_mut()
                .find(|x| x.code.as_str() == c.trim())
                .ok_or_else(|| TaxonomyEditError::Unknown(c.chars().take(64).collect()))?;
            category.retired = *retired;
            let department = category.department.clone();
            if !retired && next.department(department.as_str()).is_some_and(|d| d.retired) {
                return Err(TaxonomyEditError::RetiredDepartment(department.to_string()));
            }
        }
        TaxonomyEdit::RetireDepartment { code: c, retired } => {
            let c = c.trim();
            if *retired && next.active_categories().any(|x| x.department.as_str() == c) {
                return Err(TaxonomyEditError::DepartmentInUse(c.to_owned()));
            }
            let department = next
                .departments
                .iter_mut()
                .find(|x| x.code.as_str() == c)
                .ok_or_else(|| TaxonomyEditError::Unknown(c.chars().take(64).collect()))?;
            department.retired = *retired;
        }
    }
    // Edits keep every invariant a file is checked for; a failure here is a bug, not input.
    next.validate().map_err(|_| TaxonomyEditError::Unknown("taxonomy".into()))?;
    Ok(next)
}

/// The taxonomy in force: the county's as last edited, or `shipped` before the first edit.
pub fn in_force(storage: &dyn Storage, shipped: &Taxonomy) -> Result<Taxonomy, StorageError> {
    Ok(storage.county_taxonomy()?.unwrap_or_else(|| shipped.clone()))
}

/// What a device that holds taxonomy `known` should receive, on a round from `cursor`: the
/// taxonomy in force (the county's as edited, or `shipped` before any edit) when it is newer
/// than `known`; nothing otherwise. A device that does not say (`None`: a client older than
/// the field, or one that never thought of it) gets it on a round from the start (cursor 0), so
/// a client in any language learns the categories, departments and due times with its first
/// download, edited or not, without an older client paying for it every round.
pub fn for_device(
    storage: &dyn Storage,
    shipped: &Taxonomy,
    known: Option<u32>,
    cursor: u64,
) -> Result<Option<Taxonomy>, StorageError> {
    let known = match known {
        Some(known) => known,
        None if cursor == 0 => 0,
        None => return Ok(None),
    };
    // Most rounds: the device is up to date, and only the version is read.
    let version = storage.county_taxonomy_version()?.unwrap_or(shipped.version);
    if version <= known {
        return Ok(None);
    }
    Ok(Some(in_force(storage, shipped)?).filter(|t| t.version > known))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_category(code: &str, department: &str) -> TaxonomyEdit {
        TaxonomyEdit::AddCategory {
            code: code.into(),
            name_zh: "加装电梯".into(),
            name_en: "Lift installation".into(),
            department: department.into(),
            due_hours: 72,
        }
    }

    #[test]
    fn every_edit_raises_the_version_and_retiring_keeps_the_entry() {
        let shipped = Taxonomy::default_county();
        let added = edit(&shipped, &add_category("lift_installation", "housing_construction")).expect("add");
        assert_eq!(added.version, shipped.version + 1);
        let retired =
            edit(&added, &TaxonomyEdit::RetireCategory { code: "lift_installation".into(), retired: true })
                .expect("retire");
        assert_eq!(retired.version, shipped.version + 2);
        assert!(retired.category("lift_installation").expect("kept").retired);
        assert!(!retired.active_categories().any(|c| c.code.as_str() == "lift_installation"));
    }

    #[test]
    fn bad_edits_are_refused() {
        let shipped = Taxonomy::default_county();
        assert!(matches!(
            edit(&shipped, &add_category("other", "health")),
            Err(TaxonomyEditError::Exists(_))
        ));
        assert!(matches!(edit(&shipped, &add_category("x", "nowhere")), Err(TaxonomyEditError::Unknown(_))));
        assert!(matches!(
            edit(&shipped, &add_category("bad code!", "health")),
            Err(TaxonomyEditError::InvalidCode(_))
        ));
        assert!(matches!(
            edit(&shipped, &TaxonomyEdit::RetireDepartment { code: "health".into(), retired: true }),
            Err(TaxonomyEditError::DepartmentInUse(_))
        ));
        assert!(matches!(
            edit(
                &shipped,
                &TaxonomyEdit::RenameDepartment {
                    code: "health".into(),
                    name_zh: " ".into(),
                    name_en: "x".into()
                }
            ),
            Err(TaxonomyEditError::InvalidName)
        ));
    }
}
