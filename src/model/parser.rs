//! Lexer and recursive-descent parser for the OpenFGA DSL (schema 1.1, plus the `module` /
//! `extend type` syntax of modular files), following the structure of OpenFGA's ANTLR grammar.
//! It turns text into a [`Model`] plus a private [`SourceMap`] (positions of every rewrite leaf,
//! type restriction and condition parameter) that the validator uses for precise error positions.
//! It stops at the first syntax error, never panics, and rejects oversized or overly nested input.

use super::ast::{
    ConditionDef, ConditionParam, Model, ParamType, RelationDef, RestrictionKind, Rewrite, Span,
    TypeDef, TypeRestriction,
};
use super::{ModelError, ModelErrors};
use std::collections::HashSet;

/// The largest DSL text accepted, in bytes (1 MiB).
pub const MAX_DSL_BYTES: usize = 1 << 20;
/// The deepest nesting of parentheses accepted in a relation definition.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Words that are tokens of their own in OpenFGA's lexer and so can never name anything.
const RESERVED_WORDS: &[&str] = &[
    "and",
    "or",
    "from",
    "define",
    "relations",
    "condition",
    "with",
    "in",
    "true",
    "false",
    "null",
];

/// Words that are parameter-type tokens inside a condition header (so they cannot name a
/// condition or a parameter there).
const PARAM_TYPE_WORDS: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "duration",
    "timestamp",
    "ipaddress",
    "any",
    "list",
    "map",
];

/// Positions the AST has no room for, recorded while parsing. Indices run parallel to the
/// model: `types[t][r]` belongs to `model.types[t].relations[r]`, `conditions[c][p]` to
/// `model.conditions[c].params[p]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceMap {
    pub schema: Option<Span>,
    pub types: Vec<Vec<RelationSpans>>,
    pub conditions: Vec<Vec<Span>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RelationSpans {
    /// The leaves of the rewrite (`[...]`, `x`, `x from y`) in source order, which is also the
    /// pre-order of the rewrite tree.
    pub leaves: Vec<LeafSpan>,
    /// One per entry of `directly_related`.
    pub restrictions: Vec<RestrictionSpans>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct LeafSpan {
    /// The whole leaf (`x from y`, or the `[` of a direct assignment).
    pub whole: Span,
    /// The computed relation name (`x`), or the `[`.
    pub name: Span,
    /// The tupleset relation name (`y`) of `x from y`.
    pub tupleset: Option<Span>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RestrictionSpans {
    /// `group#member` / `user:*` / `user`, without the condition.
    pub base: Span,
    pub type_name: Span,
    pub condition: Option<Span>,
}

/// Parses `dsl`, returning the model and the positions the validator needs.
pub(crate) fn parse_with_source_map(dsl: &str) -> Result<(Model, SourceMap), ModelErrors> {
    if dsl.len() > MAX_DSL_BYTES {
        return Err(ModelError::syntax(
            Span::default(),
            format!(
                "the model is {} bytes long; at most {MAX_DSL_BYTES} bytes are accepted",
                dsl.len()
            ),
        )
        .into());
    }
    let tokens = lex(dsl);
    let mut parser = Parser {
        tokens,
        pos: 0,
        errors: Vec::new(),
        depth: 0,
        is_module: false,
        current: RelationSpans::default(),
        current_direct: None,
        eof: Token {
            tok: Tok::Eof,
            span: Span::default(),
        },
    };
    match parser.parse_file() {
        Ok((model, map)) if parser.errors.is_empty() => Ok((model, map)),
        Ok(_) => Err(ModelErrors {
            errors: parser.errors,
        }),
        Err(fatal) => {
            let mut errors = parser.errors;
            errors.push(fatal);
            Err(ModelErrors { errors })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A name or keyword: `[A-Za-z_][A-Za-z0-9_\-./]*`.
    Word(String),
    /// A run of digits and dots (`1.1`).
    Number(String),
    /// `but not`
    ButNot,
    Colon,
    Comma,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Hash,
    Star,
    Less,
    Greater,
    LBrace,
    RBrace,
    /// The verbatim text between a condition's braces.
    CelBody(String),
    /// One or more line breaks (blank and comment-only lines included).
    Newline,
    /// Text the lexer could not make sense of; the message says why.
    Bad(String),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    span: Span,
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    col: usize,
    /// Whether the previous character was whitespace or a line break (or there was none), which
    /// makes a `#` the start of a comment rather than the `#` of `group#member`.
    after_space: bool,
    /// Where the current run of spaces and tabs began (a line break token starts there, as
    /// OpenFGA's NEWLINE token does).
    space_start: Option<Span>,
    tokens: Vec<Token>,
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{000C}')
}

fn lex(src: &str) -> Vec<Token> {
    let mut lexer = Lexer {
        chars: src.chars().collect(),
        pos: 0,
        line: 0,
        col: 0,
        after_space: true,
        space_start: None,
        tokens: Vec::new(),
    };
    lexer.run();
    lexer.tokens
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos.saturating_add(offset)).copied()
    }

    /// Consumes one character, keeping line and column up to date (`\r\n`, `\n` and a lone
    /// `\r` each end a line).
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        match c {
            '\n' => {
                self.line += 1;
                self.col = 0;
            }
            '\r' if self.peek() != Some('\n') => {
                self.line += 1;
                self.col = 0;
            }
            _ => self.col += 1,
        }
        Some(c)
    }

    fn here(&self) -> Span {
        Span {
            line: self.line,
            column: self.col,
            end_column: self.col.saturating_add(1),
        }
    }

    fn push(&mut self, tok: Tok, span: Span) {
        self.tokens.push(Token { tok, span });
    }

    fn run(&mut self) {
        while let Some(c) = self.peek() {
            let start = self.here();
            if is_space(c) {
                self.space_start.get_or_insert(start);
                self.bump();
                self.after_space = true;
                continue;
            }
            let space_start = self.space_start.take();
            if c == '\n' || c == '\r' {
                let start = space_start.unwrap_or(start);
                self.bump();
                if c == '\r' && self.peek() == Some('\n') {
                    self.bump();
                }
                if !matches!(
                    self.tokens.last(),
                    Some(Token {
                        tok: Tok::Newline,
                        ..
                    })
                ) {
                    self.push(Tok::Newline, start);
                }
                self.after_space = true;
            } else if c == '#' && self.after_space {
                while let Some(c) = self.peek() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                    self.bump();
                }
                // A trailing comment belongs to the line's trailing space.
                self.space_start = space_start.or(Some(start));
            } else if is_word_start(c) {
                self.word(start);
                self.after_space = false;
            } else if c.is_ascii_digit() {
                let mut text = String::new();
                while let Some(c) = self.peek().filter(|c| c.is_ascii_digit() || *c == '.') {
                    text.push(c);
                    self.bump();
                }
                let span = Span {
                    end_column: self.col,
                    ..start
                };
                self.push(Tok::Number(text), span);
                self.after_space = false;
            } else if c == '{' {
                self.bump();
                self.push(Tok::LBrace, start);
                self.cel_body(start);
                self.after_space = false;
            } else {
                self.bump();
                let tok = match c {
                    ':' => Tok::Colon,
                    ',' => Tok::Comma,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '#' => Tok::Hash,
                    '*' => Tok::Star,
                    '<' => Tok::Less,
                    '>' => Tok::Greater,
                    '}' => Tok::RBrace,
                    other => Tok::Bad(format!("unexpected character {other:?}")),
                };
                self.push(tok, start);
                self.after_space = false;
            }
        }
        let end = self.here();
        self.push(Tok::Eof, end);
    }

    fn word(&mut self, start: Span) {
        let mut text = String::new();
        while let Some(c) = self.peek().filter(|c| is_word_char(*c)) {
            text.push(c);
            self.bump();
        }
        if text == "but" {
            // `but not` is one token; allow any run of spaces/tabs between the two words.
            let mut offset = 0;
            while self.peek_at(offset).is_some_and(is_space) {
                offset += 1;
            }
            let is_not = offset > 0
                && self.peek_at(offset) == Some('n')
                && self.peek_at(offset + 1) == Some('o')
                && self.peek_at(offset + 2) == Some('t')
                && !self.peek_at(offset + 3).is_some_and(is_word_char);
            if is_not {
                for _ in 0..offset + 3 {
                    self.bump();
                }
                let span = Span {
                    end_column: self.col,
                    ..start
                };
                self.push(Tok::ButNot, span);
                return;
            }
        }
        let span = Span {
            end_column: self.col,
            ..start
        };
        self.push(Tok::Word(text), span);
    }

    /// Scans a condition's CEL body after its `{` up to the matching `}`, skipping braces inside
    /// string literals and `//` comments, and pushes `CelBody` and `RBrace` tokens.
    fn cel_body(&mut self, open: Span) {
        let body_start = self.here();
        let mut text = String::new();
        let mut depth = 1usize;
        while let Some(c) = self.peek() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        self.push(Tok::CelBody(text), body_start);
                        let close = self.here();
                        self.bump();
                        self.push(Tok::RBrace, close);
                        return;
                    }
                }
                '"' | '\'' => {
                    self.cel_string(c, &mut text);
                    continue;
                }
                '/' if self.peek_at(1) == Some('/') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' || c == '\r' {
                            break;
                        }
                        text.push(c);
                        self.bump();
                    }
                    continue;
                }
                _ => {}
            }
            text.push(c);
            self.bump();
        }
        self.push(
            Tok::Bad("the condition body is missing its closing '}'".to_string()),
            open,
        );
    }

    /// Copies a CEL string literal (single, double or triple quoted; raw when prefixed by `r`)
    /// into `text`.
    fn cel_string(&mut self, quote: char, text: &mut String) {
        let raw = self
            .pos
            .checked_sub(1)
            .and_then(|i| self.chars.get(i))
            .is_some_and(|c| matches!(c, 'r' | 'R'));
        let triple = self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote);
        let open_len = if triple { 3 } else { 1 };
        for _ in 0..open_len {
            if let Some(c) = self.bump() {
                text.push(c);
            }
        }
        while let Some(c) = self.peek() {
            if !triple && (c == '\n' || c == '\r') {
                return; // unterminated single-line string: let CEL report it
            }
            if c == '\\' && !raw {
                text.push(c);
                self.bump();
                if let Some(escaped) = self.bump() {
                    text.push(escaped);
                }
                continue;
            }
            if c == quote
                && (!triple || (self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote)))
            {
                for _ in 0..open_len {
                    if let Some(c) = self.bump() {
                        text.push(c);
                    }
                }
                return;
            }
            text.push(c);
            self.bump();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

type PResult<T> = Result<T, ModelError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Or,
    And,
    ButNot,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Or => "or",
            Op::And => "and",
            Op::ButNot => "but not",
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Errors that do not stop parsing (misplaced or repeated `extend`).
    errors: Vec<ModelError>,
    /// Current parenthesis nesting.
    depth: usize,
    is_module: bool,
    /// Spans of the relation being parsed.
    current: RelationSpans,
    /// Restrictions of the direct assignment of the relation being parsed.
    current_direct: Option<Vec<TypeRestriction>>,
    eof: Token,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("'{w}'"),
        Tok::Number(n) => format!("'{n}'"),
        Tok::ButNot => "'but not'".to_string(),
        Tok::Colon => "':'".to_string(),
        Tok::Comma => "','".to_string(),
        Tok::LBracket => "'['".to_string(),
        Tok::RBracket => "']'".to_string(),
        Tok::LParen => "'('".to_string(),
        Tok::RParen => "')'".to_string(),
        Tok::Hash => "'#'".to_string(),
        Tok::Star => "'*'".to_string(),
        Tok::Less => "'<'".to_string(),
        Tok::Greater => "'>'".to_string(),
        Tok::LBrace => "'{'".to_string(),
        Tok::RBrace => "'}'".to_string(),
        Tok::CelBody(_) => "a condition body".to_string(),
        Tok::Newline => "end of line".to_string(),
        Tok::Bad(_) => "an invalid character".to_string(),
        Tok::Eof => "end of input".to_string(),
    }
}

/// Whether `word` has the shape OpenFGA's lexer accepts as a name: letters, digits, `_` and `-`
/// freely; a `.` or `/` only between name characters (and then no `-` run such as `a--b.c`).
fn valid_name_shape(word: &str) -> bool {
    if !word.contains(['.', '/']) {
        return true;
    }
    // EXTENDED_IDENTIFIER: (LETTER|_) ((/|.|-)? (LETTER|DIGIT|_)+)*
    let mut prev_sep = false;
    for c in word.chars() {
        if matches!(c, '.' | '/' | '-') {
            if prev_sep {
                return false;
            }
            prev_sep = true;
        } else {
            prev_sep = false;
        }
    }
    !prev_sep
}

fn param_type_of(word: &str) -> Option<ParamType> {
    Some(match word {
        "int" => ParamType::Int,
        "uint" => ParamType::Uint,
        "double" => ParamType::Double,
        "bool" => ParamType::Bool,
        "string" => ParamType::String,
        "duration" => ParamType::Duration,
        "timestamp" => ParamType::Timestamp,
        "ipaddress" => ParamType::IpAddress,
        "any" => ParamType::Any,
        _ => return None,
    })
}

/// Joins two spans on the same line into one (or keeps the first when they differ in line).
fn join(start: Span, end: Span) -> Span {
    if start.line == end.line && end.end_column >= start.column {
        Span {
            end_column: end.end_column,
            ..start
        }
    } else {
        start
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&self.eof)
    }

    fn peek_tok(&self) -> &Tok {
        &self.peek().tok
    }

    fn peek_word(&self) -> Option<&str> {
        match self.peek_tok() {
            Tok::Word(w) => Some(w.as_str()),
            _ => None,
        }
    }

    fn advance(&mut self) -> Token {
        let tok = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    /// An error at the next token; a lexer error there takes precedence over `message`.
    fn error_here(&self, message: impl Into<String>) -> ModelError {
        let token = self.peek();
        match &token.tok {
            Tok::Bad(reason) => ModelError::syntax(token.span, reason.clone()),
            _ => ModelError::syntax(token.span, message),
        }
    }

    fn unexpected(&self, expected: &str) -> ModelError {
        let found = describe(self.peek_tok());
        self.error_here(format!("expected {expected}, found {found}"))
    }

    fn skip_newlines(&mut self) {
        while *self.peek_tok() == Tok::Newline {
            self.advance();
        }
    }

    fn expect(&mut self, tok: &Tok, expected: &str) -> PResult<Span> {
        if self.peek_tok() == tok {
            Ok(self.advance().span)
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_keyword(&mut self, keyword: &str) -> PResult<Span> {
        if self.peek_word() == Some(keyword) {
            Ok(self.advance().span)
        } else {
            Err(self.unexpected(&format!("'{keyword}'")))
        }
    }

    /// Requires the end of the current line (or of the input).
    fn expect_eol(&mut self) -> PResult<()> {
        match self.peek_tok() {
            Tok::Newline => {
                self.advance();
                Ok(())
            }
            Tok::Eof => Ok(()),
            other => {
                let found = describe(other);
                Err(self.error_here(format!("expected end of line, found {found}")))
            }
        }
    }

    /// A type, relation or module name (keywords such as `type` or `model` are allowed, as in
    /// OpenFGA; `and`, `or`, `from`, `define`, ... are not).
    fn expect_name(&mut self, what: &str) -> PResult<(String, Span)> {
        let token = self.peek().clone();
        match &token.tok {
            Tok::Word(w) if RESERVED_WORDS.contains(&w.as_str()) => Err(ModelError::syntax(
                token.span,
                format!("expected a {what} name, found the keyword '{w}'"),
            )),
            Tok::Word(w) if !valid_name_shape(w) => Err(ModelError::syntax(
                token.span,
                format!(
                    "'{w}' is not a valid {what} name ('.', '/' and '-' may only separate letters, digits and '_')"
                ),
            )),
            Tok::Word(w) => {
                self.advance();
                Ok((w.clone(), token.span))
            }
            _ => Err(self.unexpected(&format!("a {what} name"))),
        }
    }

    /// A condition or parameter name: a plain identifier that is not a parameter type.
    fn expect_plain_name(&mut self, what: &str) -> PResult<(String, Span)> {
        let token = self.peek().clone();
        match &token.tok {
            Tok::Word(w) if PARAM_TYPE_WORDS.contains(&w.as_str()) => Err(ModelError::syntax(
                token.span,
                format!("expected a {what} name, found the parameter type '{w}'"),
            )),
            Tok::Word(w) if w.contains(['.', '/']) => Err(ModelError::syntax(
                token.span,
                format!("'{w}' is not a valid {what} name ('.' and '/' are not allowed)"),
            )),
            Tok::Word(_) => self.expect_name(what),
            _ => Err(self.unexpected(&format!("a {what} name"))),
        }
    }

    fn parse_file(&mut self) -> PResult<(Model, SourceMap)> {
        let mut model = Model {
            schema_version: String::new(),
            types: Vec::new(),
            conditions: Vec::new(),
        };
        let mut map = SourceMap::default();
        self.skip_newlines();
        match self.peek_word() {
            Some("model") => {
                self.advance();
                if *self.peek_tok() != Tok::Newline {
                    return Err(self.unexpected("a new line after 'model'"));
                }
                self.skip_newlines();
                self.expect_keyword("schema")?;
                let token = self.peek().clone();
                match &token.tok {
                    Tok::Number(version) if is_schema_version(version) => {
                        self.advance();
                        model.schema_version = version.clone();
                        map.schema = Some(token.span);
                    }
                    _ => return Err(self.unexpected("a schema version such as 1.1")),
                }
                self.expect_eol()?;
            }
            Some("module") => {
                self.advance();
                self.is_module = true;
                self.expect_name("module")?;
                self.expect_eol()?;
            }
            _ => {
                return Err(self.unexpected(
                    "the model header ('model' followed by 'schema 1.1') or 'module'",
                ));
            }
        }

        let mut extended: HashSet<String> = HashSet::new();
        let mut in_conditions = false;
        loop {
            self.skip_newlines();
            match self.peek_word() {
                None if *self.peek_tok() == Tok::Eof => break,
                Some("type") | Some("extend") => {
                    if in_conditions {
                        return Err(self.error_here("types must be declared before any condition"));
                    }
                    let extend = self.peek_word() == Some("extend");
                    if extend {
                        self.advance();
                    }
                    let (type_def, spans) = self.parse_type()?;
                    if extend {
                        if !self.is_module {
                            self.errors.push(ModelError::syntax(
                                type_def.span,
                                "extend can only be used in a modular model",
                            ));
                        } else if !extended.insert(type_def.name.clone()) {
                            self.errors.push(ModelError::syntax(
                                type_def.span,
                                format!("'{}' is already extended in file.", type_def.name),
                            ));
                        }
                    }
                    model.types.push(type_def);
                    map.types.push(spans);
                }
                Some("condition") => {
                    in_conditions = true;
                    let (condition, spans) = self.parse_condition()?;
                    model.conditions.push(condition);
                    map.conditions.push(spans);
                }
                Some("model") | Some("module") => {
                    return Err(self.error_here(
                        "only one 'model' or 'module' header is allowed, at the start",
                    ));
                }
                _ => return Err(self.unexpected("'type' or 'condition'")),
            }
        }
        Ok((model, map))
    }

    fn parse_type(&mut self) -> PResult<(TypeDef, Vec<RelationSpans>)> {
        self.expect_keyword("type")?;
        let (name, span) = self.expect_name("type")?;
        self.expect_eol()?;
        let mut relations = Vec::new();
        let mut spans = Vec::new();
        // `relations` must follow on the next non-blank line, if at all.
        let save = self.pos;
        self.skip_newlines();
        if self.peek_word() == Some("relations") {
            self.advance();
            self.expect_eol()?;
            loop {
                self.skip_newlines();
                if self.peek_word() != Some("define") {
                    break;
                }
                let (relation, relation_spans) = self.parse_define()?;
                relations.push(relation);
                spans.push(relation_spans);
            }
            if relations.is_empty() {
                return Err(self.unexpected("'define'"));
            }
        } else {
            self.pos = save;
        }
        Ok((
            TypeDef {
                name,
                relations,
                span,
            },
            spans,
        ))
    }

    fn parse_define(&mut self) -> PResult<(RelationDef, RelationSpans)> {
        self.expect_keyword("define")?;
        let (name, span) = self.expect_name("relation")?;
        self.expect(&Tok::Colon, "':' after the relation name")?;
        self.current = RelationSpans::default();
        self.current_direct = None;
        self.depth = 0;
        let rewrite = self.parse_relation_def(true)?;
        self.expect_eol()?;
        let relation = RelationDef {
            name,
            rewrite,
            directly_related: self.current_direct.take().unwrap_or_default(),
            span,
        };
        Ok((relation, std::mem::take(&mut self.current)))
    }

    fn peek_op(&self) -> Option<Op> {
        match self.peek_tok() {
            Tok::Word(w) if w == "or" => Some(Op::Or),
            Tok::Word(w) if w == "and" => Some(Op::And),
            Tok::ButNot => Some(Op::ButNot),
            _ => None,
        }
    }

    /// `first (op operand)*` with a single operator kind; `but not` at most once.
    fn parse_relation_def(&mut self, allow_direct: bool) -> PResult<Rewrite> {
        let first = self.parse_operand(allow_direct)?;
        let Some(op) = self.peek_op() else {
            return Ok(first);
        };
        let mut operands = vec![first];
        while self.peek_op() == Some(op) {
            self.advance();
            operands.push(self.parse_operand(false)?);
            if op == Op::ButNot {
                break;
            }
        }
        if let Some(next) = self.peek_op() {
            let message = if next == Op::ButNot && op == Op::ButNot {
                "'but not' can be used only once at the same level; use parentheses".to_string()
            } else {
                format!(
                    "'{}' cannot be mixed with '{}' at the same level; use parentheses",
                    next.text(),
                    op.text()
                )
            };
            return Err(self.error_here(message));
        }
        Ok(match op {
            Op::Or => Rewrite::Union(operands),
            Op::And => Rewrite::Intersection(operands),
            Op::ButNot => {
                let mut iter = operands.into_iter();
                match (iter.next(), iter.next()) {
                    (Some(base), Some(subtract)) => Rewrite::Exclusion {
                        base: Box::new(base),
                        subtract: Box::new(subtract),
                    },
                    // Unreachable: a `but not` chain always has exactly two operands.
                    (Some(only), None) => only,
                    _ => return Err(self.error_here("expected a relation expression")),
                }
            }
        })
    }

    fn parse_operand(&mut self, allow_direct: bool) -> PResult<Rewrite> {
        match self.peek_tok() {
            Tok::LBracket if allow_direct => self.parse_direct(),
            Tok::LBracket => Err(self.error_here(
                "a direct assignment [...] is only allowed as the first operand of a relation definition",
            )),
            Tok::LParen => {
                self.advance();
                self.depth += 1;
                if self.depth > MAX_NESTING_DEPTH {
                    return Err(self.error_here(format!(
                        "parentheses are nested more than {MAX_NESTING_DEPTH} levels deep"
                    )));
                }
                let inner = self.parse_relation_def(allow_direct)?;
                self.expect(&Tok::RParen, "')'")?;
                self.depth = self.depth.saturating_sub(1);
                Ok(inner)
            }
            Tok::Word(_) => {
                let (computed, name_span) = self.expect_name("relation")?;
                if self.peek_word() == Some("from") {
                    self.advance();
                    let (tupleset, tupleset_span) = self.expect_name("relation")?;
                    self.current.leaves.push(LeafSpan {
                        whole: join(name_span, tupleset_span),
                        name: name_span,
                        tupleset: Some(tupleset_span),
                    });
                    Ok(Rewrite::TupleToUserset { tupleset, computed })
                } else {
                    self.current.leaves.push(LeafSpan {
                        whole: name_span,
                        name: name_span,
                        tupleset: None,
                    });
                    Ok(Rewrite::Computed(computed))
                }
            }
            _ => Err(self.unexpected(if allow_direct {
                "a relation expression ('[...]', a relation name or '(')"
            } else {
                "a relation name or '('"
            })),
        }
    }

    /// `[ restriction (, restriction)* ]`; line breaks are allowed around restrictions.
    fn parse_direct(&mut self) -> PResult<Rewrite> {
        let open = self.expect(&Tok::LBracket, "'['")?;
        self.current.leaves.push(LeafSpan {
            whole: open,
            name: open,
            tupleset: None,
        });
        let mut restrictions = Vec::new();
        loop {
            self.skip_newlines();
            let (restriction, spans) = self.parse_restriction()?;
            restrictions.push(restriction);
            self.current.restrictions.push(spans);
            self.skip_newlines();
            match self.peek_tok() {
                Tok::Comma => {
                    self.advance();
                }
                Tok::RBracket => {
                    self.advance();
                    break;
                }
                _ => return Err(self.unexpected("',' or ']'")),
            }
        }
        self.current_direct = Some(restrictions);
        Ok(Rewrite::This)
    }

    fn parse_restriction(&mut self) -> PResult<(TypeRestriction, RestrictionSpans)> {
        let (type_name, type_span) = self.expect_name("type")?;
        let mut base = type_span;
        let kind = match self.peek_tok() {
            Tok::Colon => {
                self.advance();
                let star = self.expect(&Tok::Star, "'*' after ':'")?;
                base = join(base, star);
                RestrictionKind::Wildcard
            }
            Tok::Hash => {
                self.advance();
                let (relation, relation_span) = self.expect_name("relation")?;
                base = join(base, relation_span);
                RestrictionKind::Userset(relation)
            }
            _ => RestrictionKind::Direct,
        };
        let mut condition = None;
        let mut condition_span = None;
        if self.peek_word() == Some("with") {
            self.advance();
            let (name, span) = self.expect_plain_name("condition")?;
            condition = Some(name);
            condition_span = Some(span);
        }
        Ok((
            TypeRestriction {
                type_name,
                kind,
                condition,
            },
            RestrictionSpans {
                base,
                type_name: type_span,
                condition: condition_span,
            },
        ))
    }

    fn parse_condition(&mut self) -> PResult<(ConditionDef, Vec<Span>)> {
        self.expect_keyword("condition")?;
        let (name, span) = self.expect_plain_name("condition")?;
        self.expect(&Tok::LParen, "'(' after the condition name")?;
        let mut params = Vec::new();
        let mut spans = Vec::new();
        loop {
            self.skip_newlines();
            let (param_name, param_span) = self.expect_plain_name("parameter")?;
            self.expect(&Tok::Colon, "':' after the parameter name")?;
            let param_type = self.parse_param_type()?;
            params.push(ConditionParam {
                name: param_name,
                param_type,
            });
            spans.push(param_span);
            self.skip_newlines();
            match self.peek_tok() {
                Tok::Comma => {
                    self.advance();
                }
                Tok::RParen => {
                    self.advance();
                    break;
                }
                _ => return Err(self.unexpected("',' or ')'")),
            }
        }
        self.expect(&Tok::LBrace, "'{' to open the condition expression")?;
        let body_token = self.peek().clone();
        let expression = match &body_token.tok {
            Tok::CelBody(text) => {
                self.advance();
                text.trim().to_string()
            }
            _ => return Err(self.unexpected("the condition expression")),
        };
        if expression.is_empty() {
            return Err(ModelError::syntax(
                body_token.span,
                "the condition expression is empty",
            ));
        }
        self.expect(&Tok::RBrace, "'}'")?;
        self.expect_eol()?;
        Ok((
            ConditionDef {
                name,
                params,
                expression,
                span,
            },
            spans,
        ))
    }

    fn parse_param_type(&mut self) -> PResult<ParamType> {
        const EXPECTED: &str = "a parameter type (int, uint, double, bool, string, duration, timestamp, ipaddress, any, list<T>, map<T>)";
        const EXPECTED_INNER: &str = "a non-generic parameter type (int, uint, double, bool, string, duration, timestamp, ipaddress, any)";
        let word = self.peek_word().map(str::to_string);
        match word.as_deref() {
            Some(container @ ("list" | "map")) => {
                self.advance();
                self.expect(&Tok::Less, &format!("'<' after '{container}'"))?;
                let inner = self
                    .peek_word()
                    .and_then(param_type_of)
                    .ok_or_else(|| self.unexpected(EXPECTED_INNER))?;
                self.advance();
                self.expect(&Tok::Greater, "'>'")?;
                Ok(if container == "list" {
                    ParamType::List(Box::new(inner))
                } else {
                    ParamType::Map(Box::new(inner))
                })
            }
            Some(other) => {
                let param_type = param_type_of(other).ok_or_else(|| self.unexpected(EXPECTED))?;
                self.advance();
                Ok(param_type)
            }
            None => Err(self.unexpected(EXPECTED)),
        }
    }
}

/// `DIGIT+ '.' DIGIT+`
fn is_schema_version(text: &str) -> bool {
    let mut parts = text.split('.');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse, parse_and_validate, to_dsl};

    fn rel(def: &str) -> Rewrite {
        let dsl = format!(
            "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define a: [user]\n    define b: [user]\n    define c: [user]\n    define member: [user]\n    define x: {def}\n"
        );
        let model = parse(&dsl).unwrap_or_else(|e| panic!("{def}: {e}"));
        model.types[1].relations[4].rewrite.clone()
    }

    fn c(name: &str) -> Rewrite {
        Rewrite::Computed(name.to_string())
    }

    fn restriction(type_name: &str, kind: RestrictionKind, cond: Option<&str>) -> TypeRestriction {
        TypeRestriction {
            type_name: type_name.to_string(),
            kind,
            condition: cond.map(str::to_string),
        }
    }

    #[test]
    fn operators_and_parentheses() {
        assert_eq!(rel("a"), c("a"));
        assert_eq!(rel("((a))"), c("a"));
        assert_eq!(
            rel("[user] or a or b"),
            Rewrite::Union(vec![Rewrite::This, c("a"), c("b")])
        );
        assert_eq!(
            rel("a and b and c"),
            Rewrite::Intersection(vec![c("a"), c("b"), c("c")])
        );
        assert_eq!(
            rel("a and (b or c)"),
            Rewrite::Intersection(vec![c("a"), Rewrite::Union(vec![c("b"), c("c")])])
        );
        assert_eq!(
            rel("(a or b) but not c"),
            Rewrite::Exclusion {
                base: Box::new(Rewrite::Union(vec![c("a"), c("b")])),
                subtract: Box::new(c("c")),
            }
        );
        assert_eq!(
            rel("([user] but not a) or member from b"),
            Rewrite::Union(vec![
                Rewrite::Exclusion {
                    base: Box::new(Rewrite::This),
                    subtract: Box::new(c("a")),
                },
                Rewrite::TupleToUserset {
                    tupleset: "b".to_string(),
                    computed: "member".to_string(),
                },
            ])
        );
        assert_eq!(
            rel("a   but not   b"),
            Rewrite::Exclusion {
                base: Box::new(c("a")),
                subtract: Box::new(c("b")),
            }
        );
    }

    #[test]
    fn operator_mistakes_are_syntax_errors() {
        for bad in [
            "a and b or c",
            "a or b and c",
            "a but not b but not c",
            "a but not b or c",
            "(a or b and c)",
            "a or [user]",
            "a and ([user] or b)",
            "[user] [user]",
            "or a",
            "a or",
            "(a or b",
            "a or b)",
            "a from",
            "[]",
            "[user,]",
            "[user:*:*]",
            "[user#]",
            "[user with]",
            "a from b from c",
        ] {
            let dsl = format!("model\n  schema 1.1\ntype user\n  relations\n    define x: {bad}\n");
            let errs = parse(&dsl).expect_err(bad);
            assert_eq!(
                errs.errors[0].kind,
                crate::model::ModelErrorKind::Syntax,
                "{bad}"
            );
            assert_eq!(errs.errors[0].line, 4, "{bad}: {errs}");
        }
    }

    #[test]
    fn restrictions_with_conditions_and_line_breaks() {
        let dsl = "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [\n      user,\n      user:* with c,\n      group#member with c\n    ] or owner\n    define owner: [user with c]\ncondition c(x: int) {\n  x > 1\n}\n";
        let model = parse_and_validate(dsl).unwrap();
        let member = &model.types[1].relations[0];
        assert_eq!(
            member.directly_related,
            vec![
                restriction("user", RestrictionKind::Direct, None),
                restriction("user", RestrictionKind::Wildcard, Some("c")),
                restriction(
                    "group",
                    RestrictionKind::Userset("member".to_string()),
                    Some("c")
                ),
            ]
        );
        assert_eq!(
            member.rewrite,
            Rewrite::Union(vec![Rewrite::This, c("owner")])
        );
        assert_eq!(
            member.span,
            Span {
                line: 5,
                column: 11,
                end_column: 17
            }
        );
    }

    #[test]
    fn condition_with_multiline_cel_body() {
        let body = "x[\"}\"] == '{' &&\n    {\"a\": {\"b\": 1}}[\"a\"][\"b\"] == 1 && // } not the end\n    y.size() > 0 && \"\"\"multi\n}\"\"\" != r'\\'";
        let dsl = format!(
            "model\n  schema 1.1\ntype user\n  relations\n    define v: [user with c]\ncondition c(\n  x: map<string>,\n  y: list<int>,\n  z: ipaddress, w: any\n) {{\n    {body}\n}}\n"
        );
        let model = parse_and_validate(&dsl).unwrap();
        let cond = &model.conditions[0];
        assert_eq!(cond.name, "c");
        assert_eq!(cond.expression, body);
        let types: Vec<_> = cond.params.iter().map(|p| p.param_type.clone()).collect();
        assert_eq!(
            types,
            vec![
                ParamType::Map(Box::new(ParamType::String)),
                ParamType::List(Box::new(ParamType::Int)),
                ParamType::IpAddress,
                ParamType::Any,
            ]
        );
        assert_eq!(to_dsl(&model).matches(body).count(), 1);
    }

    #[test]
    fn condition_header_mistakes() {
        for bad in [
            "condition c() {\n  true\n}",
            "condition c(x int) {\n  true\n}",
            "condition c(x: list) {\n  true\n}",
            "condition c(x: map<list<int>>) {\n  true\n}",
            "condition c(x: float) {\n  true\n}",
            "condition c(string: int) {\n  true\n}",
            "condition c(x: int) {\n}",
            "condition c(x: int) {\n  x > 1\n",
            "condition c(x: int)\n{\n  x > 1\n}",
            "condition int(x: int) {\n  x > 1\n}",
        ] {
            let dsl = format!(
                "model\n  schema 1.1\ntype user\n  relations\n    define v: [user with c]\n{bad}\n"
            );
            assert!(parse(&dsl).is_err(), "{bad}");
        }
    }

    #[test]
    fn comments_blank_lines_tabs_and_crlf() {
        let dsl = "# header comment\nmodel # trailing\n  # between\n  schema 1.1 # version\n\n# before a type\ntype user # a comment\n\ntype doc\n  # inside\n  relations # here too\n    # between relations\n\tdefine owner: [user] # trailing comment\n\n    define viewer: [user, doc#owner] or owner # another\n";
        let model = parse_and_validate(dsl).unwrap();
        assert_eq!(model.types.len(), 2);
        assert_eq!(model.types[1].relations.len(), 2);
        let crlf = dsl.replace('\n', "\r\n");
        let model_crlf = parse_and_validate(&crlf).unwrap();
        assert_eq!(model, model_crlf);
        let cr = dsl.replace('\n', "\r");
        assert_eq!(parse_and_validate(&cr).unwrap(), model);
        assert_eq!(model.types[1].relations[1].span.line, 14);
    }

    #[test]
    fn names_may_be_keywords_or_extended() {
        let dsl = "model\n  schema 1.1\ntype model\n  relations\n    define type: [model]\n    define schema: type or relation\n    define relation: [model, a.b/c-d]\ntype a.b/c-d\ntype list\ntype but\n";
        let model = parse_and_validate(dsl).unwrap();
        assert_eq!(
            model.types[0].relations[2].directly_related[1].type_name,
            "a.b/c-d"
        );
        for bad in [
            "type a..b",
            "type a.",
            "type and",
            "type 1a",
            "type a@b",
            "type é",
        ] {
            let dsl = format!("model\n  schema 1.1\n{bad}\n");
            assert!(parse(&dsl).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers() {
        assert!(parse("model\n  schema 1.1").is_ok());
        assert!(parse("\n\n model\n schema 1.1\n").is_ok());
        assert!(parse("").is_err());
        assert!(parse("model schema 1.1").is_err());
        assert!(parse("model\n  schema 1.1.1").is_err());
        assert!(parse("model\n  schema 1.1\nmodel\n  schema 1.1").is_err());
        assert!(parse("model\n  schema 1.1\ncondition c(x: int) {\n  x\n}\ntype user").is_err());
        let module = parse("module foo\n\nextend type bar\ntype baz\n").unwrap();
        assert_eq!(module.schema_version, "");
        assert_eq!(module.types.len(), 2);
        let errs = parse_and_validate("module foo\ntype user\n").unwrap_err();
        assert_eq!(errs.errors[0].message, "schema version required");
    }

    #[test]
    fn nesting_and_size_limits() {
        let nested = |n: usize| {
            format!(
                "model\n  schema 1.1\ntype user\n  relations\n    define x: [user]\n    define y: {}x{}\n",
                "(".repeat(n),
                ")".repeat(n)
            )
        };
        assert!(parse_and_validate(&nested(MAX_NESTING_DEPTH)).is_ok());
        let errs = parse(&nested(MAX_NESTING_DEPTH + 1)).unwrap_err();
        assert!(errs.errors[0].message.contains("nested"), "{errs}");
        assert!(parse(&nested(100_000)).is_err());

        let mut huge = "model\n  schema 1.1\n".to_string();
        while huge.len() <= MAX_DSL_BYTES {
            huge.push_str("# padding padding padding padding padding padding padding\n");
        }
        let errs = parse(&huge).unwrap_err();
        assert!(errs.errors[0].message.contains("bytes"), "{errs}");
    }

    const RICH: &str = "# c\nmodel\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user, user:*, group#member with cond] or owner\n    define owner: [user]\n    define parent: [group]\n    define viewer: (member and owner) but not (viewer from parent or owner)\n    define é: [user]\ncondition cond(x: map<int>, y: list<string>) {\n  x[\"a\"] > 1 && {\"k\": '}'}[\"k\"] in y\n}\n";

    #[test]
    fn never_panics_on_prefixes() {
        for (i, _) in RICH.char_indices() {
            let prefix = &RICH[..i];
            if let Ok(model) = parse_and_validate(prefix) {
                let _ = parse_and_validate(&to_dsl(&model));
            }
            let _ = parse(&RICH[i..]);
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        const PIECES: &[&str] = &[
            "model",
            "schema",
            "1.1",
            "type",
            "relations",
            "define",
            "condition",
            "module",
            "extend",
            "from",
            "or",
            "and",
            "but not",
            "with",
            "[",
            "]",
            "(",
            ")",
            "{",
            "}",
            ":",
            ":*",
            "#",
            ",",
            "<",
            ">",
            "\n",
            "\r\n",
            "\r",
            " ",
            "\t",
            "\"",
            "'",
            "//",
            "user",
            "a.b",
            "é",
            "\u{0}",
            "list",
            "map",
            "int",
            "*",
            "x",
        ];
        for _ in 0..3000 {
            let len = (next() % 60) as usize;
            let mut text = String::new();
            for _ in 0..len {
                let r = next();
                if r % 5 == 0 {
                    let bytes: Vec<u8> = (0..(r % 7)).map(|_| (next() & 0xFF) as u8).collect();
                    text.push_str(&String::from_utf8_lossy(&bytes));
                } else {
                    text.push_str(PIECES[(r as usize / 5) % PIECES.len()]);
                }
            }
            if let Ok(model) = parse_and_validate(&text) {
                let _ = parse_and_validate(&to_dsl(&model));
            }
            let with_header = format!("model\n  schema 1.1\n{text}");
            let _ = parse_and_validate(&with_header);
        }
    }
}
