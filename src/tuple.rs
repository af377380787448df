//! Relationship tuples in OpenFGA's shorthand: objects `type:id`, users `type:id`,
//! `type:id#relation` (a userset) or `type:*` (a wildcard), and an optional condition.
//!
//! Invariant: a parsed [`ObjectRef`] has a non-empty type without `:`, `#`, `@` or whitespace and
//! a non-empty id without `#` or whitespace; `*` is never a concrete id (it only appears as
//! [`User::Wildcard`]). Parsing is the only way to build these from untrusted text.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest object string OpenFGA accepts (`type:id`).
pub const MAX_OBJECT_LEN: usize = 256;
/// Longest user string OpenFGA accepts (`type:id#relation`).
pub const MAX_USER_LEN: usize = 512;
/// Longest relation name OpenFGA accepts.
pub const MAX_RELATION_LEN: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TupleError {
    #[error("invalid object '{0}': {1}")]
    Object(String, &'static str),
    #[error("invalid user '{0}': {1}")]
    User(String, &'static str),
    #[error("invalid relation '{0}': {1}")]
    Relation(String, &'static str),
}

/// A concrete object `type:id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub object_type: String,
    pub id: String,
}

impl ObjectRef {
    pub fn new(object_type: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            object_type: object_type.into(),
            id: id.into(),
        }
    }

    /// Parses `type:id`. The id is everything after the first `:`.
    pub fn parse(text: &str) -> Result<Self, TupleError> {
        let (object_type, id) = Self::validate(text)?;
        Ok(Self::new(object_type, id))
    }

    /// Checks `type:id` as [`ObjectRef::parse`] does, without allocating; returns the parts.
    pub fn validate(text: &str) -> Result<(&str, &str), TupleError> {
        let err = |why| TupleError::Object(text.to_string(), why);
        if text.len() > MAX_OBJECT_LEN {
            return Err(err("longer than 256 bytes"));
        }
        let (object_type, id) = text
            .split_once(':')
            .ok_or_else(|| err("expected 'type:id'"))?;
        check_type_name(object_type).map_err(err)?;
        if id.is_empty() {
            return Err(err("empty id"));
        }
        if id == "*" {
            return Err(err("'*' is a wildcard, not an object id"));
        }
        if id.chars().any(|c| c == '#' || c.is_whitespace()) {
            return Err(err("the id contains '#' or whitespace"));
        }
        Ok((object_type, id))
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object_type, self.id)
    }
}

fn check_type_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty type");
    }
    if name
        .chars()
        .any(|c| matches!(c, ':' | '#' | '@' | '*') || c.is_whitespace())
    {
        return Err("the type contains ':', '#', '@', '*' or whitespace");
    }
    Ok(())
}

/// Checks a relation name as OpenFGA does (`^[^:#@\s]{1,50}$`).
pub fn check_relation_name(name: &str) -> Result<(), TupleError> {
    let err = |why| TupleError::Relation(name.to_string(), why);
    if name.is_empty() {
        return Err(err("empty relation"));
    }
    if name.len() > MAX_RELATION_LEN {
        return Err(err("longer than 50 bytes"));
    }
    if name
        .chars()
        .any(|c| matches!(c, ':' | '#' | '@' | '*') || c.is_whitespace())
    {
        return Err(err(
            "the relation contains ':', '#', '@', '*' or whitespace",
        ));
    }
    Ok(())
}

/// The user side of a tuple.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum User {
    /// `user:anne`
    Object(ObjectRef),
    /// `group:eng#member`: every user with `member` on `group:eng`.
    Userset(ObjectRef, String),
    /// `user:*`: every user of that type.
    Wildcard(String),
}

impl User {
    pub fn parse(text: &str) -> Result<Self, TupleError> {
        let err = |why| TupleError::User(text.to_string(), why);
        if text.len() > MAX_USER_LEN {
            return Err(err("longer than 512 bytes"));
        }
        if let Some((object, relation)) = text.split_once('#') {
            let object =
                ObjectRef::parse(object).map_err(|_| err("expected 'type:id#relation'"))?;
            check_relation_name(relation).map_err(|_| err("invalid relation after '#'"))?;
            return Ok(User::Userset(object, relation.to_string()));
        }
        if let Some(object_type) = text.strip_suffix(":*") {
            check_type_name(object_type).map_err(err)?;
            return Ok(User::Wildcard(object_type.to_string()));
        }
        ObjectRef::parse(text)
            .map(User::Object)
            .map_err(|_| err("expected 'type:id', 'type:id#relation' or 'type:*'"))
    }

    /// The type of the user: `user` for `user:anne` and `user:*`, `group` for `group:eng#member`.
    pub fn user_type(&self) -> &str {
        match self {
            User::Object(o) | User::Userset(o, _) => &o.object_type,
            User::Wildcard(t) => t,
        }
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            User::Object(o) => write!(f, "{o}"),
            User::Userset(o, r) => write!(f, "{o}#{r}"),
            User::Wildcard(t) => write!(f, "{t}:*"),
        }
    }
}

impl Serialize for ObjectRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for User {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A condition attached to a tuple: its name and the parameter values written with it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TupleCondition {
    pub name: String,
    #[serde(default)]
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// One relationship: `user` has `relation` on `object`, optionally under a condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuple {
    pub object: ObjectRef,
    pub relation: String,
    pub user: User,
    pub condition: Option<TupleCondition>,
}

impl Tuple {
    pub fn parse(user: &str, relation: &str, object: &str) -> Result<Self, TupleError> {
        check_relation_name(relation)?;
        Ok(Self {
            object: ObjectRef::parse(object)?,
            relation: relation.to_string(),
            user: User::parse(user)?,
            condition: None,
        })
    }

    pub fn with_condition(mut self, condition: Option<TupleCondition>) -> Self {
        self.condition = condition;
        self
    }

    /// The key that identifies the tuple (OpenFGA allows one tuple per key, with or without a
    /// condition).
    pub fn key(&self) -> TupleKey {
        TupleKey {
            object: self.object.clone(),
            relation: self.relation.clone(),
            user: self.user.clone(),
        }
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.object, self.relation, self.user)?;
        if let Some(c) = &self.condition {
            write!(f, " with {}", c.name)?;
        }
        Ok(())
    }
}

/// A tuple without its condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TupleKey {
    pub object: ObjectRef,
    pub relation: String,
    pub user: User,
}

impl fmt::Display for TupleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.object, self.relation, self.user)
    }
}

/// The JSON/YAML shape of a tuple in files and requests (`{user, relation, object, condition}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TupleSpec {
    pub user: String,
    pub relation: String,
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<TupleCondition>,
}

impl TupleSpec {
    pub fn to_tuple(&self) -> Result<Tuple, TupleError> {
        Ok(Tuple::parse(&self.user, &self.relation, &self.object)?
            .with_condition(self.condition.clone()))
    }
}

impl From<&Tuple> for TupleSpec {
    fn from(t: &Tuple) -> Self {
        Self {
            user: t.user.to_string(),
            relation: t.relation.clone(),
            object: t.object.to_string(),
            condition: t.condition.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_user_forms() {
        assert_eq!(
            User::parse("user:anne").unwrap(),
            User::Object(ObjectRef::new("user", "anne"))
        );
        assert_eq!(
            User::parse("group:eng#member").unwrap(),
            User::Userset(ObjectRef::new("group", "eng"), "member".into())
        );
        assert_eq!(
            User::parse("user:*").unwrap(),
            User::Wildcard("user".into())
        );
        for (text, user) in [
            ("user:anne", "user:anne"),
            ("group:eng#member", "group:eng#member"),
            ("user:*", "user:*"),
            ("doc:a:b", "doc:a:b"),
        ] {
            assert_eq!(User::parse(text).unwrap().to_string(), user);
        }
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "user",
            ":x",
            "user:",
            "user: x",
            "us er:x",
            "user:a#",
            "#member",
            "user:*#r",
            "group:x#",
            "group:x#a b",
        ] {
            assert!(User::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        for bad in ["", "doc", "doc:", ":1", "doc:*", "doc:1#viewer", "do c:1"] {
            assert!(ObjectRef::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(ObjectRef::parse(&format!("doc:{}", "x".repeat(300))).is_err());
        assert!(check_relation_name(&"r".repeat(51)).is_err());
        assert!(check_relation_name("a:b").is_err());
    }
}
