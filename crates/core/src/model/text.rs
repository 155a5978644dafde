//! Limits on user-typed text, in one place. Counts are in characters (a Chinese character is one).

use crate::error::{CoreError, Result};

/// Names of people and places (resident name, building, room…).
pub const SHORT_TEXT_MAX: usize = 64;
/// Free text: visit notes, request descriptions, event notes.
pub const LONG_TEXT_MAX: usize = 4_000;
/// A phone number as typed: digits, spaces, `+`, `-`, parentheses.
pub const PHONE_MAX: usize = 24;

/// Trims `value` and checks it is non-empty and at most `max` characters.
pub fn required(field: &'static str, value: &str, max: usize) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(CoreError::EmptyText { field });
    }
    optional(field, trimmed, max)
}

/// Trims `value` and checks it is at most `max` characters; empty is allowed.
pub fn optional(field: &'static str, value: &str, max: usize) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.chars().count() > max {
        return Err(CoreError::TextTooLong { field, max });
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(CoreError::InvalidValue { field, reason: "contains control characters".into() });
    }
    Ok(trimmed.to_owned())
}

/// Checks a phone number: empty, or digits with `+ - ( )` and spaces, at most [`PHONE_MAX`].
pub fn phone(value: &str) -> Result<String> {
    let phone = optional("phone", value, PHONE_MAX)?;
    let allowed = |c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')');
    if !phone.chars().all(allowed) {
        return Err(CoreError::InvalidValue {
            field: "phone",
            reason: "only digits, spaces and + - ( ) are allowed".into(),
        });
    }
    Ok(phone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_text_is_trimmed_and_checked() {
        assert_eq!(required("name", "  王芳 ", 64).expect("ok"), "王芳");
        assert!(matches!(required("name", "   ", 64), Err(CoreError::EmptyText { field: "name" })));
        let long = "长".repeat(65);
        assert!(matches!(
            required("name", &long, 64),
            Err(CoreError::TextTooLong { field: "name", max: 64 })
        ));
        assert!(required("name", &"长".repeat(64), 64).is_ok());
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(optional("notes", "a\u{0}b", 10).is_err());
        assert!(optional("notes", "line\nline", 10).is_ok());
    }

    #[test]
    fn phones_are_checked() {
        assert_eq!(phone(" 138-0000-0000 ").expect("ok"), "138-0000-0000");
        assert!(phone("call me").is_err());
        assert!(phone("").is_ok());
    }
}
