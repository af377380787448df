#!/usr/bin/env python3
"""Checks Clew's vocabulary in ontology/ against itself and against the Rust sources.

    pip install rdflib
    python3 scripts/check_ontology.py

1. Every .ttl file under ontology/ parses (rdflib's Turtle parser).
2. Every clew: term (https://clew.dev/ns#...) used as a subject, predicate or object in any of
   them is declared in the vocabulary (the .ttl files outside ontology/examples/) as an
   owl:Class, rdfs:Class, owl:ObjectProperty, owl:DatatypeProperty, owl:AnnotationProperty,
   rdf:Property or owl:NamedIndividual; a term used as a predicate is a property, a term used as
   the object of rdf:type is a class.
3. Every declared term has an English rdfs:label and rdfs:comment and rdfs:isDefinedBy the
   namespace; the ontology header has dcterms:title, dcterms:description, dcterms:license and
   owl:versionInfo.
4. Every clew: term the Rust sources under src/ name is declared: clew("...") and iri::ns("...")
   calls (a call with a loop variable, as in `for (p, o) in [("number", ..), ..] { clew(p) }`,
   is resolved to the loop's string literals; one it cannot resolve is an error),
   "https://clew.dev/ns#..." strings, "{NS}..." format strings, and clew:Term in comments and
   messages. A term the code writes or reads must not be marked vs:term_status "unstable"
   (meaning: not implemented yet).

Then it checks itself: that removing a declaration, or naming an undeclared term in Rust, is
reported. Prints every problem and exits 1 if there is any.
"""

from __future__ import annotations

import pathlib
import re
import sys

try:
    import rdflib
    from rdflib import OWL, RDF, RDFS, Literal, URIRef
    from rdflib.namespace import DCTERMS
except ImportError:
    sys.exit("check_ontology: rdflib is not installed (pip install rdflib)")

ROOT = pathlib.Path(__file__).resolve().parent.parent
NS = "https://clew.dev/ns#"
ONTOLOGY = URIRef(NS)
VS_STATUS = URIRef("http://www.w3.org/2003/06/sw-vocab-status/ns#term_status")

CLASS_KINDS = {OWL.Class, RDFS.Class}
PROPERTY_KINDS = {OWL.ObjectProperty, OWL.DatatypeProperty, OWL.AnnotationProperty, RDF.Property}
DECLARATION_KINDS = CLASS_KINDS | PROPERTY_KINDS | {OWL.NamedIndividual}


def short(term: URIRef) -> str:
    return "clew:" + str(term)[len(NS):] if str(term).startswith(NS) else f"<{term}>"


def parse(name: str, text: str, problems: list[str]) -> rdflib.Graph | None:
    g = rdflib.Graph()
    try:
        g.parse(data=text, format="turtle", publicID=f"file:///{name}")
    except Exception as e:  # rdflib raises several unrelated exception types
        # rdflib's message ends with the whole input ("... at ^ in: ..."): keep the position.
        message = " ".join(str(e).split(" at ^ in:")[0].split())
        problems.append(f"{name}: does not parse as Turtle: {message[:300]}")
        return None
    return g


def english(g: rdflib.Graph, s: URIRef, p: URIRef) -> bool:
    return any(isinstance(o, Literal) and o.language == "en" and str(o).strip() for o in g.objects(s, p))


def check_turtle(files: dict[str, str], problems: list[str]) -> tuple[set[URIRef], set[URIRef]]:
    """Checks 1-3. Returns the declared clew: terms and those of them marked unstable."""
    vocab = rdflib.Graph()
    graphs = {}
    for name, text in sorted(files.items()):
        g = parse(name, text, problems)
        if g is None:
            continue
        graphs[name] = g
        if not name.startswith("ontology/examples/"):
            vocab += g
    if len(graphs) < len(files):
        return set(), set()  # everything else would be reported missing

    declared = {
        s: {k for k in vocab.objects(s, RDF.type) if k in DECLARATION_KINDS}
        for s in set(vocab.subjects())
        if isinstance(s, URIRef) and str(s).startswith(NS) and s != ONTOLOGY
    }
    declared = {s: kinds for s, kinds in declared.items() if kinds}

    for name, g in sorted(graphs.items()):
        found = set()
        for s, p, o in g:
            for position, term in (("subject", s), ("predicate", p), ("object", o)):
                if not (isinstance(term, URIRef) and str(term).startswith(NS)) or term == ONTOLOGY:
                    continue
                if term not in declared:
                    found.add(f"{name}: {short(term)} is used (as a {position}) but the vocabulary does not declare it")
                elif position == "predicate" and not declared[term] & PROPERTY_KINDS:
                    found.add(f"{name}: {short(term)} is used as a predicate but is not declared a property")
                elif position == "object" and p == RDF.type and not declared[term] & CLASS_KINDS:
                    found.add(f"{name}: {short(term)} is used as a class (rdf:type) but is not declared a class")
        problems.extend(sorted(found))

    for term in sorted(declared):
        if not english(vocab, term, RDFS.label):
            problems.append(f"ontology: {short(term)} has no English rdfs:label (\"…\"@en)")
        if not english(vocab, term, RDFS.comment):
            problems.append(f"ontology: {short(term)} has no English rdfs:comment (\"…\"@en)")
        if (term, RDFS.isDefinedBy, ONTOLOGY) not in vocab:
            problems.append(f"ontology: {short(term)} has no rdfs:isDefinedBy <{NS}>")

    if (ONTOLOGY, RDF.type, OWL.Ontology) not in vocab:
        problems.append(f"ontology: <{NS}> is not declared an owl:Ontology")
    for p, what in ((DCTERMS.title, "dcterms:title"), (DCTERMS.description, "dcterms:description"),
                    (DCTERMS.license, "dcterms:license"), (OWL.versionInfo, "owl:versionInfo")):
        if vocab.value(ONTOLOGY, p) is None:
            problems.append(f"ontology: the ontology header has no {what}")

    unstable = {s for s in declared if any(str(o) == "unstable" for o in vocab.objects(s, VS_STATUS))}
    return set(declared), unstable


# --- Rust sources ---------------------------------------------------------------------------------

CALL_LITERAL = re.compile(r'\b(?:clew|ns)\(\s*"([^"\\]*)"\s*\)')
CALL_VARIABLE = re.compile(r'\b(clew|ns)\(\s*([A-Za-z_]\w*)\s*\)')
FULL_IRI = re.compile(re.escape(NS) + r'([A-Za-z_][\w-]*)')
NS_FORMAT = re.compile(r'\{(?:iri::)?NS\}([A-Za-z_]\w*)')
MENTION = re.compile(r'(?<![\w:/.#-])clew:(?!:)([A-Za-z_]\w*)')
FN = re.compile(r'\bfn\s+(\w+)\s*(?:<[^>]*>)?\s*\(([^)]*)\)')


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def loop_literals(text: str, pos: int, var: str) -> list[str] | None:
    """The string literals a loop variable takes, if `var` is bound by the nearest `for` before
    `pos` whose array literal ends before `pos`: `for var in ["a", ..]` or the first element of
    `for (var, ..) in [("a", ..), ..]`."""
    loops = list(re.finditer(r'\bfor\s+(\(\s*)?' + re.escape(var) + r'\b[^{;]*?\bin\s*\[', text[:pos]))
    if not loops:
        return None
    loop = loops[-1]
    start = loop.end() - 1
    depth = 0
    for i in range(start, pos):
        if text[i] == "[":
            depth += 1
        elif text[i] == "]":
            depth -= 1
            if depth == 0:
                array = text[start:i + 1]
                pattern = r'\(\s*"([^"\\]*)"\s*,' if loop.group(1) else r'"([^"\\]*)"'
                return re.findall(pattern, array)
    return None


def rust_uses(sources: dict[str, str], problems: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Check 4's inputs: {term: [where]} for terms the code writes or reads, and for terms only
    mentioned in comments and messages."""
    code: dict[str, list[str]] = {}
    mentioned: dict[str, list[str]] = {}
    for name, text in sorted(sources.items()):
        def add(into, local, pos):
            into.setdefault(local, []).append(f"{name}:{line_of(text, pos)}")

        for m in CALL_LITERAL.finditer(text):
            add(code, m.group(1), m.start())
        for m in FULL_IRI.finditer(text):
            add(code, m.group(1), m.start())
        for m in NS_FORMAT.finditer(text):
            add(code, m.group(1), m.start())
        for m in MENTION.finditer(text):
            add(mentioned, m.group(1), m.start())
        for m in CALL_VARIABLE.finditer(text):
            helper, var = m.group(1), m.group(2)
            fns = [f for f in FN.finditer(text[:m.start()])]
            enclosing = fns[-1] if fns else None
            if (enclosing and enclosing.group(1) in ("clew", "ns")
                    and re.search(r'\b' + re.escape(var) + r'\s*:', enclosing.group(2))):
                continue  # the helper itself, passing its parameter on
            values = loop_literals(text, m.start(), var)
            if not values:
                problems.append(
                    f"{name}:{line_of(text, m.start())}: {helper}({var}) names a clew: term this check "
                    f"cannot resolve; call {helper}(\"...\") with a literal, or loop over an array of literals"
                )
                continue
            for v in values:
                add(code, v, m.start())
    return code, mentioned


def check_rust(sources: dict[str, str], declared: set[URIRef], unstable: set[URIRef], problems: list[str]) -> int:
    code, mentioned = rust_uses(sources, problems)
    if not code:
        problems.append("src/: found no clew: term written or read (no clew(\"...\") calls); this check is out of date")
    for uses, what in ((code, "uses"), (mentioned, "mentions")):
        for local, where in sorted(uses.items()):
            term = URIRef(NS + local)
            if term not in declared:
                problems.append(
                    f"{where[0]}: the Rust source {what} clew:{local}, which ontology/clew.ttl does not declare"
                    + (f" (also at {', '.join(where[1:4])}{' …' if len(where) > 4 else ''})" if len(where) > 1 else "")
                )
            elif uses is code and term in unstable:
                problems.append(
                    f"{where[0]}: the Rust source uses clew:{local}, which ontology/clew.ttl marks "
                    "vs:term_status \"unstable\" (not implemented); remove the mark now that it is"
                )
    return len(code)


def run(files: dict[str, str], sources: dict[str, str]) -> tuple[list[str], str]:
    problems: list[str] = []
    declared, unstable = check_turtle(files, problems)
    if any("does not parse" in p for p in problems):
        return problems, ""
    used = check_rust(sources, declared, unstable, problems)
    summary = (f"{len(files)} Turtle files, {len(declared)} clew: terms ({len(unstable)} unstable), "
               f"{used} terms written or read by src/")
    return problems, summary


def self_test(files: dict[str, str], sources: dict[str, str]) -> list[str]:
    """The check must catch a removed declaration and an undeclared term in Rust."""
    failures = []
    vocab = rdflib.Graph().parse(data=files["ontology/clew.ttl"], format="turtle")
    revision = URIRef(NS + "revision")
    vocab.remove((revision, RDF.type, None))
    problems, _ = run({**files, "ontology/clew.ttl": vocab.serialize(format="turtle")}, sources)
    if not any("clew:revision" in p and "does not declare" in p for p in problems):
        failures.append("self-test: removing the declaration of clew:revision was not reported")
    problems, _ = run(files, {**sources, "src/selftest.rs": 'fn f() { clew("notATerm"); }'})
    if not any("clew:notATerm" in p for p in problems):
        failures.append("self-test: clew(\"notATerm\") in Rust was not reported")
    looped = 'fn g() { for (p, o) in [("alsoNotATerm", 1)] { x(clew(p), o); } }'
    problems, _ = run(files, {**sources, "src/selftest.rs": looped})
    if not any("clew:alsoNotATerm" in p for p in problems):
        failures.append("self-test: clew(p) over a loop of literals was not resolved")
    return failures


def main() -> int:
    files = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
             for p in sorted((ROOT / "ontology").rglob("*.ttl"))}
    sources = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
               for p in sorted((ROOT / "src").rglob("*.rs"))}
    if "ontology/clew.ttl" not in files:
        print("check_ontology: ontology/clew.ttl not found", file=sys.stderr)
        return 1
    problems, summary = run(files, sources)
    if not problems:
        problems = self_test(files, sources)
    for p in problems:
        print(f"check_ontology: {p}", file=sys.stderr)
    if problems:
        print(f"check_ontology: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"ontology OK: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
