//! Attribute problems and their order, and the changed attributes of an edit.

use serde_json::{Map, Value};

use super::input::WriteInput;
use crate::{
    Member, Problem, ProblemKind, Row,
    schema::{ResourceSchema, to_wire},
};

/// Problems sorted by where their member stands in the request (absent members last);
/// several problems of one member keep the order they were found in.
pub(super) fn in_document_order(input: &WriteInput, mut problems: Vec<Problem>) -> Vec<Problem> {
    let position = |problem: &Problem| match &problem.member {
        Member::Attribute(name) => input
            .attributes
            .iter()
            .position(|(n, _)| n == name)
            .map_or((2, 0), |i| (0, i)),
        Member::Relationship(name) => input
            .relationships
            .iter()
            .position(|(n, _)| n == name)
            .map_or((3, 0), |i| (1, i)),
    };
    problems.sort_by_key(position);
    problems
}

pub(super) fn unknown_attribute(name: &str) -> Problem {
    Problem {
        member: Member::Attribute(name.to_owned()),
        kind: ProblemKind::UnknownAttribute,
        detail: format!("{name} is not an attribute of this type"),
    }
}

pub(super) fn read_only_attribute(name: &str) -> Problem {
    Problem {
        member: Member::Attribute(name.to_owned()),
        kind: ProblemKind::ReadOnlyAttribute,
        detail: format!("{name} cannot be changed"),
    }
}

/// Old wire values of the attributes that differ between two rows.
pub fn changed_attributes(
    schema: &ResourceSchema,
    before: &Row,
    after: &Row,
) -> Map<String, Value> {
    schema
        .all_attributes()
        .filter(|a| !a.write_only && a.name != "updated_at")
        .filter(|a| before.get(a.name) != after.get(a.name))
        .map(|a| {
            (
                a.name.to_owned(),
                to_wire(a.ty, before.get(a.name).cloned().unwrap_or(Value::Null)),
            )
        })
        .collect()
}
