//! Protobuf, for messages a schema registry frames: the schema as the registry holds it (`.proto` text,
//! as Confluent's registry keeps it, or a base64 `FileDescriptorProto`, as some clients register it),
//! the message indexes of Confluent's framing, a message's wire encoding checked against its message
//! type, and a JSON Schema rendering. Types from other files (imports) are not expanded: their fields
//! are read as opaque messages. Bounded in depth and in decoded fields.

use std::collections::BTreeMap;

use base64::Engine;

use super::wire;
use serde_json::{json, Map, Value};

/// The deepest nesting of messages accepted (schema and values).
const MAX_DEPTH: usize = 64;

/// The most fields decoding one message may read.
const MAX_ITEMS: usize = 1_000_000;

/// The most message and enum types one file may define.
const MAX_TYPES: usize = 10_000;

/// A field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `double`.
    Double,
    /// `float`.
    Float,
    /// The varint integers: `int32`, `int64`, `uint32`, `uint64`, `sint32`, `sint64`.
    Varint(&'static str),
    /// `fixed32`, `sfixed32`.
    Fixed32(&'static str),
    /// `fixed64`, `sfixed64`.
    Fixed64(&'static str),
    /// `bool`.
    Bool,
    /// `string`.
    String,
    /// `bytes`.
    Bytes,
    /// An enum, by full name.
    Enum(String),
    /// A message, by full name (one of this file's, or opaque when it is not).
    Message(String),
}

/// A field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its number.
    pub number: u32,
    /// Its type.
    pub kind: Kind,
    /// `repeated`.
    pub repeated: bool,
    /// proto2 `required`.
    pub required: bool,
    /// A map field: key and value kinds.
    pub map: Option<(Kind, Kind)>,
}

/// A message type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Its fields.
    pub fields: Vec<Field>,
    /// Its nested message types, by full name, in declaration order (Confluent's indexes count them).
    pub nested: Vec<String>,
    /// A map's entry type.
    map_entry: bool,
}

/// A `.proto` file's types.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct File {
    /// The top-level message types, by full name, in declaration order.
    pub top: Vec<String>,
    messages: BTreeMap<String, Message>,
    enums: BTreeMap<String, Vec<String>>,
}

impl File {
    /// Parses the schema as the registry holds it: a base64 `FileDescriptorProto`, or `.proto` text.
    pub fn parse(text: &str) -> Result<File, String> {
        let trimmed = text.trim();
        if !trimmed.contains(char::is_whitespace) {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(trimmed) {
                if let Ok(file) = descriptor::file(&bytes) {
                    return Ok(file);
                }
            }
        }
        text::file(text)
    }

    fn add_message(&mut self, name: String, message: Message) -> Result<(), String> {
        if self.messages.len() + self.enums.len() >= MAX_TYPES {
            return Err(format!("more than {MAX_TYPES} types"));
        }
        self.messages.insert(name, message);
        Ok(())
    }

    /// Resolves a type name used in `scope` (a message's full name, or the package) to a full name,
    /// searching from the innermost scope out, as protoc does.
    fn resolve(&self, name: &str, scope: &str) -> Option<String> {
        if let Some(full) = name.strip_prefix('.') {
            return (self.messages.contains_key(full) || self.enums.contains_key(full))
                .then(|| full.to_string());
        }
        let mut scope = scope.to_string();
        loop {
            let candidate = if scope.is_empty() {
                name.to_string()
            } else {
                format!("{scope}.{name}")
            };
            if self.messages.contains_key(&candidate) || self.enums.contains_key(&candidate) {
                return Some(candidate);
            }
            if scope.is_empty() {
                return None;
            }
            scope = scope
                .rsplit_once('.')
                .map(|(s, _)| s.to_string())
                .unwrap_or_default();
        }
    }

    /// Gives each field's named type its full name (an enum or a message of this file; opaque
    /// otherwise), once every type is known.
    fn link(&mut self, scopes: &BTreeMap<String, String>) {
        let names: Vec<String> = self.messages.keys().cloned().collect();
        for name in names {
            let scope = scopes.get(&name).cloned().unwrap_or_default();
            let mut fields =
                std::mem::take(&mut self.messages.get_mut(&name).expect("known").fields);
            for f in &mut fields {
                let resolve = |file: &File, k: &Kind| match k {
                    Kind::Message(n) | Kind::Enum(n) => match file.resolve(n, &scope) {
                        Some(full) if file.enums.contains_key(&full) => Kind::Enum(full),
                        Some(full) => Kind::Message(full),
                        None => Kind::Message(n.trim_start_matches('.').to_string()),
                    },
                    other => other.clone(),
                };
                f.kind = resolve(self, &f.kind);
                if let Some((k, v)) = &f.map {
                    f.map = Some((resolve(self, k), resolve(self, v)));
                }
            }
            self.messages.get_mut(&name).expect("known").fields = fields;
        }
        // Map fields from a descriptor: a repeated field of a map-entry type.
        let entries: BTreeMap<String, (Kind, Kind)> = self
            .messages
            .iter()
            .filter(|(_, m)| m.map_entry)
            .filter_map(|(n, m)| {
                let key = m.fields.iter().find(|f| f.number == 1)?.kind.clone();
                let value = m.fields.iter().find(|f| f.number == 2)?.kind.clone();
                Some((n.clone(), (key, value)))
            })
            .collect();
        for m in self.messages.values_mut() {
            for f in &mut m.fields {
                if let Kind::Message(n) = &f.kind {
                    if let Some(kv) = entries.get(n) {
                        f.map = Some(kv.clone());
                    }
                }
            }
        }
    }

    /// The message type Confluent's message indexes name: the first index picks a top-level message,
    /// each next one a nested type of the previous.
    fn message_at(&self, indexes: &[i64]) -> Result<&str, String> {
        let mut list = &self.top;
        let mut current: Option<&str> = None;
        for &i in indexes {
            let name = usize::try_from(i)
                .ok()
                .and_then(|i| list.get(i))
                .ok_or_else(|| {
                    format!("the message indexes {indexes:?} name no message of the schema")
                })?;
            current = Some(name);
            list = &self.messages[name].nested;
        }
        current.ok_or_else(|| "the schema has no message".to_string())
    }

    /// Checks a framed body (the message indexes, then the message) and gives the JSON Schema of the
    /// message type the indexes name.
    pub fn check_framed(&self, body: &[u8]) -> Result<Value, String> {
        let mut r = wire::Reader::new(body);
        let count = r.zigzag()?;
        let indexes: Vec<i64> = if count == 0 {
            vec![0]
        } else if !(1..=MAX_DEPTH as i64).contains(&count) {
            return Err(format!("{count} message indexes"));
        } else {
            (0..count).map(|_| r.zigzag()).collect::<Result<_, _>>()?
        };
        let name = self.message_at(&indexes)?.to_string();
        let mut items = 0;
        self.check_message(&name, r.rest(), 0, &mut items)?;
        Ok(self.render_named(&name))
    }

    fn check_message(
        &self,
        name: &str,
        bytes: &[u8],
        depth: usize,
        items: &mut usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("messages nested deeper than {MAX_DEPTH}"));
        }
        // A message of another file: its bytes are only framed, not known.
        let Some(message) = self.messages.get(name) else {
            return wire::Reader::new(bytes).skip_all(items);
        };
        let mut r = wire::Reader::new(bytes);
        while !r.done() {
            *items += 1;
            if *items > MAX_ITEMS {
                return Err(format!("more than {MAX_ITEMS} fields in one message"));
            }
            let (number, wire_type) = r.tag()?;
            let Some(field) = message.fields.iter().find(|f| f.number == number) else {
                r.skip(wire_type)?;
                continue;
            };
            let expected = wire_type_of(&field.kind, field.map.is_some());
            if wire_type == expected {
                match (&field.kind, field.map.is_some()) {
                    (Kind::Message(n), false) => {
                        let sub = r.bytes()?;
                        self.check_message(n, sub, depth + 1, items)?;
                    }
                    (Kind::String, _) => {
                        let at = r.at();
                        std::str::from_utf8(r.bytes()?).map_err(|_| {
                            format!("field {} at byte {at} is not UTF-8", field.name)
                        })?;
                    }
                    _ => r.skip(wire_type)?,
                }
            } else if wire_type == 2 && field.repeated && expected != 2 {
                r.bytes()?; // a packed repeated scalar
            } else {
                return Err(format!(
                    "field {} ({}) came with wire type {wire_type}",
                    field.name, number
                ));
            }
        }
        Ok(())
    }

    /// The JSON Schema of the top-level message `index` (the one Confluent's `[0]` names).
    pub fn json_schema(&self, index: usize) -> Value {
        match self.top.get(index) {
            Some(name) => self.render_named(name),
            None => json!({}),
        }
    }

    fn render_named(&self, name: &str) -> Value {
        let mut s = self.render_message(name, &mut Vec::new());
        if let Value::Object(o) = &mut s {
            o.insert(
                "$schema".into(),
                "https://json-schema.org/draft/2020-12/schema".into(),
            );
        }
        s
    }

    fn render_message(&self, name: &str, open: &mut Vec<String>) -> Value {
        let Some(message) = self.messages.get(name) else {
            return json!({"type": "object", "title": name});
        };
        if open.iter().any(|o| o == name) || open.len() > MAX_DEPTH {
            return json!({"type": "object", "title": name});
        }
        open.push(name.to_string());
        let mut properties = Map::new();
        let mut required = Vec::new();
        for f in &message.fields {
            let s = match &f.map {
                Some((_, v)) => {
                    json!({"type": "object", "additionalProperties": self.render_kind(v, open)})
                }
                None if f.repeated => {
                    json!({"type": "array", "items": self.render_kind(&f.kind, open)})
                }
                None => self.render_kind(&f.kind, open),
            };
            properties.insert(f.name.clone(), s);
            if f.required {
                required.push(Value::from(f.name.clone()));
            }
        }
        open.pop();
        let mut s = json!({"type": "object", "title": name, "properties": properties});
        if !required.is_empty() {
            s["required"] = Value::Array(required);
        }
        s
    }

    fn render_kind(&self, kind: &Kind, open: &mut Vec<String>) -> Value {
        match kind {
            Kind::Double | Kind::Float => json!({"type": "number"}),
            Kind::Varint(t) | Kind::Fixed32(t) | Kind::Fixed64(t) => {
                json!({"type": "integer", "format": t})
            }
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Kind::Enum(n) => {
                json!({"type": "string", "title": n, "enum": self.enums.get(n).cloned().unwrap_or_default()})
            }
            Kind::Message(n) => self.render_message(n, open),
        }
    }
}

fn wire_type_of(kind: &Kind, map: bool) -> u8 {
    if map {
        return 2;
    }
    match kind {
        Kind::Varint(_) | Kind::Bool | Kind::Enum(_) => 0,
        Kind::Double | Kind::Fixed64(_) => 1,
        Kind::Float | Kind::Fixed32(_) => 5,
        Kind::String | Kind::Bytes | Kind::Message(_) => 2,
    }
}

fn scalar(name: &str) -> Option<Kind> {
    Some(match name {
        "double" => Kind::Double,
        "float" => Kind::Float,
        "int32" => Kind::Varint("int32"),
        "int64" => Kind::Varint("int64"),
        "uint32" => Kind::Varint("uint32"),
        "uint64" => Kind::Varint("uint64"),
        "sint32" => Kind::Varint("sint32"),
        "sint64" => Kind::Varint("sint64"),
        "fixed32" => Kind::Fixed32("fixed32"),
        "sfixed32" => Kind::Fixed32("sfixed32"),
        "fixed64" => Kind::Fixed64("fixed64"),
        "sfixed64" => Kind::Fixed64("sfixed64"),
        "bool" => Kind::Bool,
        "string" => Kind::String,
        "bytes" => Kind::Bytes,
        _ => return None,
    })
}

/// A base64 `FileDescriptorProto` (descriptor.proto's field numbers).
mod descriptor {
    use super::wire::Reader;
    use super::*;

    fn text(bytes: &[u8]) -> Result<String, String> {
        String::from_utf8(bytes.to_vec()).map_err(|_| "a name that is not UTF-8".to_string())
    }

    pub fn file(bytes: &[u8]) -> Result<File, String> {
        let mut file = File::default();
        let mut package = String::new();
        let mut messages = Vec::new();
        let mut enums = Vec::new();
        let mut r = Reader::new(bytes);
        while !r.done() {
            let (number, wire_type) = r.tag()?;
            match (number, wire_type) {
                (2, 2) => package = text(r.bytes()?)?,
                (4, 2) => messages.push(r.bytes()?),
                (5, 2) => enums.push(r.bytes()?),
                (_, w) => r.skip(w)?,
            }
        }
        let mut scopes = BTreeMap::new();
        for e in enums {
            enumeration(e, &package, &mut file)?;
        }
        for m in messages {
            let name = message(m, &package, &package, &mut file, &mut scopes, 0)?;
            file.top.push(name);
        }
        if file.top.is_empty() {
            return Err("a descriptor without messages".into());
        }
        file.link(&scopes);
        Ok(file)
    }

    fn enumeration(bytes: &[u8], scope: &str, file: &mut File) -> Result<(), String> {
        let (mut name, mut values) = (String::new(), Vec::new());
        let mut r = Reader::new(bytes);
        while !r.done() {
            match r.tag()? {
                (1, 2) => name = text(r.bytes()?)?,
                (2, 2) => {
                    let mut v = Reader::new(r.bytes()?);
                    while !v.done() {
                        match v.tag()? {
                            (1, 2) => values.push(text(v.bytes()?)?),
                            (_, w) => v.skip(w)?,
                        }
                    }
                }
                (_, w) => r.skip(w)?,
            }
        }
        file.enums.insert(join(scope, &name), values);
        Ok(())
    }

    fn message(
        bytes: &[u8],
        scope: &str,
        package: &str,
        file: &mut File,
        scopes: &mut BTreeMap<String, String>,
        depth: usize,
    ) -> Result<String, String> {
        if depth > MAX_DEPTH {
            return Err(format!("messages nested deeper than {MAX_DEPTH}"));
        }
        let mut name = String::new();
        let (mut fields, mut nested, mut enums) = (Vec::new(), Vec::new(), Vec::new());
        let mut map_entry = false;
        let mut r = Reader::new(bytes);
        while !r.done() {
            match r.tag()? {
                (1, 2) => name = text(r.bytes()?)?,
                (2, 2) => fields.push(field(r.bytes()?)?),
                (3, 2) => nested.push(r.bytes()?),
                (4, 2) => enums.push(r.bytes()?),
                (7, 2) => {
                    let mut o = Reader::new(r.bytes()?);
                    while !o.done() {
                        match o.tag()? {
                            (7, 0) => map_entry = o.varint()? != 0,
                            (_, w) => o.skip(w)?,
                        }
                    }
                }
                (_, w) => r.skip(w)?,
            }
        }
        let full = join(scope, &name);
        for e in enums {
            enumeration(e, &full, file)?;
        }
        let mut nested_names = Vec::new();
        for n in nested {
            nested_names.push(message(n, &full, package, file, scopes, depth + 1)?);
        }
        scopes.insert(full.clone(), full.clone());
        file.add_message(
            full.clone(),
            Message {
                fields,
                nested: nested_names,
                map_entry,
            },
        )?;
        let _ = package;
        Ok(full)
    }

    fn field(bytes: &[u8]) -> Result<Field, String> {
        let (mut name, mut number, mut label, mut ty, mut type_name) =
            (String::new(), 0u32, 1u64, 0u64, String::new());
        let mut r = Reader::new(bytes);
        while !r.done() {
            match r.tag()? {
                (1, 2) => name = text(r.bytes()?)?,
                (3, 0) => number = r.varint()? as u32,
                (4, 0) => label = r.varint()?,
                (5, 0) => ty = r.varint()?,
                (6, 2) => type_name = text(r.bytes()?)?,
                (_, w) => r.skip(w)?,
            }
        }
        let kind = match ty {
            1 => Kind::Double,
            2 => Kind::Float,
            3 => Kind::Varint("int64"),
            4 => Kind::Varint("uint64"),
            5 => Kind::Varint("int32"),
            6 => Kind::Fixed64("fixed64"),
            7 => Kind::Fixed32("fixed32"),
            8 => Kind::Bool,
            9 => Kind::String,
            11 => Kind::Message(type_name),
            12 => Kind::Bytes,
            13 => Kind::Varint("uint32"),
            14 => Kind::Enum(type_name),
            15 => Kind::Fixed32("sfixed32"),
            16 => Kind::Fixed64("sfixed64"),
            17 => Kind::Varint("sint32"),
            18 => Kind::Varint("sint64"),
            other => return Err(format!("field {name}: type {other} (groups are not read)")),
        };
        Ok(Field {
            name,
            number,
            kind,
            repeated: label == 3,
            required: label == 2,
            map: None,
        })
    }

    fn join(scope: &str, name: &str) -> String {
        if scope.is_empty() {
            name.to_string()
        } else {
            format!("{scope}.{name}")
        }
    }
}

/// `.proto` text: the subset a schema needs (syntax, package, imports and options skipped, messages
/// with nested messages, enums, oneofs and maps).
mod text {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    enum Token {
        Word(String),
        Text(String),
        Symbol(char),
    }

    fn tokens(src: &str) -> Result<Vec<Token>, String> {
        let mut out = Vec::new();
        let chars: Vec<char> = src.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
            } else if c == '/' && chars.get(i + 1) == Some(&'/') {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            } else if c == '/' && chars.get(i + 1) == Some(&'*') {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            } else if c == '"' || c == '\'' {
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    if let Some(ch) = chars.get(i) {
                        s.push(*ch);
                    }
                    i += 1;
                }
                i += 1;
                out.push(Token::Text(s));
            } else if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' || c == '+' {
                let mut s = String::new();
                while i < chars.len() && (chars[i].is_alphanumeric() || "_.-+".contains(chars[i])) {
                    s.push(chars[i]);
                    i += 1;
                }
                out.push(Token::Word(s));
            } else {
                out.push(Token::Symbol(c));
                i += 1;
            }
            if out.len() > 1_000_000 {
                return Err("a .proto of more than a million tokens".into());
            }
        }
        Ok(out)
    }

    struct Parser {
        tokens: Vec<Token>,
        at: usize,
        file: File,
        scopes: BTreeMap<String, String>,
    }

    impl Parser {
        fn peek(&self) -> Option<&Token> {
            self.tokens.get(self.at)
        }
        fn next(&mut self) -> Result<Token, String> {
            let t = self
                .tokens
                .get(self.at)
                .cloned()
                .ok_or("the .proto ends early")?;
            self.at += 1;
            Ok(t)
        }
        fn word(&mut self) -> Result<String, String> {
            match self.next()? {
                Token::Word(w) => Ok(w),
                other => Err(format!("expected a name, found {other:?}")),
            }
        }
        fn expect(&mut self, c: char) -> Result<(), String> {
            match self.next()? {
                Token::Symbol(s) if s == c => Ok(()),
                other => Err(format!("expected {c:?}, found {other:?}")),
            }
        }
        /// Skips to the end of a statement (`;`) or over a `{ ... }` block.
        fn skip_statement(&mut self) -> Result<(), String> {
            let mut depth = 0usize;
            loop {
                match self.next()? {
                    Token::Symbol(';') if depth == 0 => return Ok(()),
                    Token::Symbol('{') => depth += 1,
                    Token::Symbol('}') => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            if matches!(self.peek(), Some(Token::Symbol(';'))) {
                                self.at += 1;
                            }
                            return Ok(());
                        }
                    }
                    _ => {}
                }
            }
        }
        fn skip_options(&mut self) -> Result<(), String> {
            if matches!(self.peek(), Some(Token::Symbol('['))) {
                while !matches!(self.next()?, Token::Symbol(']')) {}
            }
            Ok(())
        }

        fn enumeration(&mut self, scope: &str) -> Result<(), String> {
            let name = join(scope, &self.word()?);
            self.expect('{')?;
            let mut values = Vec::new();
            loop {
                match self.next()? {
                    Token::Symbol('}') => break,
                    Token::Symbol(';') => {}
                    Token::Word(w) if w == "option" || w == "reserved" => self.skip_statement()?,
                    Token::Word(w) => {
                        values.push(w);
                        self.skip_statement()?;
                    }
                    other => return Err(format!("unexpected {other:?} in enum {name}")),
                }
            }
            self.file.enums.insert(name, values);
            Ok(())
        }

        fn message(&mut self, scope: &str, depth: usize) -> Result<String, String> {
            if depth > MAX_DEPTH {
                return Err(format!("messages nested deeper than {MAX_DEPTH}"));
            }
            let full = join(scope, &self.word()?);
            self.expect('{')?;
            let mut message = Message::default();
            self.body(&full, &mut message, depth)?;
            self.scopes.insert(full.clone(), full.clone());
            self.file.add_message(full.clone(), message)?;
            Ok(full)
        }

        fn body(&mut self, full: &str, message: &mut Message, depth: usize) -> Result<(), String> {
            loop {
                let t = self.next()?;
                match t {
                    Token::Symbol('}') => return Ok(()),
                    Token::Symbol(';') => {}
                    Token::Word(w) => match w.as_str() {
                        "message" => {
                            let n = self.message(full, depth + 1)?;
                            message.nested.push(n);
                        }
                        "enum" => self.enumeration(full)?,
                        "option" | "reserved" | "extensions" | "extend" => self.skip_statement()?,
                        "oneof" => {
                            // A oneof nests no deeper than a message may (a hostile schema could
                            // nest them without end).
                            if depth >= MAX_DEPTH {
                                return Err(format!("messages nested deeper than {MAX_DEPTH}"));
                            }
                            self.word()?;
                            self.expect('{')?;
                            self.body(full, message, depth + 1)?;
                        }
                        "map" => {
                            self.expect('<')?;
                            let k = self.word()?;
                            self.expect(',')?;
                            let v = self.word()?;
                            self.expect('>')?;
                            let name = self.word()?;
                            self.expect('=')?;
                            let number = self.number()?;
                            self.skip_options()?;
                            self.expect(';')?;
                            let kind =
                                |t: &str| scalar(t).unwrap_or_else(|| Kind::Message(t.to_string()));
                            message.fields.push(Field {
                                name,
                                number,
                                kind: Kind::Message(String::new()),
                                repeated: true,
                                required: false,
                                map: Some((kind(&k), kind(&v))),
                            });
                        }
                        _ => {
                            let (label, ty) = match w.as_str() {
                                "repeated" | "optional" | "required" => (w.clone(), self.word()?),
                                _ => (String::new(), w.clone()),
                            };
                            let name = self.word()?;
                            self.expect('=')?;
                            let number = self.number()?;
                            self.skip_options()?;
                            self.expect(';')?;
                            message.fields.push(Field {
                                name,
                                number,
                                kind: scalar(&ty).unwrap_or(Kind::Message(ty)),
                                repeated: label == "repeated",
                                required: label == "required",
                                map: None,
                            });
                        }
                    },
                    other => return Err(format!("unexpected {other:?} in message {full}")),
                }
            }
        }

        fn number(&mut self) -> Result<u32, String> {
            let w = self.word()?;
            let n = if let Some(hex) = w.strip_prefix("0x") {
                u32::from_str_radix(hex, 16).ok()
            } else {
                w.parse().ok()
            };
            n.filter(|n| *n > 0)
                .ok_or_else(|| format!("{w:?} is not a field number"))
        }
    }

    fn join(scope: &str, name: &str) -> String {
        if scope.is_empty() {
            name.to_string()
        } else {
            format!("{scope}.{name}")
        }
    }

    pub fn file(src: &str) -> Result<File, String> {
        let mut p = Parser {
            tokens: tokens(src)?,
            at: 0,
            file: File::default(),
            scopes: BTreeMap::new(),
        };
        let mut package = String::new();
        while let Some(t) = p.peek().cloned() {
            p.at += 1;
            match t {
                Token::Word(w) if w == "package" => {
                    package = p.word()?;
                    p.expect(';')?;
                }
                Token::Word(w) if w == "message" => {
                    let n = p.message(&package, 0)?;
                    p.file.top.push(n);
                }
                Token::Word(w) if w == "enum" => p.enumeration(&package)?,
                Token::Word(_) => p.skip_statement()?,
                Token::Symbol(';') => {}
                other => return Err(format!("unexpected {other:?} in the .proto")),
            }
        }
        if p.file.top.is_empty() {
            return Err("the Protobuf schema defines no message".into());
        }
        let scopes = std::mem::take(&mut p.scopes);
        p.file.link(&scopes);
        Ok(p.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTO: &str = r#"
        syntax = "proto3";
        package shop;
        import "google/protobuf/timestamp.proto";
        option java_package = "com.example.shop";
        // An order.
        message Order {
          int64 id = 1;
          double amount = 2;
          optional string coupon = 3 [deprecated = true];
          Status status = 4;
          repeated Line lines = 5;
          map<string, string> tags = 6;
          google.protobuf.Timestamp at = 7;
          oneof payment { string card = 8; string iban = 9; }
          message Line { string sku = 1; int32 qty = 2; }
          enum Status { NEW = 0; PAID = 1; }
          reserved 10 to 12;
        }
        message Other { bool ok = 1; }
    "#;

    use crate::models::wire::varint;
    fn tag(number: u32, wire: u8) -> Vec<u8> {
        varint(u64::from(number) << 3 | u64::from(wire))
    }
    fn len_field(number: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = tag(number, 2);
        out.extend(varint(bytes.len() as u64));
        out.extend_from_slice(bytes);
        out
    }

    fn order() -> Vec<u8> {
        let mut b = tag(1, 0);
        b.extend(varint(42));
        b.extend(tag(2, 1));
        b.extend_from_slice(&12.5f64.to_le_bytes());
        b.extend(len_field(3, b"SPRING"));
        b.extend(tag(4, 0));
        b.extend(varint(1));
        let mut line = len_field(1, b"A1");
        line.extend(tag(2, 0));
        line.extend(varint(3));
        b.extend(len_field(5, &line));
        let mut entry = len_field(1, b"k");
        entry.extend(len_field(2, b"v"));
        b.extend(len_field(6, &entry));
        let mut ts = tag(1, 0);
        ts.extend(varint(1_700_000_000));
        b.extend(len_field(7, &ts));
        b.extend(len_field(8, b"4111"));
        b
    }

    #[test]
    fn proto_text_is_parsed_and_a_message_checked() {
        let file = File::parse(PROTO).unwrap();
        assert_eq!(file.top, ["shop.Order", "shop.Other"]);
        let mut framed = vec![0]; // message indexes [0]: shop.Order
        framed.extend(order());
        let schema = file.check_framed(&framed).unwrap();
        assert_eq!(schema["title"], "shop.Order");
        assert_eq!(
            schema["properties"]["id"],
            json!({"type": "integer", "format": "int64"})
        );
        assert_eq!(
            schema["properties"]["status"]["enum"],
            json!(["NEW", "PAID"])
        );
        assert_eq!(
            schema["properties"]["lines"]["items"]["properties"]["qty"]["type"],
            "integer"
        );
        assert_eq!(
            schema["properties"]["tags"]["additionalProperties"],
            json!({"type": "string"})
        );
        assert_eq!(
            schema["properties"]["at"],
            json!({"type": "object", "title": "google.protobuf.Timestamp"})
        );
        assert_eq!(schema["properties"]["card"]["type"], "string");
        // Indexes [1]: the second top-level message; [0, 0]: Order.Line.
        let mut other = vec![2, 2]; // zigzag(1) = 2: one index, 1
        other.extend(tag(1, 0));
        other.push(1);
        assert_eq!(file.check_framed(&other).unwrap()["title"], "shop.Other");
        let mut line = vec![4, 0, 0]; // two indexes, 0 and 0
        line.extend(len_field(1, b"A1"));
        assert_eq!(
            file.check_framed(&line).unwrap()["title"],
            "shop.Order.Line"
        );
        assert!(file
            .check_framed(&[2, 10])
            .unwrap_err()
            .contains("name no message"));
    }

    #[test]
    fn bytes_that_do_not_fit_are_named() {
        let file = File::parse(PROTO).unwrap();
        let mut wrong_wire = vec![0];
        wrong_wire.extend(tag(1, 2));
        wrong_wire.extend(varint(1));
        wrong_wire.push(0);
        assert!(file
            .check_framed(&wrong_wire)
            .unwrap_err()
            .contains("field id (1) came with wire type 2"));
        let mut cut = vec![0];
        cut.extend(&order()[..12]);
        assert!(file
            .check_framed(&cut)
            .unwrap_err()
            .contains("the message ends"));
        let mut bad_utf8 = vec![0];
        bad_utf8.extend(len_field(3, &[0xff, 0xfe]));
        assert!(file
            .check_framed(&bad_utf8)
            .unwrap_err()
            .contains("not UTF-8"));
    }

    #[test]
    fn a_base64_file_descriptor_is_read_like_the_text() {
        // FileDescriptorProto { package: "p", message_type: [ { name: "M", field: [
        //   { name: "n", number: 1, label: 1, type: 9 }, { name: "e", number: 2, label: 3, type: 14, type_name: ".p.M.E" } ],
        //   enum_type: [ { name: "E", value: [ { name: "A", number: 0 } ] } ] } ] }
        let f1 = [
            len_field(1, b"n"),
            tag(3, 0),
            varint(1),
            tag(4, 0),
            varint(1),
            tag(5, 0),
            varint(9),
        ]
        .concat();
        let f2 = [
            len_field(1, b"e"),
            tag(3, 0),
            varint(2),
            tag(4, 0),
            varint(3),
            tag(5, 0),
            varint(14),
            len_field(6, b".p.M.E"),
        ]
        .concat();
        let value = [len_field(1, b"A"), tag(2, 0), varint(0)].concat();
        let e = [len_field(1, b"E"), len_field(2, &value)].concat();
        let m = [
            len_field(1, b"M"),
            len_field(2, &f1),
            len_field(2, &f2),
            len_field(4, &e),
        ]
        .concat();
        let fdp = [
            len_field(1, b"m.proto"),
            len_field(2, b"p"),
            len_field(4, &m),
        ]
        .concat();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&fdp);
        let file = File::parse(&b64).unwrap();
        let s = file.json_schema(0);
        assert_eq!(s["title"], "p.M");
        assert_eq!(s["properties"]["n"]["type"], "string");
        assert_eq!(
            s["properties"]["e"],
            json!({"type": "array", "items": {"type": "string", "title": "p.M.E", "enum": ["A"]}})
        );
        let mut msg = vec![0];
        msg.extend(len_field(1, b"x"));
        msg.extend(len_field(2, &[0, 0])); // packed enums
        assert!(file.check_framed(&msg).is_ok());
    }

    #[test]
    fn hostile_inputs_are_bounded() {
        let mut deep = String::new();
        for i in 0..100 {
            deep.push_str(&format!("message M{i} {{ "));
        }
        deep.push_str(&"}".repeat(100));
        assert!(File::parse(&deep).unwrap_err().contains("deeper than 64"));
        let oneofs = format!("message M {{ {} }}", "oneof o { ".repeat(100_000));
        assert!(File::parse(&oneofs).unwrap_err().contains("deeper than 64"));
        assert!(File::parse("syntax = \"proto3\";")
            .unwrap_err()
            .contains("no message"));
        let file = File::parse("message R { R next = 1; }").unwrap();
        let mut nested = Vec::new();
        for _ in 0..100 {
            nested = len_field(1, &nested);
        }
        let mut framed = vec![0];
        framed.extend(nested);
        assert!(file
            .check_framed(&framed)
            .unwrap_err()
            .contains("deeper than 64"));
        assert_eq!(
            file.json_schema(0)["properties"]["next"],
            json!({"type": "object", "title": "R"})
        );
        assert!(file
            .check_framed(&[200, 1])
            .unwrap_err()
            .contains("100 message indexes"));
    }
}
