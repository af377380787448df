//! Bindings: a graph written only in ORG/FOAF/DCAT/PROV/Dublin Core (and a company's own terms)
//! answers like its Clew-tuple twin, also while SPARQL updates change its data, its axioms and
//! its bindings; explanations show the stored triples, the binding and the axioms.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::engine::{self, CheckRequest, Decision, LookupRequest};
use clew::service::bulk::{Consistency, PageRequest};
use clew::service::{Clew, ServiceError};
use clew::sparql::SparqlOptions;
use clew::tuple::{ObjectRef, Tuple, TupleKey, User};
use serde_json::Map;
use std::collections::{BTreeMap, BTreeSet};

const MODEL: &str = "model
  schema 1.1
type user
type agent
  relations
    define acts_for: [user]
type group
  relations
    define member: [user, agent, group#member]
type dataset
  relations
    define derived_from: [dataset]
    define owner: [user]
    define blocked: [user]
    define reader: ([user, group#member] or owner or owner from derived_from) but not blocked
type document
  relations
    define dataset: [dataset]
    define viewer: [user, group#member] or reader from dataset
";

const PREFIXES: &str = "PREFIX clew: <https://clew.dev/ns#>
PREFIX org: <http://www.w3.org/ns/org#>
PREFIX foaf: <http://xmlns.com/foaf/0.1/>
PREFIX prov: <http://www.w3.org/ns/prov#>
PREFIX dcat: <http://www.w3.org/ns/dcat#>
PREFIX dcterms: <http://purl.org/dc/terms/>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
PREFIX owl: <http://www.w3.org/2002/07/owl#>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>
PREFIX ex: <https://ex.org/ns#>
PREFIX b: <https://ex.org/bindings#>
";

const BINDINGS: &str = "
b:user a clew:TypeBinding ; clew:bindsType \"user\" ; clew:toClass foaf:Person ;
  clew:iriPrefix \"https://ex.org/person/\"^^xsd:anyURI .
b:agent a clew:TypeBinding ; clew:bindsType \"agent\" ; clew:toClass prov:SoftwareAgent ;
  clew:iriPrefix \"https://ex.org/agent/\"^^xsd:anyURI .
b:group a clew:TypeBinding ; clew:bindsType \"group\" ; clew:iriPrefix \"https://ex.org/org/\"^^xsd:anyURI .
b:dataset a clew:TypeBinding ; clew:bindsType \"dataset\" ; clew:toClass dcat:Dataset ;
  clew:iriPrefix \"https://ex.org/data/\"^^xsd:anyURI .
b:document a clew:TypeBinding ; clew:bindsType \"document\" ; clew:iriPrefix \"https://ex.org/doc/\"^^xsd:anyURI .
b:member a clew:RelationBinding ; clew:bindsType \"group\" ; clew:bindsRelation \"member\" ;
  clew:toProperty org:memberOf ; clew:inverse true .
b:suborg a clew:RelationBinding ; clew:bindsType \"group\" ; clew:bindsRelation \"member\" ;
  clew:toProperty org:subOrganizationOf ; clew:inverse true .
b:actsFor a clew:RelationBinding ; clew:bindsType \"agent\" ; clew:bindsRelation \"acts_for\" ;
  clew:toProperty prov:actedOnBehalfOf .
b:derived a clew:RelationBinding ; clew:bindsType \"dataset\" ; clew:bindsRelation \"derived_from\" ;
  clew:toProperty prov:wasDerivedFrom .
b:owner a clew:RelationBinding ; clew:bindsType \"dataset\" ; clew:bindsRelation \"owner\" ;
  clew:toProperty ex:dataOwner .
b:blocked a clew:RelationBinding ; clew:bindsType \"dataset\" ; clew:bindsRelation \"blocked\" ;
  clew:toProperty ex:embargoedFor .
b:reader a clew:RelationBinding ; clew:bindsType \"dataset\" ; clew:bindsRelation \"reader\" ;
  clew:toProperty ex:grantedReadTo .
b:docDataset a clew:RelationBinding ; clew:bindsType \"document\" ; clew:bindsRelation \"dataset\" ;
  clew:toProperty dcterms:isPartOf .
b:viewer a clew:RelationBinding ; clew:bindsType \"document\" ; clew:bindsRelation \"viewer\" ;
  clew:toProperty ex:sharedWith .
";

/// The axioms, each one SPARQL triple pattern, so that updates can add and remove them; then
/// two whole bindings, which updates remove and restore in the same way.
const AXIOMS: [&str; 6] = [
    "ex:leads rdfs:subPropertyOf org:memberOf .",
    "org:hasMember owl:inverseOf org:memberOf .",
    "ex:Contractor rdfs:subClassOf foaf:Person .",
    "prov:wasDerivedFrom a owl:TransitiveProperty .",
    "GRAPH <https://ex.org/graph/bindings> { b:viewer a clew:RelationBinding ; clew:bindsType \"document\" ; clew:bindsRelation \"viewer\" ; clew:toProperty ex:sharedWith . }",
    "GRAPH <https://ex.org/graph/bindings> { b:agent a clew:TypeBinding ; clew:bindsType \"agent\" ; clew:toClass prov:SoftwareAgent ; clew:iriPrefix \"https://ex.org/agent/\"^^xsd:anyURI . }",
];

fn opts() -> SparqlOptions {
    SparqlOptions::default()
}

fn update(clew: &Clew, body: &str) -> Result<clew::service::SparqlUpdated, ServiceError> {
    clew.sparql_update(&format!("{PREFIXES}{body}"), &opts())
}

/// The abstract facts of a random enterprise graph, and how each is stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Fact {
    /// Person `p` is typed: 0 foaf:Person, 1 ex:Contractor, 2 ex:Robot (a class bound to nothing).
    PersonClass(u64, u64),
    AgentClass(u64),
    DatasetClass(u64),
    /// Person in group, stored as 0 org:memberOf, 1 ex:leads (sub-property), 2 org:hasMember
    /// (inverse axiom).
    Member(u64, u64, u64),
    AgentMember(u64, u64),
    SubOrg(u64, u64),
    ActsFor(u64, u64),
    Derived(u64, u64),
    Owner(u64, u64),
    Blocked(u64, u64),
    ReaderGroup(u64, u64),
    DocDataset(u64, u64),
    Viewer(u64, u64),
    /// A triple of an unbound property: never a tuple.
    Noise(u64, u64),
}

fn person(p: u64) -> String {
    format!("<https://ex.org/person/p{p}>")
}
fn agent(a: u64) -> String {
    format!("<https://ex.org/agent/a{a}>")
}
fn group(g: u64) -> String {
    format!("<https://ex.org/org/g{g}>")
}
fn dataset(d: u64) -> String {
    format!("<https://ex.org/data/d{d}>")
}
fn doc(d: u64) -> String {
    format!("<https://ex.org/doc/x{d}>")
}

impl Fact {
    fn triple(&self) -> String {
        match *self {
            Fact::PersonClass(p, c) => {
                let class = ["foaf:Person", "ex:Contractor", "ex:Robot"][c as usize];
                format!("{} a {class} .", person(p))
            }
            Fact::AgentClass(a) => format!("{} a prov:SoftwareAgent .", agent(a)),
            Fact::DatasetClass(d) => format!("{} a dcat:Dataset .", dataset(d)),
            Fact::Member(p, g, 0) => format!("{} org:memberOf {} .", person(p), group(g)),
            Fact::Member(p, g, 1) => format!("{} ex:leads {} .", person(p), group(g)),
            Fact::Member(p, g, _) => format!("{} org:hasMember {} .", group(g), person(p)),
            Fact::AgentMember(a, g) => format!("{} org:memberOf {} .", agent(a), group(g)),
            Fact::SubOrg(a, b) => format!("{} org:subOrganizationOf {} .", group(a), group(b)),
            Fact::ActsFor(a, p) => format!("{} prov:actedOnBehalfOf {} .", agent(a), person(p)),
            Fact::Derived(a, b) => format!("{} prov:wasDerivedFrom {} .", dataset(a), dataset(b)),
            Fact::Owner(d, p) => format!("{} ex:dataOwner {} .", dataset(d), person(p)),
            Fact::Blocked(d, p) => format!("{} ex:embargoedFor {} .", dataset(d), person(p)),
            Fact::ReaderGroup(d, g) => format!("{} ex:grantedReadTo {} .", dataset(d), group(g)),
            Fact::DocDataset(x, d) => format!("{} dcterms:isPartOf {} .", doc(x), dataset(d)),
            Fact::Viewer(x, p) => format!("{} ex:sharedWith {} .", doc(x), person(p)),
            Fact::Noise(p, g) => format!("{} ex:likes {} .", person(p), group(g)),
        }
    }
}

fn random_fact(rng: &mut Rng) -> Fact {
    let p = |rng: &mut Rng| rng.below(6);
    let g = |rng: &mut Rng| rng.below(4);
    let d = |rng: &mut Rng| rng.below(5);
    match rng.below(16) {
        0 => Fact::PersonClass(p(rng), rng.below(3)),
        1 => Fact::AgentClass(rng.below(3)),
        2 => Fact::DatasetClass(d(rng)),
        3 | 4 => Fact::Member(p(rng), g(rng), rng.below(3)),
        5 => Fact::AgentMember(rng.below(3), g(rng)),
        6 => Fact::SubOrg(g(rng), g(rng)),
        7 => Fact::ActsFor(rng.below(3), p(rng)),
        8 => Fact::Derived(d(rng), d(rng)),
        9 => Fact::Owner(d(rng), p(rng)),
        10 => Fact::Blocked(d(rng), p(rng)),
        11 => Fact::ReaderGroup(d(rng), g(rng)),
        12 | 13 => Fact::DocDataset(rng.below(6), d(rng)),
        14 => Fact::Viewer(rng.below(6), p(rng)),
        _ => Fact::Noise(p(rng), g(rng)),
    }
}

/// The tuples the binding semantics read from the facts under the axioms present, computed
/// here directly from the facts (independently of the engine's reader).
fn twin(facts: &BTreeSet<Fact>, axioms: &[bool; 6]) -> BTreeSet<String> {
    let [
        sub_property,
        inverse,
        sub_class,
        transitive,
        viewer_bound,
        agents_bound,
    ] = *axioms;
    let is_user = |p: u64| {
        facts.contains(&Fact::PersonClass(p, 0))
            || (sub_class && facts.contains(&Fact::PersonClass(p, 1)))
    };
    let is_agent = |a: u64| agents_bound && facts.contains(&Fact::AgentClass(a));
    let is_dataset = |d: u64| facts.contains(&Fact::DatasetClass(d));
    let mut out = BTreeSet::new();
    let mut derived: BTreeSet<(u64, u64)> = BTreeSet::new();
    for f in facts {
        match *f {
            Fact::Member(p, g, how) if is_user(p) => {
                let read = match how {
                    0 => true,
                    1 => sub_property,
                    _ => inverse,
                };
                if read {
                    out.insert(format!("group:g{g}#member@user:p{p}"));
                }
            }
            Fact::AgentMember(a, g) if is_agent(a) => {
                out.insert(format!("group:g{g}#member@agent:a{a}"));
            }
            Fact::SubOrg(a, b) if a != b => {
                out.insert(format!("group:g{b}#member@group:g{a}#member"));
            }
            Fact::SubOrg(..) => {
                // A group that is its own sub-organization: group:g#member@group:g#member.
                if let Fact::SubOrg(a, _) = *f {
                    out.insert(format!("group:g{a}#member@group:g{a}#member"));
                }
            }
            Fact::ActsFor(a, p) if is_agent(a) && is_user(p) => {
                out.insert(format!("agent:a{a}#acts_for@user:p{p}"));
            }
            Fact::Derived(a, b) if is_dataset(a) && is_dataset(b) => {
                derived.insert((a, b));
            }
            Fact::Owner(d, p) if is_dataset(d) && is_user(p) => {
                out.insert(format!("dataset:d{d}#owner@user:p{p}"));
            }
            Fact::Blocked(d, p) if is_dataset(d) && is_user(p) => {
                out.insert(format!("dataset:d{d}#blocked@user:p{p}"));
            }
            Fact::ReaderGroup(d, g) if is_dataset(d) => {
                out.insert(format!("dataset:d{d}#reader@group:g{g}#member"));
            }
            Fact::DocDataset(x, d) if is_dataset(d) => {
                out.insert(format!("document:x{x}#dataset@dataset:d{d}"));
            }
            Fact::Viewer(x, p) if viewer_bound && is_user(p) => {
                out.insert(format!("document:x{x}#viewer@user:p{p}"));
            }
            _ => {}
        }
    }
    let mut pairs = derived.clone();
    if transitive {
        loop {
            let mut next = pairs.clone();
            for &(a, b) in &pairs {
                for &(c, d) in &pairs {
                    if b == c {
                        next.insert((a, d));
                    }
                }
            }
            if next == pairs {
                break;
            }
            pairs = next;
        }
    }
    for (a, b) in pairs {
        out.insert(format!("dataset:d{a}#derived_from@dataset:d{b}"));
    }
    out
}

fn index_tuples(clew: &Clew) -> BTreeSet<String> {
    clew.state()
        .index
        .tuples()
        .into_iter()
        .map(|t| t.key().to_string())
        .collect()
}

/// Every lookup of every relation for every subject the random graphs use.
fn answers(clew: &Clew) -> BTreeMap<String, Vec<String>> {
    let ctx = Map::new();
    let mut out = BTreeMap::new();
    let subjects: Vec<String> = (0..6)
        .map(|p| format!("user:p{p}"))
        .chain((0..3).map(|a| format!("agent:a{a}")))
        .collect();
    for s in &subjects {
        let user = User::parse(s).unwrap();
        for (relation, object_type) in [
            ("member", "group"),
            ("reader", "dataset"),
            ("viewer", "document"),
        ] {
            let page = clew
                .lookup(
                    &LookupRequest {
                        user: &user,
                        relation,
                        object_type,
                        context: &ctx,
                        contextual: &[],
                        max_depth: engine::DEFAULT_MAX_DEPTH,
                    },
                    &PageRequest::default(),
                    Consistency::Latest,
                )
                .unwrap();
            let mut objects: Vec<String> = page.objects.iter().map(|o| o.to_string()).collect();
            objects.sort();
            out.insert(format!("{s} {relation} {object_type}"), objects);
        }
    }
    out
}

/// An instance holding the twin's tuples as Clew's own.
fn twin_instance(tuples: &BTreeSet<String>) -> Clew {
    let c = Clew::memory().unwrap();
    c.write_model(MODEL).unwrap();
    let ts: Vec<Tuple> = tuples
        .iter()
        .map(|k| {
            let (object, rest) = k.split_once('#').unwrap();
            let (relation, user) = rest.split_once('@').unwrap();
            Tuple::parse(user, relation, object).unwrap()
        })
        .collect();
    if !ts.is_empty() {
        c.write_tuples_bulk(&ts, &[], "twin").unwrap();
    }
    c
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn bound_instance() -> Clew {
    let c = Clew::memory().unwrap();
    c.write_model(MODEL).unwrap();
    update(
        &c,
        &format!("INSERT DATA {{ GRAPH <https://ex.org/graph/bindings> {{ {BINDINGS} }} }}"),
    )
    .unwrap();
    c
}

/// A random graph in plain vocabularies, changed by random SPARQL updates (facts and axioms
/// inserted and deleted): after every update the index holds exactly the twin's tuples, and
/// every lookup answers as an instance holding the twin as Clew tuples.
#[test]
fn a_plain_vocabulary_graph_answers_like_its_tuple_twin() {
    let seeds: u64 = std::env::var("CLEW_BINDING_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut compared = 0;
    for seed in 1..=seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let clew = bound_instance();
        let mut facts: BTreeSet<Fact> = BTreeSet::new();
        // The two bindings start in place (BINDINGS holds them).
        let mut axioms = [false, false, false, false, true, true];
        // A first batch in one update, then single changes.
        // Most nodes typed (people as persons, some as contractors or robots), then relations.
        let mut first: Vec<Fact> = Vec::new();
        for p in 0..6 {
            first.push(Fact::PersonClass(
                p,
                [0, 0, 0, 1, 1, 2][rng.below(6) as usize],
            ));
        }
        first.extend((0..3).filter(|_| rng.below(4) > 0).map(Fact::AgentClass));
        first.extend((0..5).filter(|_| rng.below(5) > 0).map(Fact::DatasetClass));
        first.extend((0..60).map(|_| random_fact(&mut rng)));
        let body: String = first
            .iter()
            .map(|f| f.triple())
            .collect::<Vec<_>>()
            .join("\n");
        update(&clew, &format!("INSERT DATA {{ {body} }}")).unwrap();
        facts.extend(first);
        for step in 0..40 {
            match rng.below(10) {
                0 | 1 => {
                    let i = rng.below(6) as usize;
                    let axiom = AXIOMS[i];
                    let verb = if axioms[i] { "DELETE" } else { "INSERT" };
                    update(&clew, &format!("{verb} DATA {{ {axiom} }}")).unwrap();
                    axioms[i] = !axioms[i];
                }
                2..=4 if !facts.is_empty() => {
                    let i = rng.below(facts.len() as u64) as usize;
                    let f = facts.iter().nth(i).cloned().unwrap();
                    update(&clew, &format!("DELETE DATA {{ {} }}", f.triple())).unwrap();
                    facts.remove(&f);
                }
                _ => {
                    let f = random_fact(&mut rng);
                    update(&clew, &format!("INSERT DATA {{ {} }}", f.triple())).unwrap();
                    facts.insert(f);
                }
            }
            let want = twin(&facts, &axioms);
            assert_eq!(
                index_tuples(&clew),
                want,
                "seed {seed} step {step}: axioms {axioms:?}"
            );
            if step % 10 == 9 {
                assert_eq!(
                    answers(&clew),
                    answers(&twin_instance(&want)),
                    "seed {seed} step {step}"
                );
                compared += 1;
            }
        }
        // A model change re-reads the bound triples: without agent in group#member, agents'
        // memberships are not tuples.
        let narrower = MODEL.replace("[user, agent, group#member]", "[user, group#member]");
        clew.write_model(&narrower).unwrap();
        let want: BTreeSet<String> = twin(&facts, &axioms)
            .into_iter()
            .filter(|k| !(k.starts_with("group:") && k.contains("@agent:")))
            .collect();
        assert_eq!(
            index_tuples(&clew),
            want,
            "seed {seed}: after the model change"
        );
    }
    assert!(compared >= 40);
}

fn check(clew: &Clew, user: &str, relation: &str, object: &str) -> clew::CheckResult {
    let ctx = Map::new();
    let user = User::parse(user).unwrap();
    let object = ObjectRef::parse(object).unwrap();
    clew.check(&CheckRequest {
        user: &user,
        relation,
        object: &object,
        context: &ctx,
        contextual: &[],
        max_depth: engine::DEFAULT_MAX_DEPTH,
        explain: true,
    })
    .unwrap()
    .0
}

fn allowed(clew: &Clew, user: &str, relation: &str, object: &str) -> bool {
    check(clew, user, relation, object).decision == Decision::Allowed
}

#[test]
fn explanations_show_stored_triples_bindings_and_axioms() {
    let clew = bound_instance();
    update(
        &clew,
        &format!(
            "INSERT DATA {{ {} {} {} {} {} {} {} }}",
            Fact::PersonClass(1, 1).triple(),
            Fact::Member(1, 0, 1).triple(),
            Fact::ReaderGroup(0, 0).triple(),
            Fact::DatasetClass(0).triple(),
            Fact::DocDataset(0, 0).triple(),
            AXIOMS[0],
            AXIOMS[2],
        ),
    )
    .unwrap();
    let r = check(&clew, "user:p1", "viewer", "document:x0");
    assert_eq!(r.decision, Decision::Allowed);
    let path = r.explanation.unwrap().path;
    let steps: Vec<_> = path.iter().filter(|s| s.tuple.is_some()).collect();
    let tuples: Vec<&str> = steps.iter().map(|s| s.tuple.as_deref().unwrap()).collect();
    assert_eq!(
        tuples,
        [
            "document:x0#dataset@dataset:d0",
            "dataset:d0#reader@group:g0#member",
            "group:g0#member@user:p1"
        ]
    );
    let t = steps[0].triple.as_ref().unwrap();
    assert_eq!(t.predicate, "http://purl.org/dc/terms/isPartOf");
    assert_eq!(t.subject, "https://ex.org/doc/x0");
    assert_eq!(
        steps[0].binding.as_deref(),
        Some("https://ex.org/bindings#docDataset")
    );
    // The membership: stored as <person> ex:leads <group> (an inverse binding, through a
    // sub-property), the person typed through a subclass.
    let t = steps[2].triple.as_ref().unwrap();
    assert_eq!(
        (t.subject.as_str(), t.predicate.as_str(), t.object.as_str()),
        (
            "https://ex.org/person/p1",
            "https://ex.org/ns#leads",
            "https://ex.org/org/g0"
        )
    );
    let axioms: Vec<(&str, &str)> = steps[2]
        .axioms
        .iter()
        .map(|a| (a.subject.as_str(), a.predicate.as_str()))
        .collect();
    assert_eq!(
        axioms,
        [
            (
                "https://ex.org/ns#leads",
                "http://www.w3.org/2000/01/rdf-schema#subPropertyOf"
            ),
            (
                "https://ex.org/ns#Contractor",
                "http://www.w3.org/2000/01/rdf-schema#subClassOf"
            )
        ]
    );
    // Remove the subclass axiom: p1 is no longer a user, so the next check denies.
    let rev = update(&clew, &format!("DELETE DATA {{ {} }}", AXIOMS[2]))
        .unwrap()
        .revision;
    assert!(!allowed(&clew, "user:p1", "viewer", "document:x0"));
    // The change log records the tuple the axiom carried, though no quad of it was removed.
    let entry = clew.store().revision_entry(rev).unwrap().unwrap();
    let (plus, minus) = entry.tuples.expect("net tuples are recorded with bindings");
    assert!(plus.is_empty(), "{plus:?}");
    assert_eq!(minus.len(), 1, "{minus:?}");
    let removed: serde_json::Value = serde_json::from_str(&minus[0]).unwrap();
    assert_eq!(
        (&removed["user"], &removed["relation"], &removed["object"]),
        (&"user:p1".into(), &"member".into(), &"group:g0".into())
    );
    update(&clew, &format!("INSERT DATA {{ {} }}", AXIOMS[2])).unwrap();
    assert!(allowed(&clew, "user:p1", "viewer", "document:x0"));
}

#[test]
fn a_transitive_chain_is_explained_by_its_triples_and_the_declaration() {
    let clew = bound_instance();
    let facts = [
        Fact::DatasetClass(0),
        Fact::DatasetClass(1),
        Fact::DatasetClass(2),
        Fact::PersonClass(0, 0),
        Fact::Owner(0, 0),
        Fact::Derived(2, 1),
        Fact::Derived(1, 0),
    ];
    let body: String = facts
        .iter()
        .map(|f| f.triple())
        .collect::<Vec<_>>()
        .join(" ");
    update(&clew, &format!("INSERT DATA {{ {body} }}")).unwrap();
    // One hop: the owner of d0 reads d1, not d2.
    assert!(allowed(&clew, "user:p0", "reader", "dataset:d1"));
    assert!(!allowed(&clew, "user:p0", "reader", "dataset:d2"));
    update(&clew, &format!("INSERT DATA {{ {} }}", AXIOMS[3])).unwrap();
    let r = check(&clew, "user:p0", "reader", "dataset:d2");
    assert_eq!(r.decision, Decision::Allowed);
    let path = r.explanation.unwrap().path;
    let step = path
        .iter()
        .find(|s| s.tuple.as_deref() == Some("dataset:d2#derived_from@dataset:d0"))
        .expect("the closure tuple is a step");
    assert_eq!(step.chain.len(), 2);
    assert_eq!(step.chain[0].subject, "https://ex.org/data/d2");
    assert_eq!(step.chain[1].object, "https://ex.org/data/d0");
    assert_eq!(
        step.axioms.last().map(|a| a.object.as_str()),
        Some("http://www.w3.org/2002/07/owl#TransitiveProperty")
    );
    // Cutting the chain's middle link revokes at once.
    update(
        &clew,
        &format!("DELETE DATA {{ {} }}", Fact::Derived(1, 0).triple()),
    )
    .unwrap();
    assert!(!allowed(&clew, "user:p0", "reader", "dataset:d2"));
}

#[test]
fn a_binding_that_cannot_be_read_is_refused_and_changes_nothing() {
    let clew = bound_instance();
    let before = clew.state().revision;
    for bad in [
        "b:x a clew:RelationBinding ; clew:bindsType \"group\" ; clew:bindsRelation \"member\" .",
        "b:x a clew:TypeBinding ; clew:bindsType \"user\" .",
        "b:user clew:iriPrefix \"https://elsewhere.org/\" .",
        "b:member clew:inverse \"sometimes\" .",
    ] {
        let err = update(&clew, &format!("INSERT DATA {{ {bad} }}")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("https://ex.org/bindings#"), "{bad}: {msg}");
        assert_eq!(clew.state().revision, before, "{bad}");
    }
}

#[test]
fn deleting_an_api_tuple_keeps_the_same_tuple_a_binding_reads() {
    let clew = bound_instance();
    update(
        &clew,
        &format!(
            "INSERT DATA {{ {} {} }}",
            Fact::PersonClass(0, 0).triple(),
            Fact::Member(0, 0, 0).triple()
        ),
    )
    .unwrap();
    let t = Tuple::parse("user:p0", "member", "group:g0").unwrap();
    clew.write_tuples(std::slice::from_ref(&t), &[], "api")
        .unwrap();
    clew.write_tuples(&[], &[t.key()], "api").unwrap();
    assert!(allowed(&clew, "user:p0", "member", "group:g0"));
    update(
        &clew,
        &format!("DELETE DATA {{ {} }}", Fact::Member(0, 0, 0).triple()),
    )
    .unwrap();
    assert!(!allowed(&clew, "user:p0", "member", "group:g0"));
    let key: TupleKey = t.key();
    assert!(!clew.state().index.contains_key(&key));
}

#[cfg(feature = "rocksdb")]
#[test]
fn a_bound_graph_reads_the_same_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let want = {
        let clew = Clew::open(dir.path()).unwrap();
        clew.write_model(MODEL).unwrap();
        update(
            &clew,
            &format!("INSERT DATA {{ GRAPH <https://ex.org/graph/bindings> {{ {BINDINGS} }} }}"),
        )
        .unwrap();
        let mut rng = Rng(7);
        let body: String = (0..60)
            .map(|_| random_fact(&mut rng).triple())
            .collect::<Vec<_>>()
            .join("\n");
        update(
            &clew,
            &format!("INSERT DATA {{ {body} {} {} }}", AXIOMS[0], AXIOMS[3]),
        )
        .unwrap();
        index_tuples(&clew)
    };
    let clew = Clew::open(dir.path()).unwrap();
    assert_eq!(index_tuples(&clew), want);
}

/// The ontology's example file reads as the tuples its comments say, under the model its header
/// gives.
#[test]
fn the_ontology_example_reads_as_its_comments_say() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/ontology/examples/bindings.ttl"
    ))
    .unwrap();
    let model: String = text
        .lines()
        .skip_while(|l| !l.starts_with("#   model"))
        .take_while(|l| l.starts_with("#  "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    let clew = Clew::memory().unwrap();
    clew.write_model(&model).unwrap();
    clew.import_rdf(
        text.as_bytes(),
        &clew::service::RdfImport {
            source: clew::store::RdfSource {
                format: clew::store::RdfFormat::Turtle,
                graph: "https://example.org/graph/steward",
                force_graph: false,
                base_iri: None,
            },
            replace: false,
            log_source: "test",
        },
    )
    .unwrap();
    let want: BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            l.split_once(".  ")
                .or_else(|| l.split_once("; "))?
                .1
                .trim()
                .strip_prefix("# ")
                .map(str::to_string)
        })
        .filter(|c| c.contains('#') && c.contains('@') && !c.contains(' '))
        .collect();
    assert_eq!(want.len(), 5, "{want:?}");
    assert_eq!(index_tuples(&clew), want);
}
