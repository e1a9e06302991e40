//! Fully populated values of any model type, for golden-file tests.
//!
//! A value is built through the type's own `Deserialize` impl, which names every field and
//! variant it knows: every optional field is set, every list and map holds one entry, every
//! number is non-zero, every flag true, and enums take their `k`-th variant. So a golden file
//! made from `sample::<T>(k)` for a few `k` holds every name `T` puts on the wire, also for
//! fields added later, without anyone listing them.
//!
//! Strings are all one RFC 3339 time, so that timestamps (which are strings on the wire) parse.

use std::fmt;

use serde::de;
use serde::de::DeserializeOwned;
use serde::de::DeserializeSeed;
use serde::de::IntoDeserializer;
use serde::de::Visitor;

/// Every string in a sample: also a valid [`crate::Timestamp`].
pub const SAMPLE_STRING: &str = "2001-02-03T04:05:06.000000007Z";

/// Nesting beyond this stops filling options and lists, so recursive types end.
const MAX_DEPTH: usize = 24;

/// Why no sample could be made: the type's `Deserialize` refused what the filler offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleError(String);

impl fmt::Display for SampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot build a sample: {}", self.0)
    }
}

impl std::error::Error for SampleError {}

impl de::Error for SampleError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

/// A fully populated `T` whose enums take their `k`-th variant (modulo their count).
pub fn sample<T: DeserializeOwned>(k: usize) -> Result<T, SampleError> {
    T::deserialize(Filler { k, depth: 0 })
}

/// Samples for `k = 0..variants`, without repeats: enough to show every variant of every enum
/// with at most `variants` variants.
pub fn samples<T: DeserializeOwned + PartialEq>(variants: usize) -> Result<Vec<T>, SampleError> {
    let mut out: Vec<T> = Vec::new();
    for k in 0..variants.max(1) {
        let s = sample::<T>(k)?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

#[derive(Clone, Copy)]
struct Filler {
    k: usize,
    depth: usize,
}

impl Filler {
    fn deeper(self) -> Self {
        Self {
            k: self.k,
            depth: self.depth + 1,
        }
    }

    fn number(self) -> u8 {
        // Small, non-zero, and the same for every k: numbers are not what a golden file checks.
        7
    }
}

macro_rules! unsigned {
    ($($method:ident => $visit:ident : $ty:ty),*) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
            v.$visit(self.number() as $ty)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Filler {
    type Error = SampleError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        // Only untyped values (JSON `Value`s) ask for anything: give them a string.
        v.visit_str(SAMPLE_STRING)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        v.visit_bool(true)
    }

    unsigned!(
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_u128 => visit_u128: u128
    );

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        v.visit_f32(0.5)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        v.visit_f64(0.5)
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        v.visit_char('x')
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        v.visit_str(SAMPLE_STRING)
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        v.visit_str(SAMPLE_STRING)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        v.visit_bytes(b"sample bytes")
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        v.visit_bytes(b"sample bytes")
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        if self.depth >= MAX_DEPTH {
            v.visit_none()
        } else {
            v.visit_some(self.deeper())
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        v.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, v: V) -> Result<V::Value, SampleError> {
        v.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, v: V) -> Result<V::Value, SampleError> {
        v.visit_newtype_struct(self.deeper())
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        let len = usize::from(self.depth < MAX_DEPTH);
        v.visit_seq(Elements {
            filler: self.deeper(),
            left: len,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, SampleError> {
        v.visit_seq(Elements {
            filler: self.deeper(),
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, SampleError> {
        self.deserialize_tuple(len, v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        let keys: &'static [&'static str] = if self.depth < MAX_DEPTH { &[SAMPLE_STRING] } else { &[] };
        v.visit_map(Fields {
            filler: self.deeper(),
            names: keys,
            next: 0,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, SampleError> {
        v.visit_map(Fields {
            filler: self.deeper(),
            names: fields,
            next: 0,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, SampleError> {
        if variants.is_empty() {
            return Err(SampleError(format!("enum {name} has no variants")));
        }
        v.visit_enum(Variant {
            filler: self.deeper(),
            name: variants[self.k % variants.len()],
        })
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        v.visit_str(SAMPLE_STRING)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, SampleError> {
        v.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        // Byte fields then ask for bytes, not for base64 text.
        false
    }
}

struct Elements {
    filler: Filler,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements {
    type Error = SampleError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, SampleError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.filler).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// A struct's fields by name (or a map's one key), each with a filled value.
struct Fields {
    filler: Filler,
    names: &'static [&'static str],
    next: usize,
}

impl<'de> de::MapAccess<'de> for Fields {
    type Error = SampleError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, SampleError> {
        let Some(name) = self.names.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let key: de::value::StrDeserializer<'_, SampleError> = name.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, SampleError> {
        seed.deserialize(self.filler)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.names.len() - self.next)
    }
}

struct Variant {
    filler: Filler,
    name: &'static str,
}

impl<'de> de::EnumAccess<'de> for Variant {
    type Error = SampleError;
    type Variant = Filler;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Filler), SampleError> {
        let key: de::value::StrDeserializer<'_, SampleError> = self.name.into_deserializer();
        Ok((seed.deserialize(key)?, self.filler))
    }
}

impl<'de> de::VariantAccess<'de> for Filler {
    type Error = SampleError;

    fn unit_variant(self) -> Result<(), SampleError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, SampleError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, SampleError> {
        de::Deserializer::deserialize_tuple(self, len, v)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], v: V) -> Result<V::Value, SampleError> {
        v.visit_map(Fields {
            filler: self,
            names: fields,
            next: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Object;
    use crate::ServiceSpec;
    use crate::TaskState;

    #[test]
    fn every_optional_field_is_set() {
        let spec: ServiceSpec = sample(0).unwrap();
        let cs = spec.task_template.container_spec.expect("container spec");
        assert!(cs.healthcheck.is_some());
        assert_eq!(cs.secrets.map(|s| s.len()), Some(1));
        assert!(spec.update_config.is_some());
    }

    #[test]
    fn the_kth_variant_is_taken() {
        let states: Vec<TaskState> = samples(64).unwrap();
        assert!(states.len() > 10, "{states:?}");
        let objects: Vec<Object> = samples(7).unwrap();
        assert_eq!(objects.len(), 7);
    }
}
