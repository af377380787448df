//! Semantic validation of a parsed [`Model`], following the rules (and the staging) of
//! OpenFGA's language package: names first (reserved, too long, duplicate relations, conditions
//! and parameters) and the schema version; then references (types, relations, conditions,
//! tupleset relations); then duplicates (types, type restrictions, operands); then whether every
//! relation can ever be satisfied (an entry point, no pure cycles); and unused conditions.
//! A later stage runs only when the earlier ones found nothing, so one mistake does not cascade
//! (unused conditions are reported whenever names and schema are sound). Errors come out in
//! source order.

use super::ast::{Model, RelationDef, RestrictionKind, Rewrite, Span, TypeRestriction};
use super::parser::{LeafSpan, RestrictionSpans, SourceMap};
use super::{ModelError, ModelErrors};
use std::collections::{HashMap, HashSet};

/// Longest type name OpenFGA accepts (`^[^:#@\*\s]{1,254}$`).
const MAX_TYPE_NAME: usize = 254;
/// Longest relation name OpenFGA accepts (`^[^:#@\*\s]{1,50}$`).
const MAX_RELATION_NAME: usize = 50;
/// Deepest rewrite tree accepted (the parser allows far less; this guards hand-built models).
const MAX_REWRITE_DEPTH: usize = 256;
/// Steps allowed, over the whole model, to the search that tells a loop from a missing entry
/// point (it only picks the wording of the message).
const LOOP_SEARCH_BUDGET: usize = 200_000;
/// Deepest recursion of that search (keeps the stack bounded on long chains of relations).
const LOOP_SEARCH_DEPTH: usize = 1_000;

pub(crate) fn validate_model(model: &Model, map: Option<&SourceMap>) -> Result<(), ModelErrors> {
    let mut v = Validator::new(model, map);
    v.run();
    // Report in source order (stable, so errors at one position keep their stage order).
    v.errors.sort_by_key(|e| (e.line, e.column));
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(ModelErrors { errors: v.errors })
    }
}

/// A (type index, relation index) pair.
type Node = (usize, usize);

struct Validator<'a> {
    model: &'a Model,
    map: Option<&'a SourceMap>,
    errors: Vec<ModelError>,
    /// Type name -> index of its last declaration (as OpenFGA's type map).
    type_index: HashMap<&'a str, usize>,
    /// Per type: relation name -> index of its first declaration.
    relation_index: Vec<HashMap<&'a str, usize>>,
    condition_names: HashSet<&'a str>,
}

impl<'a> Validator<'a> {
    fn new(model: &'a Model, map: Option<&'a SourceMap>) -> Self {
        let mut type_index = HashMap::new();
        let mut relation_index = Vec::new();
        for (ti, type_def) in model.types.iter().enumerate() {
            type_index.insert(type_def.name.as_str(), ti);
            let mut relations = HashMap::new();
            for (ri, relation) in type_def.relations.iter().enumerate() {
                relations.entry(relation.name.as_str()).or_insert(ri);
            }
            relation_index.push(relations);
        }
        let condition_names = model.conditions.iter().map(|c| c.name.as_str()).collect();
        Self {
            model,
            map,
            errors: Vec::new(),
            type_index,
            relation_index,
            condition_names,
        }
    }

    fn error(&mut self, span: Span, message: String) {
        self.errors.push(ModelError::semantic(span, message));
    }

    // ----- lookups ---------------------------------------------------------------------------

    fn relation(&self, node: Node) -> Option<&'a RelationDef> {
        self.model.types.get(node.0)?.relations.get(node.1)
    }

    /// The relation `name` on the type declared at `ti`.
    fn lookup_on(&self, ti: usize, name: &str) -> Option<Node> {
        self.relation_index.get(ti)?.get(name).map(|&ri| (ti, ri))
    }

    /// The relation `relation` on the type named `type_name`.
    fn lookup(&self, type_name: &str, relation: &str) -> Option<Node> {
        let ti = *self.type_index.get(type_name)?;
        self.lookup_on(ti, relation)
    }

    // ----- positions -------------------------------------------------------------------------

    fn relation_span(&self, node: Node) -> Span {
        self.relation(node).map(|r| r.span).unwrap_or_default()
    }

    fn leaf_span(&self, node: Node, leaf: usize) -> Option<&'a LeafSpan> {
        self.map?.types.get(node.0)?.get(node.1)?.leaves.get(leaf)
    }

    fn restriction_spans(&self, node: Node, k: usize) -> Option<&'a RestrictionSpans> {
        self.map?
            .types
            .get(node.0)?
            .get(node.1)?
            .restrictions
            .get(k)
    }

    fn leaf_name(&self, node: Node, leaf: usize) -> Span {
        self.leaf_span(node, leaf)
            .map_or_else(|| self.relation_span(node), |s| s.name)
    }

    fn leaf_whole(&self, node: Node, leaf: usize) -> Span {
        self.leaf_span(node, leaf)
            .map_or_else(|| self.relation_span(node), |s| s.whole)
    }

    fn leaf_tupleset(&self, node: Node, leaf: usize) -> Span {
        self.leaf_span(node, leaf)
            .and_then(|s| s.tupleset)
            .unwrap_or_else(|| self.relation_span(node))
    }

    fn restriction_base(&self, node: Node, k: usize) -> Span {
        self.restriction_spans(node, k)
            .map_or_else(|| self.relation_span(node), |s| s.base)
    }

    fn restriction_type(&self, node: Node, k: usize) -> Span {
        self.restriction_spans(node, k)
            .map_or_else(|| self.relation_span(node), |s| s.type_name)
    }

    fn restriction_condition(&self, node: Node, k: usize) -> Span {
        self.restriction_spans(node, k)
            .and_then(|s| s.condition)
            .unwrap_or_else(|| self.restriction_base(node, k))
    }

    fn param_span(&self, ci: usize, pi: usize) -> Span {
        self.map
            .and_then(|m| m.conditions.get(ci)?.get(pi).copied())
            .or_else(|| self.model.conditions.get(ci).map(|c| c.span))
            .unwrap_or_default()
    }

    // ----- the stages ------------------------------------------------------------------------

    fn run(&mut self) {
        self.check_names();
        if self.model.schema_version.is_empty() {
            self.error(Span::default(), "schema version required".to_string());
            return;
        }
        if !matches!(self.model.schema_version.as_str(), "1.1" | "1.2") {
            let span = self.map.and_then(|m| m.schema).unwrap_or(Span {
                line: 1,
                column: 0,
                end_column: 0,
            });
            let message = format!(
                "invalid schema {} (only 1.1 and 1.2 are supported)",
                self.model.schema_version
            );
            self.error(span, message);
            return;
        }
        if !self.errors.is_empty() {
            return;
        }
        self.check_references();
        if self.errors.is_empty() {
            self.check_duplicates();
        }
        if self.errors.is_empty() {
            self.check_entry_points();
        }
        self.check_unused_conditions();
    }

    /// Reserved and over-long names, duplicate relations/conditions/parameters, and the shape of
    /// hand-built models (direct assignment vs. `directly_related`, depth, empty operators).
    fn check_names(&mut self) {
        let model = self.model;
        for type_def in &model.types {
            if matches!(type_def.name.as_str(), "self" | "this") {
                self.error(
                    type_def.span,
                    "a type cannot be named 'self' or 'this'.".to_string(),
                );
            } else if !valid_name(&type_def.name, MAX_TYPE_NAME) {
                self.error(
                    type_def.span,
                    format!(
                        "type '{}' does not match naming rule: '^[^:#@\\*\\s]{{1,{MAX_TYPE_NAME}}}$'.",
                        type_def.name
                    ),
                );
            }
            let mut seen = HashSet::new();
            for relation in &type_def.relations {
                if matches!(relation.name.as_str(), "self" | "this") {
                    self.error(
                        relation.span,
                        "a relation cannot be named 'self' or 'this'.".to_string(),
                    );
                } else if !valid_name(&relation.name, MAX_RELATION_NAME) {
                    self.error(
                        relation.span,
                        format!(
                            "relation '{}' of type '{}' does not match naming rule: '^[^:#@\\*\\s]{{1,{MAX_RELATION_NAME}}}$'.",
                            relation.name, type_def.name
                        ),
                    );
                } else if !seen.insert(relation.name.as_str()) {
                    self.error(
                        relation.span,
                        format!(
                            "'{}' is already defined in '{}'",
                            relation.name, type_def.name
                        ),
                    );
                }
                self.check_shape(relation);
            }
        }
        let mut seen = HashSet::new();
        for (ci, condition) in model.conditions.iter().enumerate() {
            if !seen.insert(condition.name.as_str()) {
                self.error(
                    condition.span,
                    format!(
                        "condition '{}' is already defined in the model",
                        condition.name
                    ),
                );
            }
            let mut params = HashSet::new();
            for (pi, param) in condition.params.iter().enumerate() {
                if !params.insert(param.name.as_str()) {
                    let span = self.param_span(ci, pi);
                    self.error(
                        span,
                        format!(
                            "parameter '{}' is already defined in the condition '{}'",
                            param.name, condition.name
                        ),
                    );
                }
            }
            if condition.expression.trim().is_empty() {
                self.error(
                    condition.span,
                    format!("condition '{}' has an empty expression", condition.name),
                );
            }
        }
    }

    /// Checks what the parser guarantees but a hand-built model may break.
    fn check_shape(&mut self, relation: &RelationDef) {
        let span = relation.span;
        // Iterative walk, so a pathologically deep hand-built tree cannot overflow the stack.
        let mut stack = vec![(&relation.rewrite, 1usize)];
        let mut has_this = false;
        let mut too_deep = false;
        let mut empty_operator = false;
        while let Some((rewrite, depth)) = stack.pop() {
            if depth > MAX_REWRITE_DEPTH {
                too_deep = true;
                break;
            }
            match rewrite {
                Rewrite::This => has_this = true,
                Rewrite::Computed(_) | Rewrite::TupleToUserset { .. } => {}
                Rewrite::Union(children) | Rewrite::Intersection(children) => {
                    empty_operator |= children.is_empty();
                    stack.extend(children.iter().map(|c| (c, depth + 1)));
                }
                Rewrite::Exclusion { base, subtract } => {
                    stack.push((base, depth + 1));
                    stack.push((subtract, depth + 1));
                }
            }
        }
        let name = &relation.name;
        if too_deep {
            self.error(
                span,
                format!("the definition of `{name}` is nested more than {MAX_REWRITE_DEPTH} levels deep."),
            );
            // Any error here stops validation before the stages that recurse over the tree.
        }
        if empty_operator {
            self.error(
                span,
                format!("the definition of `{name}` has an 'or'/'and' without operands."),
            );
        }
        if has_this && relation.directly_related.is_empty() {
            self.error(
                span,
                format!("the direct assignment of `{name}` must list at least one type."),
            );
        }
        if !has_this && !relation.directly_related.is_empty() {
            self.error(
                span,
                format!(
                    "`{name}` lists directly related types but its definition has no direct assignment."
                ),
            );
        }
    }

    /// Every type, relation and condition a definition mentions must exist, and every tupleset
    /// relation must be direct-only with the computed relation on at least one of its types.
    fn check_references(&mut self) {
        let model = self.model;
        for (ti, type_def) in model.types.iter().enumerate() {
            for (ri, relation) in type_def.relations.iter().enumerate() {
                let mut leaf = 0;
                self.check_rewrite_refs((ti, ri), relation, &relation.rewrite, &mut leaf);
            }
        }
    }

    fn check_rewrite_refs(
        &mut self,
        node: Node,
        relation: &'a RelationDef,
        rewrite: &'a Rewrite,
        leaf: &mut usize,
    ) {
        let this_leaf = *leaf;
        match rewrite {
            Rewrite::Union(children) | Rewrite::Intersection(children) => {
                for child in children {
                    self.check_rewrite_refs(node, relation, child, leaf);
                }
                return;
            }
            Rewrite::Exclusion { base, subtract } => {
                self.check_rewrite_refs(node, relation, base, leaf);
                self.check_rewrite_refs(node, relation, subtract, leaf);
                return;
            }
            _ => *leaf += 1,
        }
        match rewrite {
            Rewrite::This => {
                for (k, restriction) in relation.directly_related.iter().enumerate() {
                    self.check_restriction(node, k, restriction);
                }
            }
            Rewrite::Computed(target) => {
                if self.lookup_on(node.0, target).is_none() {
                    let span = self.leaf_name(node, this_leaf);
                    self.error(span, format!("the relation `{target}` does not exist."));
                }
            }
            Rewrite::TupleToUserset { tupleset, computed } => {
                self.check_tupleset(node, this_leaf, tupleset, computed);
            }
            Rewrite::Union(_) | Rewrite::Intersection(_) | Rewrite::Exclusion { .. } => {}
        }
    }

    fn check_restriction(&mut self, node: Node, k: usize, restriction: &TypeRestriction) {
        let type_name = restriction.type_name.as_str();
        if !self.type_index.contains_key(type_name) {
            let span = self.restriction_type(node, k);
            self.error(span, format!("`{type_name}` is not a valid type."));
        }
        if let Some(condition) = &restriction.condition
            && !self.condition_names.contains(condition.as_str())
        {
            let span = self.restriction_condition(node, k);
            self.error(
                span,
                format!("`{condition}` is not a defined condition in the model."),
            );
        }
        if let RestrictionKind::Userset(relation) = &restriction.kind
            && self.lookup(type_name, relation).is_none()
        {
            let span = self.restriction_base(node, k);
            self.error(
                span,
                format!("`{relation}` is not a valid relation for `{type_name}`."),
            );
        }
    }

    fn check_tupleset(&mut self, node: Node, leaf: usize, tupleset: &str, computed: &str) {
        let type_name = self
            .model
            .types
            .get(node.0)
            .map(|t| t.name.as_str())
            .unwrap_or_default();
        let Some(tupleset_node) = self.lookup_on(node.0, tupleset) else {
            let span = self.leaf_whole(node, leaf);
            self.error(
                span,
                format!("`{tupleset}` is not a valid relation for `{type_name}`."),
            );
            return;
        };
        let Some(tupleset_relation) = self.relation(tupleset_node) else {
            return;
        };
        let direct_only = tupleset_relation.rewrite == Rewrite::This
            && tupleset_relation
                .directly_related
                .iter()
                .all(|r| r.kind == RestrictionKind::Direct);
        if !direct_only {
            let span = self.leaf_tupleset(node, leaf);
            self.error(
                span,
                format!("`{tupleset}` relation used inside from allows only direct relation."),
            );
            return;
        }
        let missing: Vec<&str> = tupleset_relation
            .directly_related
            .iter()
            .map(|r| r.type_name.as_str())
            .filter(|t| self.lookup(t, computed).is_none())
            .collect();
        if !missing.is_empty() && missing.len() == tupleset_relation.directly_related.len() {
            let span = self.leaf_whole(node, leaf);
            for related in missing {
                self.error(
                    span,
                    format!(
                        "the `{computed}` relation definition on type `{type_name}` is not valid: `{computed}` does not exist on `{tupleset}`, which is of type `{related}`."
                    ),
                );
            }
        }
    }

    /// Duplicate types, duplicate type restrictions, and the same operand twice under one
    /// operator.
    fn check_duplicates(&mut self) {
        let model = self.model;
        let mut first_seen: HashMap<&str, Span> = HashMap::new();
        for type_def in &model.types {
            if let Some(&first) = first_seen.get(type_def.name.as_str()) {
                // OpenFGA points at the first declaration; the message names the repeat.
                self.error(
                    first,
                    format!(
                        "the type `{}` is a duplicate (declared again at line {}).",
                        type_def.name,
                        type_def.span.line.saturating_add(1)
                    ),
                );
            } else {
                first_seen.insert(type_def.name.as_str(), type_def.span);
            }
        }
        for (ti, type_def) in model.types.iter().enumerate() {
            for (ri, relation) in type_def.relations.iter().enumerate() {
                let node = (ti, ri);
                let mut seen = HashSet::new();
                for (k, restriction) in relation.directly_related.iter().enumerate() {
                    if !seen.insert(restriction) {
                        let span = self.restriction_base(node, k);
                        self.error(
                            span,
                            format!(
                                "the type restriction `{restriction}` is a duplicate in the relation `{}`.",
                                relation.name
                            ),
                        );
                    }
                }
                let mut leaf = 0;
                self.check_duplicate_operands(node, &relation.name, &relation.rewrite, &mut leaf);
            }
        }
    }

    fn check_duplicate_operands(
        &mut self,
        node: Node,
        relation: &str,
        rewrite: &Rewrite,
        leaf: &mut usize,
    ) {
        match rewrite {
            Rewrite::This | Rewrite::Computed(_) | Rewrite::TupleToUserset { .. } => *leaf += 1,
            Rewrite::Union(children) | Rewrite::Intersection(children) => {
                let mut seen = HashSet::new();
                for child in children {
                    let at = *leaf;
                    if let Some(name) = operand_name(child)
                        && !seen.insert(name.clone())
                    {
                        let span = self.leaf_whole(node, at);
                        self.error(
                            span,
                            format!(
                                "the partial relation definition `{name}` is a duplicate in the relation `{relation}`."
                            ),
                        );
                    }
                    self.check_duplicate_operands(node, relation, child, leaf);
                }
            }
            Rewrite::Exclusion { base, subtract } => {
                self.check_duplicate_operands(node, relation, base, leaf);
                let at = *leaf;
                self.check_duplicate_operands(node, relation, subtract, leaf);
                if let (Some(a), Some(b)) = (operand_name(base), operand_name(subtract))
                    && a == b
                {
                    let span = self.leaf_whole(node, at);
                    self.error(
                        span,
                        format!(
                            "the partial relation definition `{a}` is a duplicate in the relation `{relation}`."
                        ),
                    );
                }
            }
        }
    }

    /// Every relation needs an entry point: some way for a stored tuple (rather than only other
    /// relations) to satisfy it. Computed as a least fixpoint (equivalent to OpenFGA's
    /// path-based search), then OpenFGA's search tells loops from plain missing entry points.
    fn check_entry_points(&mut self) {
        let model = self.model;
        let mut has_entry: Vec<Vec<bool>> = model
            .types
            .iter()
            .map(|t| vec![false; t.relations.len()])
            .collect();
        // Reverse dependencies: which relations to re-evaluate when a relation gains an entry.
        let mut dependents: HashMap<Node, Vec<Node>> = HashMap::new();
        let mut work: Vec<Node> = Vec::new();
        for (ti, type_def) in model.types.iter().enumerate() {
            for (ri, relation) in type_def.relations.iter().enumerate() {
                let mut deps = Vec::new();
                self.dependencies((ti, ri), relation, &relation.rewrite, &mut deps);
                for dep in deps {
                    dependents.entry(dep).or_default().push((ti, ri));
                }
                work.push((ti, ri));
            }
        }
        work.reverse();
        while let Some(node) = work.pop() {
            if entry(&has_entry, node) {
                continue;
            }
            let Some(relation) = self.relation(node) else {
                continue;
            };
            if self.resolves(node, relation, &relation.rewrite, &has_entry) {
                if let Some(slot) = has_entry.get_mut(node.0).and_then(|r| r.get_mut(node.1)) {
                    *slot = true;
                }
                if let Some(next) = dependents.get(&node) {
                    work.extend(next.iter().copied());
                }
            }
        }
        let mut budget = LOOP_SEARCH_BUDGET;
        for (ti, type_def) in model.types.iter().enumerate() {
            for (ri, relation) in type_def.relations.iter().enumerate() {
                if entry(&has_entry, (ti, ri)) {
                    continue;
                }
                let mut visited = HashSet::new();
                let (_, looped) =
                    self.search((ti, ri), &relation.rewrite, &mut visited, &mut budget, 0);
                let why = if looped {
                    "potential loop"
                } else {
                    "no entrypoint"
                };
                self.error(
                    relation.span,
                    format!(
                        "`{}` is an impossible relation for `{}` ({why}).",
                        relation.name, type_def.name
                    ),
                );
            }
        }
    }

    /// The relations whose entry points `rewrite` (of `node`) depends on.
    fn dependencies(
        &self,
        node: Node,
        relation: &RelationDef,
        rewrite: &Rewrite,
        out: &mut Vec<Node>,
    ) {
        match rewrite {
            Rewrite::This => {
                for r in &relation.directly_related {
                    if let RestrictionKind::Userset(rel) = &r.kind
                        && let Some(dep) = self.lookup(&r.type_name, rel)
                    {
                        out.push(dep);
                    }
                }
            }
            Rewrite::Computed(target) => out.extend(self.lookup_on(node.0, target)),
            Rewrite::TupleToUserset { tupleset, computed } => {
                if let Some(ts) = self
                    .lookup_on(node.0, tupleset)
                    .and_then(|n| self.relation(n))
                {
                    for r in &ts.directly_related {
                        out.extend(self.lookup(&r.type_name, computed));
                    }
                }
            }
            Rewrite::Union(children) | Rewrite::Intersection(children) => {
                for child in children {
                    self.dependencies(node, relation, child, out);
                }
            }
            Rewrite::Exclusion { base, subtract } => {
                self.dependencies(node, relation, base, out);
                self.dependencies(node, relation, subtract, out);
            }
        }
    }

    /// Whether `rewrite` has an entry point, given which relations are known to have one.
    fn resolves(
        &self,
        node: Node,
        relation: &RelationDef,
        rewrite: &Rewrite,
        known: &[Vec<bool>],
    ) -> bool {
        match rewrite {
            Rewrite::This => relation.directly_related.iter().any(|r| match &r.kind {
                RestrictionKind::Direct | RestrictionKind::Wildcard => true,
                RestrictionKind::Userset(rel) => self
                    .lookup(&r.type_name, rel)
                    .is_some_and(|n| entry(known, n)),
            }),
            Rewrite::Computed(target) => self
                .lookup_on(node.0, target)
                .is_some_and(|n| entry(known, n)),
            Rewrite::TupleToUserset { tupleset, computed } => self
                .lookup_on(node.0, tupleset)
                .and_then(|n| self.relation(n))
                .is_some_and(|ts| {
                    ts.directly_related.iter().any(|r| {
                        r.kind == RestrictionKind::Direct
                            && self
                                .lookup(&r.type_name, computed)
                                .is_some_and(|n| entry(known, n))
                    })
                }),
            Rewrite::Union(children) => children
                .iter()
                .any(|c| self.resolves(node, relation, c, known)),
            Rewrite::Intersection(children) => children
                .iter()
                .all(|c| self.resolves(node, relation, c, known)),
            Rewrite::Exclusion { base, subtract } => {
                self.resolves(node, relation, base, known)
                    && self.resolves(node, relation, subtract, known)
            }
        }
    }

    /// OpenFGA's `hasEntryPointOrLoop`: a depth-first search with the current path as the
    /// visited set; returns (has entry point, loop found). Only used for the error message, so
    /// it gives up (no loop) when its budget runs out or the path gets too long.
    fn search(
        &self,
        node: Node,
        rewrite: &Rewrite,
        visited: &mut HashSet<Node>,
        budget: &mut usize,
        depth: usize,
    ) -> (bool, bool) {
        if *budget == 0 || depth > LOOP_SEARCH_DEPTH {
            return (false, false);
        }
        *budget -= 1;
        let Some(relation) = self.relation(node) else {
            return (false, false);
        };
        let inserted = visited.insert(node);
        let result = match rewrite {
            Rewrite::This => {
                let mut found = (false, false);
                for r in &relation.directly_related {
                    match &r.kind {
                        RestrictionKind::Direct | RestrictionKind::Wildcard => {
                            found = (true, false);
                            break;
                        }
                        RestrictionKind::Userset(rel) => {
                            let Some(next) = self.lookup(&r.type_name, rel) else {
                                break;
                            };
                            if visited.contains(&next) {
                                continue;
                            }
                            let Some(next_rel) = self.relation(next) else {
                                continue;
                            };
                            if self
                                .search(next, &next_rel.rewrite, visited, budget, depth + 1)
                                .0
                            {
                                found = (true, false);
                                break;
                            }
                        }
                    }
                }
                found
            }
            Rewrite::Computed(target) => match self.lookup_on(node.0, target) {
                None => (false, false),
                Some(next) if visited.contains(&next) => (false, true),
                Some(next) => match self.relation(next) {
                    Some(next_rel) => {
                        self.search(next, &next_rel.rewrite, visited, budget, depth + 1)
                    }
                    None => (false, false),
                },
            },
            Rewrite::TupleToUserset { tupleset, computed } => {
                let mut found = (false, false);
                let tupleset_rel = self
                    .lookup_on(node.0, tupleset)
                    .and_then(|n| self.relation(n));
                for r in tupleset_rel
                    .map(|t| t.directly_related.as_slice())
                    .unwrap_or_default()
                {
                    let Some(next) = self.lookup(&r.type_name, computed) else {
                        continue;
                    };
                    if visited.contains(&next) {
                        continue;
                    }
                    let Some(next_rel) = self.relation(next) else {
                        continue;
                    };
                    if self
                        .search(next, &next_rel.rewrite, visited, budget, depth + 1)
                        .0
                    {
                        found = (true, false);
                        break;
                    }
                }
                found
            }
            Rewrite::Union(children) => {
                let mut looped = false;
                let mut found = None;
                for child in children {
                    let (has, child_loop) = self.search(node, child, visited, budget, depth + 1);
                    if has {
                        found = Some((true, false));
                        break;
                    }
                    looped |= child_loop;
                }
                found.unwrap_or((false, looped))
            }
            Rewrite::Intersection(children) => {
                let mut result = (true, false);
                for child in children {
                    let (has, child_loop) = self.search(node, child, visited, budget, depth + 1);
                    if !has {
                        result = (false, child_loop);
                        break;
                    }
                }
                result
            }
            Rewrite::Exclusion { base, subtract } => {
                let (has_base, loop_base) = self.search(node, base, visited, budget, depth + 1);
                if !has_base {
                    (false, loop_base)
                } else {
                    let (has_sub, loop_sub) =
                        self.search(node, subtract, visited, budget, depth + 1);
                    if has_sub {
                        (true, false)
                    } else {
                        (false, loop_sub)
                    }
                }
            }
        };
        if inserted {
            visited.remove(&node);
        }
        result
    }

    fn check_unused_conditions(&mut self) {
        let model = self.model;
        let used: HashSet<&str> = model
            .types
            .iter()
            .flat_map(|t| &t.relations)
            .flat_map(|r| &r.directly_related)
            .filter_map(|r| r.condition.as_deref())
            .collect();
        for condition in &model.conditions {
            if !used.contains(condition.name.as_str()) {
                self.error(
                    condition.span,
                    format!("`{}` condition is not used in the model.", condition.name),
                );
            }
        }
    }
}

fn entry(known: &[Vec<bool>], node: Node) -> bool {
    known
        .get(node.0)
        .and_then(|r| r.get(node.1))
        .copied()
        .unwrap_or(false)
}

/// `^[^:#@\*\s]{1,max}$`
fn valid_name(name: &str, max: usize) -> bool {
    let len = name.chars().count();
    (1..=max).contains(&len)
        && !name
            .chars()
            .any(|c| matches!(c, ':' | '#' | '@' | '*') || c.is_whitespace())
}

/// How OpenFGA names an operand when looking for duplicates: `x` or `x from y`.
fn operand_name(rewrite: &Rewrite) -> Option<String> {
    match rewrite {
        Rewrite::Computed(name) => Some(name.clone()),
        Rewrite::TupleToUserset { tupleset, computed } => {
            Some(format!("{computed} from {tupleset}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{
        Model, RelationDef, RestrictionKind, Rewrite, Span, TypeDef, TypeRestriction,
        parse_and_validate, validate,
    };

    fn model(relations: &str) -> String {
        format!("model\n  schema 1.1\ntype user\ntype doc\n  relations\n{relations}")
    }

    fn messages(dsl: &str) -> Vec<String> {
        match parse_and_validate(dsl) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.into_iter().map(|e| e.message).collect(),
        }
    }

    #[test]
    fn entry_points_through_cycles() {
        // A cycle with a way in is fine; without one it is an impossible relation.
        assert!(messages(&model("    define a: [user] or b\n    define b: a\n")).is_empty());
        let errs = messages(&model("    define a: b\n    define b: a\n"));
        assert_eq!(errs.len(), 2);
        assert!(errs[0].contains("potential loop"), "{errs:?}");
        // Exclusion needs both sides to be satisfiable.
        let errs = messages(&model("    define a: [user] but not b\n    define b: a\n"));
        assert!(errs.iter().all(|m| m.contains("impossible")), "{errs:?}");
        // A userset restriction on itself is no way in.
        let errs = messages(&model("    define a: [doc#a]\n"));
        assert!(errs[0].contains("no entrypoint"), "{errs:?}");
        // A userset restriction on a satisfiable relation is.
        assert!(messages(&model("    define a: [doc#b]\n    define b: [user]\n")).is_empty());
    }

    #[test]
    fn tupleset_rules() {
        // Conditions on the tupleset's types are fine.
        let ok = "model\n  schema 1.1\ntype user\ntype folder\n  relations\n    define viewer: [user]\n    define parent: [folder with c]\n    define can: viewer from parent\ncondition c(x: int) {\n  x > 1\n}\n";
        assert!(messages(ok).is_empty(), "{:?}", messages(ok));
        // `x` must exist on at least one of the tupleset's types.
        let some = "model\n  schema 1.1\ntype user\ntype a\n  relations\n    define v: [user]\ntype b\ntype doc\n  relations\n    define p: [a, b]\n    define v: v from p\n";
        assert!(messages(some).is_empty());
        let none = some.replace("define v: v from p", "define v: w from p");
        assert_eq!(messages(&none).len(), 2);
    }

    #[test]
    fn errors_are_in_source_order() {
        let dsl = "model\n  schema 1.1\ntype t\n  relations\n    define a: [t, t]\ntype t\ncondition c(x: int) {\n  x\n}\n";
        let errs = parse_and_validate(dsl).unwrap_err();
        let lines: Vec<usize> = errs.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 4, 6]);
    }

    fn hand_built(rewrite: Rewrite, directly_related: Vec<TypeRestriction>) -> Model {
        Model {
            schema_version: "1.1".to_string(),
            types: vec![
                TypeDef {
                    name: "user".to_string(),
                    relations: Vec::new(),
                    span: Span::default(),
                },
                TypeDef {
                    name: "doc".to_string(),
                    relations: vec![
                        RelationDef {
                            name: "a".to_string(),
                            rewrite,
                            directly_related,
                            span: Span::default(),
                        },
                        RelationDef {
                            name: "b".to_string(),
                            rewrite: Rewrite::This,
                            directly_related: vec![TypeRestriction {
                                type_name: "user".to_string(),
                                kind: RestrictionKind::Direct,
                                condition: None,
                            }],
                            span: Span::default(),
                        },
                    ],
                    span: Span::default(),
                },
            ],
            conditions: Vec::new(),
        }
    }

    #[test]
    fn hand_built_models_are_checked_for_shape() {
        assert!(validate(&hand_built(Rewrite::Computed("b".into()), Vec::new())).is_ok());
        assert!(validate(&hand_built(Rewrite::This, Vec::new())).is_err());
        assert!(validate(&hand_built(Rewrite::Union(Vec::new()), Vec::new())).is_err());
        let user = TypeRestriction {
            type_name: "user".to_string(),
            kind: RestrictionKind::Direct,
            condition: None,
        };
        assert!(validate(&hand_built(Rewrite::Computed("b".into()), vec![user])).is_err());
        let mut deep = Rewrite::Computed("b".into());
        for _ in 0..1000 {
            deep = Rewrite::Union(vec![deep]);
        }
        let errs = validate(&hand_built(deep, Vec::new())).unwrap_err();
        assert!(errs.errors[0].message.contains("nested"), "{errs}");
        let mut bad_schema = hand_built(Rewrite::Computed("b".into()), Vec::new());
        bad_schema.schema_version = "1.0".to_string();
        assert!(validate(&bad_schema).is_err());
    }

    #[test]
    fn long_chains_and_cycles_stay_fast_and_shallow() {
        let n = 20_000;
        let mut chain = String::new();
        for i in 0..n {
            chain.push_str(&format!("    define r{i}: r{}\n", i + 1));
        }
        let valid = model(&format!("{chain}    define r{n}: [user]\n"));
        assert!(valid.len() < crate::model::MAX_DSL_BYTES);
        assert!(parse_and_validate(&valid).is_ok());
        let cyclic = model(&format!("{chain}    define r{n}: r0\n"));
        let errs = parse_and_validate(&cyclic).unwrap_err();
        assert_eq!(errs.errors.len(), n + 1);
        // Many paths between relations that never resolve: the loop search is budgeted.
        let mut mesh = String::new();
        for i in 0..200 {
            let others: Vec<String> = (0..200)
                .filter(|j| *j != i)
                .map(|j| format!("m{j}"))
                .collect();
            mesh.push_str(&format!("    define m{i}: {}\n", others.join(" or ")));
        }
        let errs = parse_and_validate(&model(&mesh)).unwrap_err();
        assert_eq!(errs.errors.len(), 200);
    }
}
