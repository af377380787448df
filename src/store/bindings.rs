//! Bindings: reading a knowledge graph written in other vocabularies (FOAF, ORG, DCAT, PROV-O,
//! Dublin Core, a company's own) as relationship tuples, under the RDFS/OWL axioms it states.
//! The terms are declared in `ontology/clew.ttl`, section 4.
//!
//! **Types.** A `clew:TypeBinding` names a model type (`clew:bindsType`) and how its objects
//! appear in the graph: IRI spaces (`clew:iriPrefix`, with an optional `clew:idPrefix`:
//! `type:{idPrefix}{rest}` ↔ `<{iriPrefix}{rest}>`, the rest verbatim), and/or a class
//! (`clew:toClass`). A node is an object of a bound type when its IRI is in one of the type's
//! spaces (the id read from it maps back to exactly that IRI) and, if the type has a class, the
//! node has `rdf:type` that class or one of its `rdfs:subClassOf` descendants. A type with a
//! class and no space names its objects by their full IRI. Clew's own IRIs
//! (`<{base}{type}/{id}>`) are always objects of their type.
//!
//! **Relations.** A `clew:RelationBinding` reads triples of a property (`clew:toProperty`) as
//! tuples of `type#relation`: `<object> p <user>`, or `<user> p <object>` with
//! `clew:inverse true`. A property that is `rdfs:subPropertyOf` a bound one (transitively), or
//! `owl:inverseOf` one (read both ways, flipping the triple), is read the same way. The user end
//! is typed by the model: a type the relation admits directly gives `type:id`; a type it admits
//! only as one userset `type#rel` gives `type:id#rel`; anything else is not a tuple (the triple
//! is kept, and ignored). Tuples read this way are unconditional.
//!
//! **Transitivity.** When the bound property is an `owl:TransitiveProperty` and the relation
//! admits its own type directly (`define parent: [folder]`), every pair joined by a chain of such
//! triples is a tuple.
//!
//! A tuple read from several triples is one tuple: it holds while any of them is stored.
//! Every tuple read carries its provenance (the stored triples, the binding, and the axioms it
//! relied on) for explanations.

use super::StoreError;
use crate::engine::Triple;
use crate::iri::{IriMapper, LOG_GRAPH, MODELS_GRAPH, NS, REL};
use crate::model::RestrictionKind;
use crate::model::typesystem::TypeSystem;
use crate::tuple::{ObjectRef, Tuple, TupleKey, User};
use oxigraph::model::{GraphName, NamedNode, NamedNodeRef, NamedOrBlankNode, Quad, Term, TermRef};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

pub const RDFS_SUBCLASS_OF: &str = "http://www.w3.org/2000/01/rdf-schema#subClassOf";
pub const RDFS_SUBPROPERTY_OF: &str = "http://www.w3.org/2000/01/rdf-schema#subPropertyOf";
pub const OWL_INVERSE_OF: &str = "http://www.w3.org/2002/07/owl#inverseOf";
pub const OWL_TRANSITIVE: &str = "http://www.w3.org/2002/07/owl#TransitiveProperty";
const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";

/// The most pairs a transitive closure may produce for one change before the write is refused.
pub const MAX_CLOSURE: usize = 1_000_000;

/// The binding properties (`clew:` local names) whose triples change the vocabulary.
const BINDING_TERMS: [&str; 7] = [
    "bindsType",
    "bindsRelation",
    "toClass",
    "toProperty",
    "inverse",
    "iriPrefix",
    "idPrefix",
];

/// A binding that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("binding <{binding}>: {problem}")]
pub struct BindingError {
    pub binding: String,
    pub problem: String,
}

/// Read access to the data graphs: every graph but Clew's change log and models.
pub(crate) trait Source {
    fn find(
        &self,
        s: Option<NamedNodeRef<'_>>,
        p: Option<NamedNodeRef<'_>>,
        o: Option<TermRef<'_>>,
    ) -> Result<Vec<Quad>, StoreError>;
}

fn data_graph(g: &GraphName) -> bool {
    match g {
        GraphName::NamedNode(n) => !matches!(n.as_str(), LOG_GRAPH | MODELS_GRAPH),
        GraphName::DefaultGraph => true,
        GraphName::BlankNode(_) => false,
    }
}

macro_rules! impl_source {
    ($t:ty) => {
        impl Source for $t {
            fn find(
                &self,
                s: Option<NamedNodeRef<'_>>,
                p: Option<NamedNodeRef<'_>>,
                o: Option<TermRef<'_>>,
            ) -> Result<Vec<Quad>, StoreError> {
                let mut out = Vec::new();
                for q in self.quads_for_pattern(s.map(Into::into), p, o, None) {
                    let q = q?;
                    if data_graph(&q.graph_name) {
                        out.push(q);
                    }
                }
                Ok(out)
            }
        }
    };
}
impl_source!(oxigraph::store::Store);
impl_source!(oxigraph::store::Transaction<'_>);

fn iri(s: &str) -> Result<NamedNode, StoreError> {
    NamedNode::new(s).map_err(|e| StoreError::Corrupt(format!("IRI <{s}>: {e}")))
}

fn graph_of(q: &Quad) -> Option<String> {
    match &q.graph_name {
        GraphName::NamedNode(n) => Some(n.as_str().to_string()),
        _ => None,
    }
}

/// A quad as an explanation shows it.
pub fn triple_of(q: &Quad) -> Triple {
    Triple {
        subject: match &q.subject {
            NamedOrBlankNode::NamedNode(n) => n.as_str().to_string(),
            NamedOrBlankNode::BlankNode(b) => format!("_:{}", b.as_str()),
        },
        predicate: q.predicate.as_str().to_string(),
        object: match &q.object {
            Term::NamedNode(n) => n.as_str().to_string(),
            other => other.to_string(),
        },
        graph: graph_of(q),
    }
}

/// The triples a vocabulary change makes Clew re-read (see [`Vocabulary::diff`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VocabularyDiff {
    pub predicates: BTreeSet<String>,
    pub classes: BTreeSet<String>,
}

/// One IRI space of a bound type.
#[derive(Debug, Clone, PartialEq)]
struct Space {
    id_prefix: String,
    iri_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct TypeBinding {
    spaces: Vec<Space>,
    /// Every class whose instances are of the type, with the `rdfs:subClassOf` chain from it up
    /// to the bound class (empty for the bound class itself).
    classes: BTreeMap<String, Vec<Triple>>,
}

/// How triples of one stored predicate are read as tuples of one relation.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub object_type: String,
    pub relation: String,
    /// The stored triple's subject is the tuple's user.
    pub flip: bool,
    /// The `clew:RelationBinding` node.
    pub binding: String,
    /// The bound property (the predicate itself, or the one it reaches through axioms).
    pub property: String,
    /// The sub-property and inverse axioms that lead from the stored predicate to `property`.
    pub axioms: Vec<Triple>,
    /// The bound property is an `owl:TransitiveProperty`.
    pub transitive: bool,
}

/// The bindings and axioms of a graph, compiled.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Vocabulary {
    types: BTreeMap<String, TypeBinding>,
    /// Stored predicate → its readings.
    readings: HashMap<String, Vec<Reading>>,
    /// (type, relation) → (stored predicate, reading).
    by_relation: HashMap<(String, String), Vec<(String, Reading)>>,
    /// Every class that types a bound type's objects.
    classes: HashSet<String>,
    /// The `owl:TransitiveProperty` declarations of bound properties.
    transitive: BTreeMap<String, Triple>,
}

fn literal(t: &Term) -> Option<&str> {
    match t {
        Term::Literal(l) => Some(l.value()),
        Term::NamedNode(n) => Some(n.as_str()),
        _ => None,
    }
}

fn named(t: &Term) -> Option<&str> {
    match t {
        Term::NamedNode(n) => Some(n.as_str()),
        _ => None,
    }
}

fn subject_iri(q: &Quad) -> Option<&str> {
    match &q.subject {
        NamedOrBlankNode::NamedNode(n) => Some(n.as_str()),
        NamedOrBlankNode::BlankNode(_) => None,
    }
}

/// A binding node and its `clew:` properties (local name, value).
type BindingNode = (String, Vec<(String, Term)>);

/// A transitive binding's reading and its direct edges (object, user, graph of the triple).
type TransitiveEdges = (Reading, Vec<(ObjectRef, ObjectRef, Option<String>)>);

/// The binding nodes of a class, with each node's `clew:` properties.
fn binding_nodes(src: &dyn Source, class: &str) -> Result<Vec<BindingNode>, StoreError> {
    let ty = iri(RDF_TYPE)?;
    let c = Term::NamedNode(iri(&format!("{NS}{class}"))?);
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    for q in src.find(None, Some(ty.as_ref()), Some(c.as_ref()))? {
        if let Some(s) = subject_iri(&q) {
            nodes.insert(s.to_string());
        }
    }
    let mut out = Vec::new();
    for n in nodes {
        let node = iri(&n)?;
        let mut props = Vec::new();
        for q in src.find(Some(node.as_ref()), None, None)? {
            if let Some(local) = q.predicate.as_str().strip_prefix(NS) {
                props.push((local.to_string(), q.object.clone()));
            }
        }
        out.push((n, props));
    }
    Ok(out)
}

fn one<'a>(
    binding: &str,
    props: &'a [(String, Term)],
    name: &str,
) -> Result<Option<&'a Term>, BindingError> {
    let mut found = props.iter().filter(|(p, _)| p == name).map(|(_, t)| t);
    let first = found.next();
    let mut distinct: Vec<&Term> = first.into_iter().collect();
    for t in found {
        if !distinct.contains(&t) {
            distinct.push(t);
        }
    }
    if distinct.len() > 1 {
        return Err(BindingError {
            binding: binding.to_string(),
            problem: format!("it has {} different values of clew:{name}", distinct.len()),
        });
    }
    Ok(first)
}

fn required_text(
    binding: &str,
    props: &[(String, Term)],
    name: &str,
) -> Result<String, BindingError> {
    let err = |problem: String| BindingError {
        binding: binding.to_string(),
        problem,
    };
    match one(binding, props, name)? {
        Some(Term::Literal(l)) => Ok(l.value().to_string()),
        Some(_) => Err(err(format!("clew:{name} must be a literal"))),
        None => Err(err(format!("it has no clew:{name}"))),
    }
}

/// Edges of an axiom property, both ends IRIs: (subject, object, the axiom as a triple).
fn axiom_edges(
    src: &dyn Source,
    property: &str,
) -> Result<Vec<(String, String, Triple)>, StoreError> {
    let p = iri(property)?;
    let mut out = Vec::new();
    for q in src.find(None, Some(p.as_ref()), None)? {
        if let (Some(s), Some(o)) = (subject_iri(&q), named(&q.object))
            && s != o
        {
            out.push((s.to_string(), o.to_string(), triple_of(&q)));
        }
    }
    Ok(out)
}

impl Vocabulary {
    /// Whether the graph declares no bindings (then nothing but Clew's own triples are tuples).
    pub fn is_empty(&self) -> bool {
        self.types.is_empty() && self.readings.is_empty()
    }

    /// The stored predicates read as tuples, beyond Clew's own.
    pub fn predicates(&self) -> impl Iterator<Item = &str> {
        self.readings.keys().map(String::as_str)
    }

    /// Reads the bindings and axioms of the data graphs.
    pub(crate) fn load(src: &dyn Source) -> Result<Self, StoreError> {
        let type_nodes = binding_nodes(src, "TypeBinding")?;
        let relation_nodes = binding_nodes(src, "RelationBinding")?;
        let sub_class = axiom_edges(src, RDFS_SUBCLASS_OF)?;
        let sub_property = axiom_edges(src, RDFS_SUBPROPERTY_OF)?;
        let inverse = axiom_edges(src, OWL_INVERSE_OF)?;
        let mut transitive: BTreeMap<String, Triple> = BTreeMap::new();
        let ty = iri(RDF_TYPE)?;
        let tr = Term::NamedNode(iri(OWL_TRANSITIVE)?);
        for q in src.find(None, Some(ty.as_ref()), Some(tr.as_ref()))? {
            if let Some(s) = subject_iri(&q) {
                transitive
                    .entry(s.to_string())
                    .or_insert_with(|| triple_of(&q));
            }
        }
        Ok(Self::compile(
            &type_nodes,
            &relation_nodes,
            &sub_class,
            &sub_property,
            &inverse,
            transitive,
        )?)
    }

    fn compile(
        type_nodes: &[BindingNode],
        relation_nodes: &[BindingNode],
        sub_class: &[(String, String, Triple)],
        sub_property: &[(String, String, Triple)],
        inverse: &[(String, String, Triple)],
        transitive_decls: BTreeMap<String, Triple>,
    ) -> Result<Self, BindingError> {
        let mut v = Vocabulary::default();
        let mut roots: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (b, props) in type_nodes {
            let err = |problem: String| BindingError {
                binding: b.clone(),
                problem,
            };
            let t = required_text(b, props, "bindsType")?;
            ObjectRef::validate(&format!("{t}:x"))
                .map_err(|e| err(format!("clew:bindsType: {e}")))?;
            let class = match one(b, props, "toClass")? {
                Some(Term::NamedNode(n)) => Some(n.as_str().to_string()),
                Some(_) => return Err(err("clew:toClass must be an IRI".into())),
                None => None,
            };
            let iri_prefix = match one(b, props, "iriPrefix")? {
                Some(t) => Some(
                    literal(t)
                        .ok_or_else(|| err("clew:iriPrefix must be a literal or an IRI".into()))?
                        .to_string(),
                ),
                None => None,
            };
            let id_prefix = match one(b, props, "idPrefix")? {
                Some(Term::Literal(l)) => Some(l.value().to_string()),
                Some(_) => return Err(err("clew:idPrefix must be a literal".into())),
                None => None,
            };
            if class.is_none() && iri_prefix.is_none() {
                return Err(err(
                    "it binds nothing: give clew:toClass, clew:iriPrefix, or both".into(),
                ));
            }
            if id_prefix.is_some() && iri_prefix.is_none() {
                return Err(err("clew:idPrefix needs a clew:iriPrefix".into()));
            }
            let tb = v.types.entry(t.clone()).or_default();
            if let Some(p) = iri_prefix {
                if p.is_empty() || NamedNode::new(format!("{p}x")).is_err() {
                    return Err(err(format!("clew:iriPrefix '{p}' does not start an IRI")));
                }
                let space = Space {
                    id_prefix: id_prefix.unwrap_or_default(),
                    iri_prefix: p,
                };
                if let Some(other) = tb.spaces.iter().find(|s| {
                    s != &&space
                        && (s.id_prefix == space.id_prefix || s.iri_prefix == space.iri_prefix)
                }) {
                    return Err(err(format!(
                        "type '{t}' already maps id prefix '{}' to IRI prefix <{}>; one id prefix or IRI prefix cannot map two ways",
                        other.id_prefix, other.iri_prefix
                    )));
                }
                if !tb.spaces.contains(&space) {
                    tb.spaces.push(space);
                }
            }
            if let Some(c) = class {
                roots.entry(t).or_default().insert(c);
            }
        }
        // Class closures: every class below a bound one, with the chain of axioms.
        let mut subclasses: HashMap<&str, Vec<(&str, &Triple)>> = HashMap::new();
        for (s, o, tr) in sub_class {
            subclasses
                .entry(o.as_str())
                .or_default()
                .push((s.as_str(), tr));
        }
        for (t, cs) in roots {
            let tb = v.types.entry(t).or_default();
            for c in cs {
                let mut queue = VecDeque::from([(c.clone(), Vec::<Triple>::new())]);
                while let Some((class, path)) = queue.pop_front() {
                    if tb.classes.contains_key(&class) {
                        continue;
                    }
                    for (sub, tr) in subclasses.get(class.as_str()).into_iter().flatten() {
                        if !tb.classes.contains_key(*sub) {
                            let mut p = path.clone();
                            p.insert(0, (*tr).clone());
                            queue.push_back((sub.to_string(), p));
                        }
                    }
                    v.classes.insert(class.clone());
                    tb.classes.insert(class, path);
                }
            }
        }
        // Readings: from each bound property down its sub-properties and across inverses.
        let mut subs: HashMap<&str, Vec<(&str, &Triple)>> = HashMap::new();
        for (s, o, tr) in sub_property {
            subs.entry(o.as_str()).or_default().push((s.as_str(), tr));
        }
        let mut inverses: HashMap<&str, Vec<(&str, &Triple)>> = HashMap::new();
        for (s, o, tr) in inverse {
            inverses
                .entry(o.as_str())
                .or_default()
                .push((s.as_str(), tr));
            inverses
                .entry(s.as_str())
                .or_default()
                .push((o.as_str(), tr));
        }
        for (b, props) in relation_nodes {
            let err = |problem: String| BindingError {
                binding: b.clone(),
                problem,
            };
            let t = required_text(b, props, "bindsType")?;
            let r = required_text(b, props, "bindsRelation")?;
            crate::tuple::check_relation_name(&r)
                .map_err(|e| err(format!("clew:bindsRelation: {e}")))?;
            let property = match one(b, props, "toProperty")? {
                Some(Term::NamedNode(n)) => n.as_str().to_string(),
                Some(_) => return Err(err("clew:toProperty must be an IRI".into())),
                None => return Err(err("it has no clew:toProperty".into())),
            };
            if property.starts_with(REL) {
                return Err(err(format!(
                    "clew:toProperty <{property}> is one of Clew's own relation predicates, which are read as tuples already"
                )));
            }
            let inverse = match one(b, props, "inverse")? {
                None => false,
                Some(Term::Literal(l)) => match l.value() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(err(format!(
                            "clew:inverse must be true or false, not '{other}'"
                        )));
                    }
                },
                Some(_) => return Err(err("clew:inverse must be a boolean literal".into())),
            };
            let transitive = transitive_decls.get(&property).cloned();
            if let Some(decl) = &transitive {
                v.transitive.insert(property.clone(), decl.clone());
            }
            let mut seen: HashSet<(String, bool)> = HashSet::new();
            let mut queue = VecDeque::from([(property.clone(), inverse, Vec::<Triple>::new())]);
            while let Some((p, flip, path)) = queue.pop_front() {
                if !seen.insert((p.clone(), flip)) || p.starts_with(REL) {
                    continue;
                }
                for (sub, tr) in subs.get(p.as_str()).into_iter().flatten() {
                    let mut path = path.clone();
                    path.insert(0, (*tr).clone());
                    queue.push_back((sub.to_string(), flip, path));
                }
                for (inv, tr) in inverses.get(p.as_str()).into_iter().flatten() {
                    let mut path = path.clone();
                    path.insert(0, (*tr).clone());
                    queue.push_back((inv.to_string(), !flip, path));
                }
                let reading = Reading {
                    object_type: t.clone(),
                    relation: r.clone(),
                    flip,
                    binding: b.clone(),
                    property: property.clone(),
                    axioms: path,
                    transitive: transitive.is_some(),
                };
                v.by_relation
                    .entry((t.clone(), r.clone()))
                    .or_default()
                    .push((p.clone(), reading.clone()));
                v.readings.entry(p).or_default().push(reading);
            }
        }
        Ok(v)
    }

    /// What changes between two vocabularies, as the triples to re-read: the predicates whose
    /// readings differ, and the classes whose instances change type. A change of a type's IRI
    /// spaces re-reads every bound predicate.
    pub fn diff(&self, other: &Vocabulary) -> VocabularyDiff {
        let mut out = VocabularyDiff::default();
        let same_spaces = self.types.len() == other.types.len()
            && self
                .types
                .iter()
                .all(|(t, b)| other.types.get(t).is_some_and(|o| o.spaces == b.spaces));
        for p in self.readings.keys().chain(other.readings.keys()) {
            let mine = self.readings.get(p);
            let theirs = other.readings.get(p);
            if !same_spaces || mine != theirs {
                out.predicates.insert(p.clone());
            }
        }
        let types: BTreeSet<&String> = self.types.keys().chain(other.types.keys()).collect();
        let empty = BTreeMap::new();
        for t in types {
            let a = self.types.get(t).map_or(&empty, |b| &b.classes);
            let b = other.types.get(t).map_or(&empty, |b| &b.classes);
            for c in a.keys().chain(b.keys()) {
                if a.contains_key(c) != b.contains_key(c) {
                    out.classes.insert(c.clone());
                }
            }
        }
        out
    }

    /// Whether a quad can change the vocabulary (a binding, or an axiom).
    pub fn is_schema(q: &Quad) -> bool {
        let p = q.predicate.as_str();
        if matches!(p, RDFS_SUBCLASS_OF | RDFS_SUBPROPERTY_OF | OWL_INVERSE_OF) {
            return true;
        }
        if p == RDF_TYPE {
            return match named(&q.object) {
                Some(o) => {
                    o == OWL_TRANSITIVE
                        || o.strip_prefix(NS)
                            .is_some_and(|c| c == "TypeBinding" || c == "RelationBinding")
                }
                None => false,
            };
        }
        p.strip_prefix(NS)
            .is_some_and(|l| BINDING_TERMS.contains(&l))
    }

    /// Whether a quad types a node of a bound class (`<x> rdf:type foaf:Person`).
    pub fn is_typing(&self, q: &Quad) -> bool {
        q.predicate.as_str() == RDF_TYPE
            && named(&q.object).is_some_and(|c| self.classes.contains(c))
    }

    /// Whether triples of this predicate are read as tuples through a binding.
    pub fn reads(&self, predicate: &str) -> bool {
        self.readings.contains_key(predicate)
    }

    /// The IRIs an object is found under: Clew's own, and its bound space's.
    pub fn iris_of(&self, iris: &IriMapper, o: &ObjectRef) -> Vec<String> {
        let mut out = vec![iris.object(o)];
        if let Some(b) = self.types.get(&o.object_type)
            && let Some(i) = bound_iri(b, &o.id)
            && !out.contains(&i)
        {
            out.push(i);
        }
        out
    }
}

/// An object's IRI in its type's bound spaces: the longest id prefix wins; a type with a class
/// and no space names objects by their IRI.
fn bound_iri(b: &TypeBinding, id: &str) -> Option<String> {
    if b.spaces.is_empty() {
        return (!b.classes.is_empty() && NamedNode::new(id).is_ok()).then(|| id.to_string());
    }
    let s = b
        .spaces
        .iter()
        .filter(|s| id.starts_with(&s.id_prefix))
        .max_by_key(|s| s.id_prefix.len())?;
    let rest = id.get(s.id_prefix.len()..)?;
    let out = format!("{}{rest}", s.iri_prefix);
    NamedNode::new(out.as_str()).is_ok().then_some(out)
}

/// A node read as an object of a type, and the class axioms that typing relied on.
#[derive(Debug, Clone)]
struct Typed {
    object: ObjectRef,
    axioms: Vec<Triple>,
}

/// A tuple read from stored triples, with its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Support {
    pub tuple: Tuple,
    /// The stored triples: one, or the chain of a transitive property.
    pub triples: Vec<Triple>,
    /// The `clew:RelationBinding` it was read through.
    pub binding: String,
    /// The axioms it relied on (sub-property, inverse, subclass, transitivity).
    pub axioms: Vec<Triple>,
}

impl Support {
    /// The tuple and the graph of its (first) stored triple, as the index records a tuple.
    pub fn into_stored(self) -> (Tuple, std::sync::Arc<str>) {
        let g = self
            .triples
            .first()
            .and_then(|t| t.graph.clone())
            .unwrap_or_default();
        (self.tuple, std::sync::Arc::from(g.as_str()))
    }
}

/// Reads tuples from a graph under a vocabulary and a model.
pub(crate) struct Reader<'a> {
    pub vocab: &'a Vocabulary,
    pub iris: &'a IriMapper,
    pub model: &'a TypeSystem,
    pub src: &'a dyn Source,
    classes: RefCell<HashMap<String, Vec<String>>>,
}

impl<'a> Reader<'a> {
    pub fn new(
        vocab: &'a Vocabulary,
        iris: &'a IriMapper,
        model: &'a TypeSystem,
        src: &'a dyn Source,
    ) -> Self {
        Self {
            vocab,
            iris,
            model,
            src,
            classes: RefCell::new(HashMap::new()),
        }
    }

    fn node_classes(&self, node: &str) -> Result<Vec<String>, StoreError> {
        if let Some(c) = self.classes.borrow().get(node) {
            return Ok(c.clone());
        }
        let n = iri(node)?;
        let ty = iri(RDF_TYPE)?;
        let mut out: Vec<String> = Vec::new();
        for q in self.src.find(Some(n.as_ref()), Some(ty.as_ref()), None)? {
            if let Some(c) = named(&q.object)
                && self.vocab.classes.contains(c)
                && !out.iter().any(|x| x == c)
            {
                out.push(c.to_string());
            }
        }
        let mut memo = self.classes.borrow_mut();
        if memo.len() > 100_000 {
            memo.clear();
        }
        memo.insert(node.to_string(), out.clone());
        Ok(out)
    }

    /// The objects a node is, of the type `want` (or of any type).
    fn types_of(&self, node: &str, want: Option<&str>) -> Result<Vec<Typed>, StoreError> {
        let mut out = Vec::new();
        if let Some(o) = self.iris.object_of(node)
            && want.is_none_or(|w| w == o.object_type)
        {
            out.push(Typed {
                object: o,
                axioms: Vec::new(),
            });
        }
        for (t, b) in &self.vocab.types {
            if want.is_some_and(|w| w != t) {
                continue;
            }
            let id = if b.spaces.is_empty() {
                node.to_string()
            } else {
                let Some(s) = b
                    .spaces
                    .iter()
                    .filter(|s| node.len() > s.iri_prefix.len() && node.starts_with(&s.iri_prefix))
                    .max_by_key(|s| s.iri_prefix.len())
                else {
                    continue;
                };
                format!(
                    "{}{}",
                    s.id_prefix,
                    node.get(s.iri_prefix.len()..).unwrap_or("")
                )
            };
            if ObjectRef::validate(&format!("{t}:{id}")).is_err()
                || bound_iri(b, &id).as_deref() != Some(node)
            {
                continue;
            }
            let axioms = if b.classes.is_empty() {
                Vec::new()
            } else {
                let classes = self.node_classes(node)?;
                match classes.iter().find_map(|c| b.classes.get(c)) {
                    Some(chain) => chain.clone(),
                    None => continue,
                }
            };
            let object = ObjectRef::new(t.clone(), id);
            if !out.iter().any(|x: &Typed| x.object == object) {
                out.push(Typed { object, axioms });
            }
        }
        Ok(out)
    }

    /// How the model lets a node of a type be the user of `type#relation`: itself, or one
    /// userset of it.
    fn user_forms(&self, object_type: &str, relation: &str, u: &ObjectRef) -> Vec<User> {
        let direct = User::Object(u.clone());
        if self.model.admits(object_type, relation, &direct, None) {
            return vec![direct];
        }
        let Some(rel) = self.model.relation(object_type, relation) else {
            return Vec::new();
        };
        let usersets: Vec<&String> = rel
            .directly_related
            .iter()
            .filter_map(|r| match &r.kind {
                RestrictionKind::Userset(m)
                    if r.type_name == u.object_type && r.condition.is_none() =>
                {
                    Some(m)
                }
                _ => None,
            })
            .collect();
        match usersets.as_slice() {
            [m] => vec![User::Userset(u.clone(), (*m).clone())],
            _ => Vec::new(),
        }
    }

    /// The tuples one stored quad is read as through one reading.
    fn read_with(&self, q: &Quad, r: &Reading) -> Result<Vec<Support>, StoreError> {
        let (Some(s), Some(o)) = (subject_iri(q), named(&q.object)) else {
            return Ok(Vec::new());
        };
        if self.model.relation(&r.object_type, &r.relation).is_none() {
            return Ok(Vec::new());
        }
        let (object_node, user_node) = if r.flip { (o, s) } else { (s, o) };
        let mut out = Vec::new();
        for ot in self.types_of(object_node, Some(&r.object_type))? {
            for ut in self.types_of(user_node, None)? {
                for user in self.user_forms(&r.object_type, &r.relation, &ut.object) {
                    let mut axioms = r.axioms.clone();
                    for a in ot.axioms.iter().chain(&ut.axioms) {
                        if !axioms.contains(a) {
                            axioms.push(a.clone());
                        }
                    }
                    out.push(Support {
                        tuple: Tuple {
                            object: ot.object.clone(),
                            relation: r.relation.clone(),
                            user,
                            condition: None,
                        },
                        triples: vec![triple_of(q)],
                        binding: r.binding.clone(),
                        axioms,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Every tuple a stored quad is read as (without transitive closure).
    pub fn read(&self, q: &Quad) -> Result<Vec<Support>, StoreError> {
        let Some(rs) = self.vocab.readings.get(q.predicate.as_str()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for r in rs {
            out.extend(self.read_with(q, r)?);
        }
        Ok(out)
    }

    /// Whether a reading's tuples close transitively under this model.
    fn closes(&self, r: &Reading) -> bool {
        r.transitive
            && self
                .model
                .relation(&r.object_type, &r.relation)
                .is_some_and(|rel| {
                    rel.directly_related.iter().any(|x| {
                        x.type_name == r.object_type
                            && x.kind == RestrictionKind::Direct
                            && x.condition.is_none()
                    })
                })
    }

    /// The direct edges of a transitive binding at one node: forward (node is the object) or
    /// backward (node is the user). Each edge is the other end and its support.
    fn edges(
        &self,
        binding: &str,
        object_type: &str,
        relation: &str,
        node: &ObjectRef,
        forward: bool,
    ) -> Result<Vec<(ObjectRef, Support)>, StoreError> {
        let mut out = Vec::new();
        let key = (object_type.to_string(), relation.to_string());
        let iris = self.vocab.iris_of(self.iris, node);
        for (p, r) in self.vocab.by_relation.get(&key).into_iter().flatten() {
            if r.binding != binding {
                continue;
            }
            let pred = iri(p)?;
            for n in &iris {
                let n_iri = iri(n)?;
                let n_term = Term::NamedNode(n_iri.clone());
                // The node is the tuple's object: the subject of an unflipped triple.
                let as_subject = forward != r.flip;
                let quads = if as_subject {
                    self.src
                        .find(Some(n_iri.as_ref()), Some(pred.as_ref()), None)?
                } else {
                    self.src
                        .find(None, Some(pred.as_ref()), Some(n_term.as_ref()))?
                };
                for q in quads {
                    for s in self.read_with(&q, r)? {
                        let User::Object(u) = &s.tuple.user else {
                            continue;
                        };
                        if forward && s.tuple.object == *node && u.object_type == object_type {
                            out.push((u.clone(), s));
                        } else if !forward && u == node {
                            out.push((s.tuple.object.clone(), s));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The nodes reachable from `start` (itself included) through a transitive binding's
    /// edges, forward or backward.
    fn reach(
        &self,
        r: &Reading,
        start: &ObjectRef,
        forward: bool,
    ) -> Result<Vec<ObjectRef>, StoreError> {
        let mut seen: BTreeSet<ObjectRef> = BTreeSet::from([start.clone()]);
        let mut queue = VecDeque::from([start.clone()]);
        while let Some(n) = queue.pop_front() {
            for (m, _) in self.edges(&r.binding, &r.object_type, &r.relation, &n, forward)? {
                if seen.len() >= MAX_CLOSURE {
                    return Err(StoreError::Limit(format!(
                        "the transitive closure of <{}> from {start} exceeds {MAX_CLOSURE} objects",
                        r.property
                    )));
                }
                if seen.insert(m.clone()) {
                    queue.push_back(m);
                }
            }
        }
        Ok(seen.into_iter().collect())
    }

    /// The tuple keys whose transitive support a read tuple may affect: every pair from an
    /// object that reaches its object to one its user reaches.
    pub fn closure_candidates(&self, s: &Support) -> Result<Vec<TupleKey>, StoreError> {
        let Some(r) = self.reading_of(s) else {
            return Ok(Vec::new());
        };
        let User::Object(u) = &s.tuple.user else {
            return Ok(Vec::new());
        };
        if u.object_type != r.object_type {
            return Ok(Vec::new());
        }
        let above = self.reach(r, &s.tuple.object, false)?;
        let below = self.reach(r, u, true)?;
        if above.len().saturating_mul(below.len()) > MAX_CLOSURE {
            return Err(StoreError::Limit(format!(
                "a change of <{}> affects more than {MAX_CLOSURE} transitive pairs",
                r.property
            )));
        }
        let mut out = Vec::new();
        for a in &above {
            for b in &below {
                out.push(TupleKey {
                    object: a.clone(),
                    relation: r.relation.clone(),
                    user: User::Object(b.clone()),
                });
            }
        }
        Ok(out)
    }

    /// The transitive reading a support came through, if it closes under the model.
    fn reading_of(&self, s: &Support) -> Option<&Reading> {
        let key = (s.tuple.object.object_type.clone(), s.tuple.relation.clone());
        self.vocab
            .by_relation
            .get(&key)?
            .iter()
            .map(|(_, r)| r)
            .find(|r| r.binding == s.binding && self.closes(r))
    }

    /// Every way a tuple key is read from the graph through bindings: single triples first,
    /// then (for a transitive binding) the shortest chain.
    pub fn supports(&self, key: &TupleKey) -> Result<Vec<Support>, StoreError> {
        let mut out = Vec::new();
        let user_node = match &key.user {
            User::Object(u) | User::Userset(u, _) => u,
            User::Wildcard(_) => return Ok(out),
        };
        let rk = (key.object.object_type.clone(), key.relation.clone());
        let Some(rs) = self.vocab.by_relation.get(&rk) else {
            return Ok(out);
        };
        let object_iris = self.vocab.iris_of(self.iris, &key.object);
        let user_iris = self.vocab.iris_of(self.iris, user_node);
        let mut closing: Vec<&Reading> = Vec::new();
        for (p, r) in rs {
            let pred = iri(p)?;
            for oi in &object_iris {
                for ui in &user_iris {
                    let (s, o) = if r.flip { (ui, oi) } else { (oi, ui) };
                    let s = iri(s)?;
                    let o = Term::NamedNode(iri(o)?);
                    for q in
                        self.src
                            .find(Some(s.as_ref()), Some(pred.as_ref()), Some(o.as_ref()))?
                    {
                        for sup in self.read_with(&q, r)? {
                            if sup.tuple.key() == *key && !out.contains(&sup) {
                                out.push(sup);
                            }
                        }
                    }
                }
            }
            if self.closes(r) && !closing.iter().any(|c| c.binding == r.binding) {
                closing.push(r);
            }
        }
        if out.is_empty()
            && let User::Object(target) = &key.user
        {
            for r in closing {
                if let Some(s) = self.chain(r, &key.object, target)? {
                    out.push(s);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The shortest chain of a transitive binding's edges from `from` to `to`.
    fn chain(
        &self,
        r: &Reading,
        from: &ObjectRef,
        to: &ObjectRef,
    ) -> Result<Option<Support>, StoreError> {
        let mut prev: HashMap<ObjectRef, (ObjectRef, Support)> = HashMap::new();
        // `from` is not marked seen, so that a cycle back to it (from == to) is found.
        let mut queue = VecDeque::from([from.clone()]);
        let mut seen: HashSet<ObjectRef> = HashSet::new();
        while let Some(n) = queue.pop_front() {
            for (m, s) in self.edges(&r.binding, &r.object_type, &r.relation, &n, true)? {
                if !seen.insert(m.clone()) {
                    continue;
                }
                prev.insert(m.clone(), (n.clone(), s));
                if m == *to {
                    let mut steps = Vec::new();
                    let mut at = m;
                    while at != *from || steps.is_empty() {
                        let Some((p, s)) = prev.remove(&at) else {
                            break;
                        };
                        steps.push(s);
                        at = p;
                    }
                    steps.reverse();
                    let mut axioms: Vec<Triple> = Vec::new();
                    for a in steps.iter().flat_map(|s| s.axioms.iter()) {
                        if !axioms.contains(a) {
                            axioms.push(a.clone());
                        }
                    }
                    if let Some(decl) = self.vocab.transitive.get(&r.property) {
                        axioms.push(decl.clone());
                    }
                    return Ok(Some(Support {
                        tuple: Tuple {
                            object: from.clone(),
                            relation: r.relation.clone(),
                            user: User::Object(to.clone()),
                            condition: None,
                        },
                        triples: steps.into_iter().flat_map(|s| s.triples).collect(),
                        binding: r.binding.clone(),
                        axioms,
                    }));
                }
                if seen.len() >= MAX_CLOSURE {
                    return Ok(None);
                }
                queue.push_back(m);
            }
        }
        Ok(None)
    }

    /// The stored form of a key read through bindings: its first support, if any.
    pub fn stored(
        &self,
        key: &TupleKey,
    ) -> Result<Option<(Tuple, std::sync::Arc<str>)>, StoreError> {
        Ok(self
            .supports(key)?
            .into_iter()
            .next()
            .map(Support::into_stored))
    }

    /// Every tuple the graph reads through bindings, each once, with the graph of (the first
    /// triple of) its support.
    pub fn all(&self) -> Result<Vec<(Tuple, Option<String>)>, StoreError> {
        let mut out: Vec<(Tuple, Option<String>)> = Vec::new();
        let mut seen: HashSet<TupleKey> = HashSet::new();
        // Transitive bindings: their direct edges, per binding, to close afterwards.
        let mut edges: BTreeMap<String, TransitiveEdges> = BTreeMap::new();
        for p in self.vocab.readings.keys() {
            let pred = iri(p)?;
            for q in self.src.find(None, Some(pred.as_ref()), None)? {
                for s in self.read(&q)? {
                    let graph = s.triples.first().and_then(|t| t.graph.clone());
                    if let (Some(r), User::Object(u)) = (self.reading_of(&s), &s.tuple.user)
                        && u.object_type == r.object_type
                    {
                        edges
                            .entry(r.binding.clone())
                            .or_insert_with(|| (r.clone(), Vec::new()))
                            .1
                            .push((s.tuple.object.clone(), u.clone(), graph.clone()));
                    }
                    if seen.insert(s.tuple.key()) {
                        out.push((s.tuple, graph));
                    }
                }
            }
        }
        for (_, (r, es)) in edges {
            let mut next: HashMap<&ObjectRef, Vec<(&ObjectRef, &Option<String>)>> = HashMap::new();
            for (a, b, g) in &es {
                next.entry(a).or_default().push((b, g));
            }
            let mut produced = 0usize;
            for start in next.keys() {
                let mut reached: HashSet<&ObjectRef> = HashSet::new();
                let mut queue: VecDeque<(&ObjectRef, &Option<String>)> =
                    next.get(start).into_iter().flatten().copied().collect();
                while let Some((n, g)) = queue.pop_front() {
                    // A cycle back to the start is a (reflexive) pair too.
                    if !reached.insert(n) {
                        continue;
                    }
                    let t = Tuple {
                        object: (*start).clone(),
                        relation: r.relation.clone(),
                        user: User::Object(n.clone()),
                        condition: None,
                    };
                    if seen.insert(t.key()) {
                        produced += 1;
                        if produced > MAX_CLOSURE {
                            return Err(StoreError::Limit(format!(
                                "the transitive closure of <{}> exceeds {MAX_CLOSURE} pairs",
                                r.property
                            )));
                        }
                        out.push((t, g.clone()));
                    }
                    for e in next.get(n).into_iter().flatten() {
                        queue.push_back(*e);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user, group#member]\ntype folder\n  relations\n    define parent: [folder]\n    define viewer: [user] or viewer from parent\n";

    fn store(ttl: &str) -> oxigraph::store::Store {
        let s = oxigraph::store::Store::new().unwrap();
        s.load_from_slice(oxigraph::io::RdfFormat::Turtle, ttl.as_bytes())
            .unwrap();
        s
    }

    const PREFIXES: &str = "@prefix clew: <https://clew.dev/ns#> .\n@prefix org: <http://www.w3.org/ns/org#> .\n@prefix foaf: <http://xmlns.com/foaf/0.1/> .\n@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n@prefix owl: <http://www.w3.org/2002/07/owl#> .\n@prefix ex: <https://ex.org/> .\n";

    const BINDINGS: &str = "ex:u a clew:TypeBinding ; clew:bindsType \"user\" ; clew:toClass foaf:Person ; clew:iriPrefix \"https://ex.org/p/\" .\nex:g a clew:TypeBinding ; clew:bindsType \"group\" ; clew:iriPrefix \"https://ex.org/g/\" .\nex:f a clew:TypeBinding ; clew:bindsType \"folder\" ; clew:iriPrefix \"https://ex.org/f/\" .\nex:gm a clew:RelationBinding ; clew:bindsType \"group\" ; clew:bindsRelation \"member\" ; clew:toProperty org:memberOf ; clew:inverse true .\nex:fp a clew:RelationBinding ; clew:bindsType \"folder\" ; clew:bindsRelation \"parent\" ; clew:toProperty ex:within .\n";

    fn keys(ttl: &str) -> BTreeSet<String> {
        let s = store(&format!("{PREFIXES}{BINDINGS}{ttl}"));
        let v = Vocabulary::load(&s).unwrap();
        let m = TypeSystem::from_dsl(MODEL).unwrap();
        let iris = IriMapper::default();
        let r = Reader::new(&v, &iris, &m, &s);
        r.all()
            .unwrap()
            .into_iter()
            .map(|(t, _)| t.key().to_string())
            .collect()
    }

    #[test]
    fn reads_bound_triples_with_classes_usersets_and_axioms() {
        let k = keys(
            "<https://ex.org/p/anne> a foaf:Person ; org:memberOf <https://ex.org/g/eng> .\n\
             <https://ex.org/p/bob> org:memberOf <https://ex.org/g/eng> .\n\
             <https://ex.org/g/web> org:memberOf <https://ex.org/g/eng> .\n\
             <https://ex.org/p/cy> a ex:Contractor ; ex:leads <https://ex.org/g/web> .\n\
             ex:leads rdfs:subPropertyOf org:memberOf .\n\
             ex:Contractor rdfs:subClassOf foaf:Person .\n\
             ex:hasMember owl:inverseOf org:memberOf .\n\
             <https://ex.org/g/ops> ex:hasMember <https://ex.org/p/anne> .\n",
        );
        let want: BTreeSet<String> = [
            "group:eng#member@user:anne",
            "group:eng#member@group:web#member",
            "group:web#member@user:cy",
            "group:ops#member@user:anne",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        // bob has no rdf:type foaf:Person, so he is not a user.
        assert_eq!(k, want);
    }

    #[test]
    fn closes_transitive_properties_the_model_admits() {
        let k = keys(
            "ex:within a owl:TransitiveProperty .\n\
             <https://ex.org/f/c> ex:within <https://ex.org/f/b> .\n\
             <https://ex.org/f/b> ex:within <https://ex.org/f/a> .\n",
        );
        assert!(k.contains("folder:c#parent@folder:a"), "{k:?}");
        assert!(k.contains("folder:c#parent@folder:b"), "{k:?}");
        assert_eq!(k.len(), 3, "{k:?}");
        let plain = keys(
            "<https://ex.org/f/c> ex:within <https://ex.org/f/b> .\n\
             <https://ex.org/f/b> ex:within <https://ex.org/f/a> .\n",
        );
        assert_eq!(plain.len(), 2, "{plain:?}");
    }

    #[test]
    fn supports_name_the_stored_triple_and_the_axioms() {
        let s = store(&format!(
            "{PREFIXES}{BINDINGS}ex:within a owl:TransitiveProperty .\n\
             <https://ex.org/f/c> ex:within <https://ex.org/f/b> .\n\
             <https://ex.org/f/b> ex:within <https://ex.org/f/a> .\n\
             <https://ex.org/p/cy> a ex:Contractor ; ex:leads <https://ex.org/g/web> .\n\
             ex:leads rdfs:subPropertyOf org:memberOf .\n\
             ex:Contractor rdfs:subClassOf foaf:Person .\n"
        ));
        let v = Vocabulary::load(&s).unwrap();
        let m = TypeSystem::from_dsl(MODEL).unwrap();
        let iris = IriMapper::default();
        let r = Reader::new(&v, &iris, &m, &s);
        let key = Tuple::parse("user:cy", "member", "group:web")
            .unwrap()
            .key();
        let sup = r.supports(&key).unwrap();
        assert_eq!(sup.len(), 1);
        assert_eq!(sup[0].triples[0].predicate, "https://ex.org/leads");
        assert_eq!(sup[0].triples[0].subject, "https://ex.org/p/cy");
        let axioms: Vec<&str> = sup[0].axioms.iter().map(|a| a.predicate.as_str()).collect();
        assert_eq!(axioms, [RDFS_SUBPROPERTY_OF, RDFS_SUBCLASS_OF]);
        let key = Tuple::parse("folder:a", "parent", "folder:c")
            .unwrap()
            .key();
        let sup = r.supports(&key).unwrap();
        assert_eq!(sup.len(), 1);
        assert_eq!(sup[0].triples.len(), 2);
        assert_eq!(
            sup[0].axioms.last().map(|a| a.object.as_str()),
            Some(OWL_TRANSITIVE)
        );
        let key = Tuple::parse("folder:c", "parent", "folder:a")
            .unwrap()
            .key();
        assert!(r.supports(&key).unwrap().is_empty());
    }

    #[test]
    fn bad_bindings_are_named() {
        for (ttl, want) in [
            ("ex:b a clew:TypeBinding .", "no clew:bindsType"),
            (
                "ex:b a clew:TypeBinding ; clew:bindsType \"user\" .",
                "binds nothing",
            ),
            (
                "ex:b a clew:RelationBinding ; clew:bindsType \"group\" ; clew:bindsRelation \"member\" .",
                "no clew:toProperty",
            ),
            (
                "ex:b a clew:RelationBinding ; clew:bindsType \"group\" ; clew:bindsRelation \"member\" ; clew:toProperty org:x ; clew:inverse \"maybe\" .",
                "true or false",
            ),
            (
                "ex:b a clew:TypeBinding ; clew:bindsType \"user\" ; clew:iriPrefix \"https://a/\" .\nex:c a clew:TypeBinding ; clew:bindsType \"user\" ; clew:iriPrefix \"https://b/\" .",
                "map two ways",
            ),
        ] {
            let s = store(&format!("{PREFIXES}{ttl}"));
            let e = match Vocabulary::load(&s) {
                Err(StoreError::Binding(e)) => e,
                other => panic!("{ttl}: {other:?}"),
            };
            assert!(e.to_string().contains(want), "{ttl}: {e}");
            assert!(e.to_string().contains("https://ex.org/"), "{e}");
        }
    }

    #[test]
    fn ids_round_trip_through_spaces() {
        let s = store(&format!(
            "{PREFIXES}ex:c a clew:TypeBinding ; clew:bindsType \"catalog\" ; clew:iriPrefix \"https://d/cat/\" .\n\
             ex:x a clew:TypeBinding ; clew:bindsType \"catalog\" ; clew:idPrefix \"ext:\" ; clew:iriPrefix \"https://p/\" .\n"
        ));
        let v = Vocabulary::load(&s).unwrap();
        let iris = IriMapper::default();
        let o = ObjectRef::parse("catalog:ext:euro").unwrap();
        assert_eq!(v.iris_of(&iris, &o)[1], "https://p/euro");
        let o = ObjectRef::parse("catalog:main").unwrap();
        assert_eq!(v.iris_of(&iris, &o)[1], "https://d/cat/main");
        let m = TypeSystem::from_dsl("model\n  schema 1.1\ntype catalog\n").unwrap();
        let r = Reader::new(&v, &iris, &m, &s);
        let ids = |n: &str| -> Vec<String> {
            r.types_of(n, None)
                .unwrap()
                .into_iter()
                .map(|t| t.object.to_string())
                .collect()
        };
        assert_eq!(ids("https://p/euro"), ["catalog:ext:euro"]);
        assert_eq!(ids("https://d/cat/main"), ["catalog:main"]);
        // Not the canonical IRI of catalog:ext:euro, so not an object at all.
        assert!(ids("https://d/cat/ext:euro").is_empty());
    }
}
