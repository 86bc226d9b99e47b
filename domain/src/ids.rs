//! Resource ids: a type prefix plus a 26-character ULID (`usr_01JD0R…`), time-sortable.

/// Checks the shape of an id for the given prefix (`usr_` + 26 Crockford base32 characters).
pub fn is_valid_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 26 && ulid::Ulid::from_string(rest).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_prefix_and_ulid() {
        assert!(is_valid_id("usr_", "usr_01JD0R8D2S4F6H8K0M2P4R6T8V"));
        assert!(!is_valid_id("usr_", "pln_01JD0R8D2S4F6H8K0M2P4R6T8V"));
        assert!(!is_valid_id("usr_", "usr_123"));
        assert!(!is_valid_id("usr_", "usr_01JD0R8D2S4F6H8K0M2P4R6T8!"));
    }
}
