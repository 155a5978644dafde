//! The county's request taxonomy: categories, each with a default department and a due time.
//! A county may replace the default (shipped as `data/taxonomy.json`) with its own file.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::ids::{CategoryCode, DepartmentCode};

const DEFAULT_TAXONOMY: &str = include_str!("../../data/taxonomy.json");

/// A department that requests can be dispatched (转办) to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    /// Stable code.
    pub code: DepartmentCode,
    /// Simplified Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Retired by the county: no longer offered for new requests or dispatches, but kept so
    /// existing requests still show its name.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retired: bool,
}

/// A request category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// Stable code.
    pub code: CategoryCode,
    /// Simplified Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// The department that owns requests of this category by default.
    pub department: DepartmentCode,
    /// Hours from raising to the due time.
    pub due_hours: u32,
    /// Retired by the county: no longer offered for new requests, but kept so existing
    /// requests still show its name.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retired: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A county's categories and departments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taxonomy {
    /// Version of this county's taxonomy, raised by the administrator on each change.
    pub version: u32,
    /// Departments.
    pub departments: Vec<Department>,
    /// Categories.
    pub categories: Vec<Category>,
}

impl Taxonomy {
    /// The taxonomy Doorstep ships with: the common categories of grid work.
    ///
    /// ```
    /// let taxonomy = doorstep_core::model::Taxonomy::default_county();
    /// let repair = taxonomy.category("facility_repair").expect("shipped");
    /// assert_eq!(repair.name_zh, "设施维修");
    /// ```
    pub fn default_county() -> Self {
        // The shipped file is checked by a unit test, so it always parses.
        Self::from_json(DEFAULT_TAXONOMY).unwrap_or_else(|_| Self {
            version: 0,
            departments: Vec::new(),
            categories: Vec::new(),
        })
    }

    /// Reads and checks a taxonomy from JSON (the format of `data/taxonomy.json`).
    pub fn from_json(json: &str) -> Result<Self> {
        let taxonomy: Taxonomy =
            serde_json::from_str(json).map_err(|e| CoreError::InvalidTaxonomy(e.to_string()))?;
        taxonomy.check()?;
        Ok(taxonomy)
    }

    fn check(&self) -> Result<()> {
        let departments: HashSet<&str> = self.departments.iter().map(|d| d.code.as_str()).collect();
        if departments.len() != self.departments.len() {
            return Err(CoreError::InvalidTaxonomy("duplicate department code".into()));
        }
        let mut seen = HashSet::new();
        for category in &self.categories {
            if !seen.insert(category.code.as_str()) {
                return Err(CoreError::InvalidTaxonomy(format!("duplicate category {}", category.code)));
            }
            if !departments.contains(category.department.as_str()) {
                return Err(CoreError::InvalidTaxonomy(format!(
                    "category {} names unknown department {}",
                    category.code, category.department
                )));
            }
            if category.due_hours == 0 {
                return Err(CoreError::InvalidTaxonomy(format!(
                    "category {} has no due time",
                    category.code
                )));
            }
        }
        Ok(())
    }

    /// The category with this code.
    pub fn category(&self, code: &str) -> Result<&Category> {
        self.categories
            .iter()
            .find(|c| c.code.as_str() == code)
            .ok_or_else(|| CoreError::UnknownCategory(code.chars().take(64).collect()))
    }

    /// The department with this code, if the county has it.
    pub fn department(&self, code: &str) -> Option<&Department> {
        self.departments.iter().find(|d| d.code.as_str() == code)
    }

    /// The categories offered for new requests (not retired).
    pub fn active_categories(&self) -> impl Iterator<Item = &Category> {
        self.categories.iter().filter(|c| !c.retired)
    }

    /// The departments offered for new dispatches (not retired).
    pub fn active_departments(&self) -> impl Iterator<Item = &Department> {
        self.departments.iter().filter(|d| !d.retired)
    }

    /// Checks a taxonomy built in code (e.g. edited by the county administrator) the same way
    /// [`Taxonomy::from_json`] checks a file.
    pub fn validate(&self) -> Result<()> {
        self.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_taxonomy_parses_and_has_the_common_categories() {
        let taxonomy = Taxonomy::from_json(DEFAULT_TAXONOMY).expect("shipped file is valid");
        for code in [
            "sanitation",
            "facility_repair",
            "neighbour_dispute",
            "property_management",
            "elderly_care",
            "health",
            "public_safety_fire",
            "policy_question",
            "hardship_assistance",
            "micro_wish",
            "employment",
            "other",
        ] {
            let category = taxonomy.category(code).expect(code);
            assert!(!category.name_zh.is_empty() && !category.name_en.is_empty());
            assert!(taxonomy.department(category.department.as_str()).is_some());
        }
    }

    #[test]
    fn a_category_with_an_unknown_department_is_refused() {
        let json = r#"{"version":1,"departments":[],"categories":[
            {"code":"x","name_zh":"x","name_en":"x","department":"nowhere","due_hours":1}]}"#;
        assert!(matches!(Taxonomy::from_json(json), Err(CoreError::InvalidTaxonomy(_))));
    }

    #[test]
    fn retired_entries_read_from_older_files_and_are_not_offered() {
        let json = r#"{"version":2,"departments":[
            {"code":"d","name_zh":"部门","name_en":"dept"},
            {"code":"old","name_zh":"旧","name_en":"old","retired":true}],"categories":[
            {"code":"x","name_zh":"x","name_en":"x","department":"old","due_hours":1,"retired":true},
            {"code":"y","name_zh":"y","name_en":"y","department":"d","due_hours":1}]}"#;
        let taxonomy = Taxonomy::from_json(json).expect("valid");
        assert!(taxonomy.category("x").expect("kept for its name").retired);
        assert_eq!(taxonomy.active_categories().map(|c| c.code.as_str()).collect::<Vec<_>>(), ["y"]);
        assert_eq!(taxonomy.active_departments().count(), 1);
        assert!(!Taxonomy::default_county().categories.iter().any(|c| c.retired));
    }

    #[test]
    fn an_unknown_category_is_a_typed_error() {
        let taxonomy = Taxonomy::default_county();
        assert!(matches!(taxonomy.category("flying_cars"), Err(CoreError::UnknownCategory(_))));
    }
}
