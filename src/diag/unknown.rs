//! Every unknown field of a file at once, each with its path and the
//! field it was probably meant to be.
//!
//! serde stops at the first key a `deny_unknown_fields` struct does not
//! know, so a file with two typos took two runs to fix. [`deserialize`]
//! puts an adapter between a deserializer and the type being read: where
//! that type reads a struct, each key the struct does not declare is
//! noted (path, position, the fields it does declare) and taken out of the
//! way before serde sees it, and reading goes on. A key within a typo of
//! a declared field that has not been given is read as that field, so
//! that a misspelt required field does not stop the reading either.
//!
//! The adapter only passes calls through; every value is still read, and
//! every other error raised, by the deserializer underneath.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Pos, Sp, did_you_mean, one_of};

/// A key that the struct it was written in does not declare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown {
    /// Where it is, ending with the key: `steps[2].acton`.
    pub path: String,
    pub key: String,
    pub pos: Option<Pos>,
    /// The fields the struct declares.
    pub expected: &'static [&'static str],
    /// The declared field it was read as, being within a typo of it.
    pub meant: Option<&'static str>,
}

impl Unknown {
    /// What is wrong, in the words of the other checks: the field and a
    /// did-you-mean, or every field there is when nothing is close.
    pub fn message(&self) -> String {
        match self.meant {
            Some(m) => format!("unknown field `{}` (did you mean `{m}`?)", self.key),
            None => format!(
                "unknown field `{}`; expected one of: {}",
                self.key,
                one_of(self.expected)
            ),
        }
    }
}

/// Reads `T` from `de`, returning with the result every unknown key met
/// on the way (in the order met), whether or not the reading succeeded.
pub fn deserialize<'de, T, D>(de: D) -> (Result<T, D::Error>, Vec<Unknown>)
where
    T: de::Deserialize<'de>,
    D: Deserializer<'de>,
{
    let found = Rc::new(RefCell::new(Vec::new()));
    let ctx = Ctx {
        found: found.clone(),
        path: None,
        spanned: false,
        key: None,
    };
    let result = T::deserialize(Wrap { de, ctx });
    let unknown = std::mem::take(&mut *found.borrow_mut());
    (result, unknown)
}

/// One step of a path, linked to its parent so that a child is made
/// without copying the path above it.
struct Step {
    parent: Option<Rc<Step>>,
    part: Part,
}

enum Part {
    Field(String),
    Index(usize),
}

fn render(path: &Option<Rc<Step>>, out: &mut String) {
    let Some(step) = path else { return };
    render(&step.parent, out);
    match &step.part {
        Part::Field(f) if out.is_empty() => out.push_str(f),
        Part::Field(f) => {
            out.push('.');
            out.push_str(f);
        }
        Part::Index(i) => out.push_str(&format!("[{i}]")),
    }
}

/// What the wrappers carry down: where the unknown keys go and where in
/// the file the value being read is.
#[derive(Clone)]
struct Ctx {
    found: Rc<RefCell<Vec<Unknown>>>,
    path: Option<Rc<Step>>,
    /// The value is serde-saphyr's view of a `Spanned<T>`: a map of the
    /// value and its locations, which is no part of the file's shape.
    spanned: bool,
    /// Set while a map key is read: its text is kept here for the path.
    key: Option<Rc<RefCell<Option<String>>>>,
}

impl Ctx {
    fn child(&self, part: Part) -> Ctx {
        Ctx {
            found: self.found.clone(),
            path: Some(Rc::new(Step {
                parent: self.path.clone(),
                part,
            })),
            spanned: false,
            key: None,
        }
    }

    /// The same place, for a value read inside it (a newtype's, an
    /// option's).
    fn same(&self) -> Ctx {
        Ctx {
            spanned: false,
            key: None,
            ..self.clone()
        }
    }

    fn path_to(&self, key: &str) -> String {
        let mut out = String::new();
        render(&self.path, &mut out);
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(key);
        out
    }

    fn keep_key(&self, text: impl fmt::Display) {
        if let Some(k) = &self.key {
            *k.borrow_mut() = Some(text.to_string());
        }
    }
}

/// A deserializer whose every value passes through the adapter.
struct Wrap<D> {
    de: D,
    ctx: Ctx,
}

/// A visitor that hands the maps, sequences and nested deserializers it
/// is given to the wrapped visitor wrapped in turn. `fields` is set when
/// it visits a struct, whose keys are checked against them.
struct Visit<V> {
    v: V,
    ctx: Ctx,
    fields: Option<&'static [&'static str]>,
}

impl<V> Visit<V> {
    fn new(v: V, ctx: Ctx) -> Self {
        Visit {
            v,
            ctx,
            fields: None,
        }
    }
}

/// A seed whose deserializer is wrapped.
struct Seed<S> {
    seed: S,
    ctx: Ctx,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Wrap { de, ctx: self.ctx })
    }
}

macro_rules! forward_plain {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.de.$method(Visit::new(visitor, self.ctx))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Wrap<D> {
    type Error = D::Error;

    forward_plain! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16
        deserialize_i32 deserialize_i64 deserialize_i128 deserialize_u8
        deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.de
            .deserialize_unit_struct(name, Visit::new(visitor, self.ctx))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        // serde-saphyr names its own wrapper types `__yaml_*`; `Spanned`
        // is one, and shows its value as a map beside its locations.
        let mut ctx = self.ctx;
        ctx.spanned = name.starts_with("__yaml_");
        self.de
            .deserialize_newtype_struct(name, Visit::new(visitor, ctx))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.de
            .deserialize_tuple(len, Visit::new(visitor, self.ctx))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.de
            .deserialize_tuple_struct(name, len, Visit::new(visitor, self.ctx))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visit = Visit {
            v: visitor,
            ctx: self.ctx,
            fields: Some(fields),
        };
        self.de.deserialize_struct(name, fields, visit)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.de
            .deserialize_enum(name, variants, Visit::new(visitor, self.ctx))
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

macro_rules! forward_scalar {
    ($($method:ident: $ty:ty)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.ctx.keep_key(&v);
                self.v.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Visit<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.v.expecting(f)
    }

    forward_scalar! {
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32
        visit_i64: i64 visit_i128: i128 visit_u8: u8 visit_u16: u16
        visit_u32: u32 visit_u64: u64 visit_u128: u128 visit_f32: f32
        visit_f64: f64 visit_char: char visit_str: &str
        visit_borrowed_str: &'de str visit_string: String
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<V::Value, E> {
        self.v.visit_bytes(v)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
        self.v.visit_borrowed_bytes(v)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<V::Value, E> {
        self.v.visit_byte_buf(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.v.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.v.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        self.v.visit_some(Wrap {
            de,
            ctx: self.ctx.same(),
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        // Keeps `spanned`: what the newtype shows next is its map.
        self.v.visit_newtype_struct(Wrap { de, ctx: self.ctx })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.v.visit_seq(Seq {
            seq,
            ctx: self.ctx.same(),
            index: 0,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        match self.fields {
            Some(fields) => self.v.visit_map(Struct {
                map,
                ctx: self.ctx.same(),
                fields,
                given: Vec::new(),
                current: None,
            }),
            None => self.v.visit_map(Map {
                map,
                spanned: self.ctx.spanned,
                ctx: self.ctx.same(),
                key: Rc::new(RefCell::new(None)),
            }),
        }
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.v.visit_enum(Enum {
            data,
            ctx: self.ctx.same(),
        })
    }
}

struct Seq<A> {
    seq: A,
    ctx: Ctx,
    index: usize,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let ctx = self.ctx.child(Part::Index(self.index));
        self.index += 1;
        self.seq.next_element_seed(Seed { seed, ctx })
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

/// A map that is not a struct (`targets`, `labels`, a `with:` block):
/// any key goes, and each is a step of its values' paths.
struct Map<A> {
    map: A,
    ctx: Ctx,
    spanned: bool,
    key: Rc<RefCell<Option<String>>>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        *self.key.borrow_mut() = None;
        let mut ctx = self.ctx.same();
        ctx.key = Some(self.key.clone());
        self.map.next_key_seed(Seed { seed, ctx })
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let key = self.key.borrow_mut().take();
        if self.spanned {
            // Only the value is the file's; the locations beside it are
            // serde-saphyr's own and read as they are.
            return match key.as_deref() {
                Some("value") => self.map.next_value_seed(Seed {
                    seed,
                    ctx: self.ctx.same(),
                }),
                _ => self.map.next_value_seed(seed),
            };
        }
        let ctx = self
            .ctx
            .child(Part::Field(key.unwrap_or_else(|| "?".to_owned())));
        self.map.next_value_seed(Seed { seed, ctx })
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A struct's map: each key it does not declare is noted and, unless it
/// is a typo of a declared field not given yet, skipped with its value.
struct Struct<A> {
    map: A,
    ctx: Ctx,
    fields: &'static [&'static str],
    /// Declared fields given so far, which a typo is not read as.
    given: Vec<&'static str>,
    current: Option<&'static str>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Struct<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<Sp<String>>()? else {
                return Ok(None);
            };
            let declared = self.fields.iter().find(|f| **f == key.value).copied();
            let field = match declared {
                Some(f) => Some(f),
                None => {
                    let open: Vec<&'static str> = self
                        .fields
                        .iter()
                        .copied()
                        .filter(|f| !self.given.contains(f))
                        .collect();
                    let meant = did_you_mean(&key.value, &open);
                    let meant = meant.and_then(|m| open.iter().copied().find(|f| *f == m));
                    self.ctx.found.borrow_mut().push(Unknown {
                        path: self.ctx.path_to(&key.value),
                        pos: Pos::of(&key),
                        key: key.value.clone(),
                        expected: self.fields,
                        meant,
                    });
                    meant
                }
            };
            match field {
                Some(f) => {
                    self.given.push(f);
                    self.current = Some(f);
                    return seed
                        .deserialize(de::value::BorrowedStrDeserializer::new(f))
                        .map(Some);
                }
                None => {
                    self.map.next_value::<IgnoredAny>()?;
                }
            }
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let field = self.current.take().unwrap_or("?");
        let ctx = self.ctx.child(Part::Field(field.to_owned()));
        self.map.next_value_seed(Seed { seed, ctx })
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

struct Enum<A> {
    data: A,
    ctx: Ctx,
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Enum<A> {
    type Error = A::Error;
    type Variant = Variant<A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, variant) = self.data.variant_seed(seed)?;
        Ok((
            value,
            Variant {
                variant,
                ctx: self.ctx,
            },
        ))
    }
}

struct Variant<A> {
    variant: A,
    ctx: Ctx,
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Variant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.variant.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.variant.newtype_variant_seed(Seed {
            seed,
            ctx: self.ctx,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.variant
            .tuple_variant(len, Visit::new(visitor, self.ctx))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visit = Visit {
            v: visitor,
            ctx: self.ctx,
            fields: Some(fields),
        };
        self.variant.struct_variant(fields, visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Step {
        id: Sp<String>,
        action: Sp<String>,
        timeout: Option<Sp<String>>,
        #[serde(default)]
        with: Option<Sp<serde_json::Value>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Book {
        name: Sp<String>,
        steps: Sp<Vec<Sp<Step>>>,
        #[serde(default)]
        targets: std::collections::BTreeMap<String, Sp<Step>>,
    }

    fn read<T: serde::de::DeserializeOwned>(text: &str) -> (Result<T, String>, Vec<Unknown>) {
        let mut unknown = Vec::new();
        let r = serde_saphyr::with_deserializer_from_str(text, |de| {
            let (r, u) = deserialize::<T, _>(de);
            unknown = u;
            r
        });
        (r.map_err(|e| e.to_string()), unknown)
    }

    #[test]
    fn every_unknown_field_is_found_with_its_path_position_and_meaning() {
        let text = "\
name: two
steps:
  - id: a
    action: chat
  - id: b
    acton: chat
  - id: c
    action: chat
    tiemout: 5s
    zzz: 1
targets:
  sim: {id: x, action: y, wth: 1}
";
        let (r, unknown) = read::<Book>(text);
        let book = r.expect("typos of fields not given are read as those fields");
        assert_eq!(book.steps.value[1].value.action.value, "chat");
        assert_eq!(
            book.steps.value[2].value.timeout.as_ref().unwrap().value,
            "5s"
        );
        // Positions still come from the file, through the adapter.
        assert_eq!(Pos::of(&book.steps.value[2].value.id), Some(Pos::new(7, 9)));
        let got: Vec<(String, Option<Pos>, Option<&str>)> = unknown
            .iter()
            .map(|u| (u.path.clone(), u.pos, u.meant))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "steps[1].acton".to_owned(),
                    Some(Pos::new(6, 5)),
                    Some("action")
                ),
                (
                    "steps[2].tiemout".to_owned(),
                    Some(Pos::new(9, 5)),
                    Some("timeout")
                ),
                ("steps[2].zzz".to_owned(), Some(Pos::new(10, 5)), None),
                (
                    "targets.sim.wth".to_owned(),
                    Some(Pos::new(12, 27)),
                    Some("with")
                ),
            ]
        );
        assert_eq!(
            unknown[0].message(),
            "unknown field `acton` (did you mean `action`?)"
        );
        assert_eq!(
            unknown[2].message(),
            "unknown field `zzz`; expected one of: action, id, timeout, with"
        );
    }

    /// A free-form value (`with:`) takes any key; a typo is not read as a
    /// field already given, so the real one is not overwritten.
    #[test]
    fn free_form_maps_are_not_checked_and_given_fields_are_not_taken_twice() {
        let text = "name: x\nsteps:\n  - {id: a, action: chat, actions: b, with: {anything: 1}}\n";
        let (r, unknown) = read::<Book>(text);
        let book = r.unwrap();
        assert_eq!(book.steps.value[0].value.action.value, "chat");
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        assert_eq!(unknown[0].path, "steps[0].actions");
        assert_eq!(unknown[0].meant, None);
    }

    /// A key too far from any field is skipped; the required field it
    /// might have been is then missing, and that error ends the reading
    /// with what was found so far.
    #[test]
    fn a_missing_required_field_still_ends_the_reading() {
        let (r, unknown) = read::<Book>("naem: x\nsteps:\n  - {id: a, verb: chat}\n");
        let e = r.unwrap_err();
        assert!(e.contains("missing field `action`"), "{e}");
        let paths: Vec<&str> = unknown.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(paths, ["naem", "steps[0].verb"]);
    }

    #[test]
    fn works_on_other_deserializers_without_positions() {
        let v = serde_json::json!({"id": "a", "action": "x", "timout": "1s", "foo": 1});
        let (r, unknown) = deserialize::<Step, _>(v);
        let step = r.unwrap();
        assert_eq!(step.timeout.unwrap().value, "1s");
        let mut got: Vec<(&str, Option<Pos>)> =
            unknown.iter().map(|u| (u.path.as_str(), u.pos)).collect();
        got.sort();
        assert_eq!(got, [("foo", None), ("timout", None)]);
    }
}
