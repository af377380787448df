//! The reversible mapping between OpenFGA's shorthand and RDF terms (pure strings; the store
//! turns them into Oxigraph terms).
//!
//! | OpenFGA | IRI |
//! |---|---|
//! | object `document:1` | `<{base}document/1>` |
//! | userset `group:eng#member` | `<{base}group/eng#member>` |
//! | wildcard `user:*` | `<{base}user/*>` |
//! | relation `viewer` | `<https://clew.dev/rel/viewer>` |
//!
//! The type and id are percent-encoded (every byte outside `A-Za-z0-9-._~` and, for ids, also
//! `:@!$&'()+,;=`, is written `%XX`), so `/`, `#` and `*` never occur inside an encoded part:
//! the first `/` after the base ends the type, a `#` starts the userset relation, and an id of
//! exactly `*` is the wildcard. Decoding is the exact inverse (tested below for every tuple
//! form OpenFGA accepts).

use crate::tuple::{ObjectRef, User};

/// Clew's vocabulary namespace.
pub const NS: &str = "https://clew.dev/ns#";
/// Namespace of relation predicates.
pub const REL: &str = "https://clew.dev/rel/";
/// Default base of object IRIs.
pub const DEFAULT_BASE: &str = "https://clew.dev/id/";
/// Named graph holding tuples written through Clew.
pub const TUPLES_GRAPH: &str = "https://clew.dev/graph/tuples";
/// Named graph holding the authorization models.
pub const MODELS_GRAPH: &str = "https://clew.dev/graph/models";
/// Named graph holding the change log.
pub const LOG_GRAPH: &str = "https://clew.dev/graph/log";
/// Named graph for pre-existing relationship data imported as-is (e.g. earlier-model tuples).
pub const IMPORTED_GRAPH: &str = "https://clew.dev/graph/imported";

/// `clew:` + a local name.
pub fn ns(local: &str) -> String {
    format!("{NS}{local}")
}

fn encode(part: &str, keep_extra: &str) -> String {
    let mut out = String::with_capacity(part.len());
    encode_into(&mut out, part, keep_extra);
    out
}

/// Appends `part` percent-encoded to `out` (see the module docs).
fn encode_into(out: &mut String, part: &str, keep_extra: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in part.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || "-._~".contains(c) || (b < 128 && keep_extra.contains(c)) {
            out.push(c);
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

fn decode(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes.get(i) {
            Some(b'%') => {
                let hex = part.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            Some(b) => {
                out.push(*b);
                i += 1;
            }
            None => break,
        }
    }
    String::from_utf8(out).ok()
}

const ID_EXTRA: &str = ":@!$&'()+,;=";

/// Maps objects and users to IRIs under a base, and back.
#[derive(Debug, Clone)]
pub struct IriMapper {
    base: String,
}

impl Default for IriMapper {
    fn default() -> Self {
        Self::new(DEFAULT_BASE)
    }
}

impl IriMapper {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_string(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn object(&self, o: &ObjectRef) -> String {
        let mut out = String::new();
        self.push_object(&mut out, o);
        out
    }

    pub fn user(&self, u: &User) -> String {
        let mut out = String::new();
        self.push_user(&mut out, u);
        out
    }

    pub fn relation(&self, r: &str) -> String {
        let mut out = String::new();
        Self::push_relation(&mut out, r);
        out
    }

    /// Appends [`IriMapper::object`]'s IRI to `out` (one buffer reused for many tuples).
    pub fn push_object(&self, out: &mut String, o: &ObjectRef) {
        out.reserve(self.base.len() + o.object_type.len() + o.id.len() + 1);
        out.push_str(&self.base);
        encode_into(out, &o.object_type, "");
        out.push('/');
        encode_into(out, &o.id, ID_EXTRA);
    }

    /// Appends [`IriMapper::user`]'s IRI to `out`.
    pub fn push_user(&self, out: &mut String, u: &User) {
        match u {
            User::Object(o) => self.push_object(out, o),
            User::Userset(o, r) => {
                self.push_object(out, o);
                out.push('#');
                encode_into(out, r, "");
            }
            User::Wildcard(t) => {
                out.push_str(&self.base);
                encode_into(out, t, "");
                out.push_str("/*");
            }
        }
    }

    /// Appends [`IriMapper::relation`]'s IRI to `out`.
    pub fn push_relation(out: &mut String, r: &str) {
        out.reserve(REL.len() + r.len());
        out.push_str(REL);
        encode_into(out, r, "");
    }

    pub fn relation_of(&self, iri: &str) -> Option<String> {
        let r = decode(iri.strip_prefix(REL)?)?;
        crate::tuple::check_relation_name(&r).ok()?;
        Some(r)
    }

    /// The user an IRI denotes, if it is under the base.
    pub fn user_of(&self, iri: &str) -> Option<User> {
        let rest = iri.strip_prefix(&self.base)?;
        let (t, rest) = rest.split_once('/')?;
        let object_type = decode(t)?;
        let (id, relation) = match rest.split_once('#') {
            Some((id, r)) => (id, Some(decode(r)?)),
            None => (rest, None),
        };
        if id == "*" {
            return match relation {
                None => User::parse(&format!("{object_type}:*")).ok(),
                Some(_) => None,
            };
        }
        let object = ObjectRef::parse(&format!("{object_type}:{}", decode(id)?)).ok()?;
        match relation {
            None => Some(User::Object(object)),
            Some(r) => {
                crate::tuple::check_relation_name(&r).ok()?;
                Some(User::Userset(object, r))
            }
        }
    }

    /// The object an IRI denotes, if it is a plain object IRI under the base.
    pub fn object_of(&self, iri: &str) -> Option<ObjectRef> {
        match self.user_of(iri)? {
            User::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The IRI naming a conditional tuple's reification node (deterministic, so a delete finds it).
    pub fn conditional_tuple(&self, object: &ObjectRef, relation: &str, user: &User) -> String {
        format!(
            "https://clew.dev/tuple/{}/{}/{}",
            encode(&object.to_string(), ""),
            encode(relation, ""),
            encode(&user.to_string(), "")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_iri(iri: &str) {
        assert!(oxiri::Iri::parse(iri).is_ok(), "not a valid IRI: {iri:?}");
    }

    proptest! {
        /// The store builds named nodes from these IRIs without parsing them (`store::own`):
        /// whatever the type, id and relation — any Unicode, controls, spaces, `<>"{}|^\``,
        /// `%`, `#`, `/`, `*`, even ones `Tuple::parse` would refuse — the default mapper's
        /// IRIs are valid.
        #[test]
        fn every_encoded_iri_is_valid(
            object_type in any::<String>(),
            id in any::<String>(),
            relation in any::<String>(),
            hostile in proptest::collection::vec(
                prop_oneof![
                    any::<char>(),
                    proptest::sample::select(
                        " \t\n\u{0}\u{7f}\u{80}\u{ff}\u{fffd}%#/*<>\"{}|^`\\?:@!$&'()+,;=[]"
                            .chars()
                            .collect::<Vec<_>>()
                    ),
                ],
                0..12,
            )
            .prop_map(String::from_iter),
        ) {
            let m = IriMapper::default();
            for (t, i, r) in [
                (object_type.as_str(), id.as_str(), relation.as_str()),
                (hostile.as_str(), hostile.as_str(), hostile.as_str()),
                ("", "", ""),
                ("*", "*", "*"),
            ] {
                let o = ObjectRef::new(t.to_string(), i.to_string());
                assert_iri(&m.object(&o));
                assert_iri(&m.user(&User::Object(o.clone())));
                assert_iri(&m.user(&User::Userset(o.clone(), r.to_string())));
                assert_iri(&m.user(&User::Wildcard(t.to_string())));
                assert_iri(&m.relation(r));
                assert_iri(&m.conditional_tuple(&o, r, &User::Userset(o.clone(), r.to_string())));
            }
        }
    }

    proptest! {
        /// The buffer-filling forms write what the `format!` forms always wrote.
        #[test]
        fn encoding_is_unchanged(t in any::<String>(), id in any::<String>(), r in any::<String>()) {
            fn old_encode(part: &str, keep_extra: &str) -> String {
                let mut out = String::new();
                for b in part.bytes() {
                    let c = b as char;
                    if c.is_ascii_alphanumeric()
                        || "-._~".contains(c)
                        || (b < 128 && keep_extra.contains(c))
                    {
                        out.push(c);
                    } else {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
                out
            }
            let m = IriMapper::default();
            let o = ObjectRef::new(t.clone(), id.clone());
            let object = format!("{DEFAULT_BASE}{}/{}", old_encode(&t, ""), old_encode(&id, ID_EXTRA));
            prop_assert_eq!(m.object(&o), object.clone());
            prop_assert_eq!(m.user(&User::Object(o.clone())), object.clone());
            prop_assert_eq!(
                m.user(&User::Userset(o.clone(), r.clone())),
                format!("{object}#{}", old_encode(&r, ""))
            );
            prop_assert_eq!(
                m.user(&User::Wildcard(t.clone())),
                format!("{DEFAULT_BASE}{}/*", old_encode(&t, ""))
            );
            prop_assert_eq!(m.relation(&r), format!("{REL}{}", old_encode(&r, "")));
            let mut buf = String::from("leftover");
            buf.clear();
            m.push_user(&mut buf, &User::Userset(o, r.clone()));
            prop_assert_eq!(buf, format!("{object}#{}", old_encode(&r, "")));
        }
    }

    #[test]
    fn the_default_base_is_an_iri_ending_in_a_slash() {
        assert_eq!(IriMapper::default().base(), DEFAULT_BASE);
        assert_iri(DEFAULT_BASE);
        assert!(DEFAULT_BASE.ends_with('/') && !DEFAULT_BASE.contains(['?', '#']));
    }

    #[test]
    fn round_trips_every_user_form() {
        let m = IriMapper::default();
        for text in [
            "user:anne",
            "user:*",
            "group:eng#member",
            "a/b:c/d#e.f",
            "doc:x#y",
            "doc:with:colons",
            "doc:ünïcode%20x",
            "doc:a*b",
            "_.a_/_b._:1",
            "t:id#r/s",
        ] {
            let Ok(user) = User::parse(text) else {
                continue;
            };
            let iri = m.user(&user);
            assert!(!iri.contains(' '));
            assert_eq!(m.user_of(&iri), Some(user.clone()), "{text} -> {iri}");
        }
        assert_eq!(
            m.user(&User::parse("group:eng#member").unwrap()),
            "https://clew.dev/id/group/eng#member"
        );
        assert_eq!(
            m.object(&ObjectRef::parse("a/b:x/y").unwrap()),
            "https://clew.dev/id/a%2Fb/x%2Fy"
        );
        assert_eq!(
            m.relation_of(&m.relation("can.view")),
            Some("can.view".into())
        );
        assert_eq!(m.user_of("https://other.example/user/anne"), None);
        assert_eq!(m.user_of("https://clew.dev/id/user/%ZZ"), None);
    }
}
