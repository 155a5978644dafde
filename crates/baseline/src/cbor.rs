//! A tiny CBOR: the subset automerge-repo's envelopes use (definite-length text, bytes,
//! booleans, arrays and text-keyed maps), encoded the way `cbor-x` encodes them.
//!
//! ```
//! use doorstep_baseline::cbor::{Cbor, from_cbor, to_cbor};
//! let value = Cbor::Map(vec![("type".into(), Cbor::Text("sync".into()))]);
//! assert_eq!(from_cbor(&to_cbor(&value)).unwrap(), value);
//! ```

use crate::Error;

/// Deepest nesting [`from_cbor`] accepts.
const MAX_DEPTH: usize = 8;

/// A CBOR value of the subset.
#[derive(Clone, Debug, PartialEq)]
pub enum Cbor {
    /// Major type 3.
    Text(String),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// `true` / `false`.
    Bool(bool),
    /// Major type 4.
    Array(Vec<Cbor>),
    /// Major type 5, text keys in order.
    Map(Vec<(String, Cbor)>),
}

impl Cbor {
    /// The value under `key` of a map.
    pub fn field(&self, key: &str) -> Result<&Cbor, Error> {
        let Cbor::Map(entries) = self else { return Err(Error::Cbor("not a map")) };
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| Error::Protocol(format!("no field {key}")))
    }

    /// The text under `key` of a map.
    pub fn text_field(&self, key: &str) -> Result<String, Error> {
        match self.field(key)? {
            Cbor::Text(s) => Ok(s.clone()),
            _ => Err(Error::Protocol(format!("{key} is not text"))),
        }
    }

    /// The bytes under `key` of a map.
    pub fn bytes_field(&self, key: &str) -> Result<Vec<u8>, Error> {
        match self.field(key)? {
            Cbor::Bytes(b) => Ok(b.clone()),
            _ => Err(Error::Protocol(format!("{key} is not bytes"))),
        }
    }
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u64::from(u8::MAX) {
        out.extend([m | 24, n as u8]);
    } else if n <= u64::from(u16::MAX) {
        out.push(m | 25);
        out.extend((n as u16).to_be_bytes());
    } else if n <= u64::from(u32::MAX) {
        out.push(m | 26);
        out.extend((n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend(n.to_be_bytes());
    }
}

fn encode(value: &Cbor, out: &mut Vec<u8>) {
    match value {
        Cbor::Text(s) => {
            head(out, 3, s.len() as u64);
            out.extend(s.as_bytes());
        }
        Cbor::Bytes(b) => {
            head(out, 2, b.len() as u64);
            out.extend(b);
        }
        Cbor::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Cbor::Array(items) => {
            head(out, 4, items.len() as u64);
            for item in items {
                encode(item, out);
            }
        }
        Cbor::Map(entries) => {
            head(out, 5, entries.len() as u64);
            for (k, v) in entries {
                head(out, 3, k.len() as u64);
                out.extend(k.as_bytes());
                encode(v, out);
            }
        }
    }
}

/// Encodes `value`.
pub fn to_cbor(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out);
    out
}

/// Decodes exactly one value, with nothing after it.
pub fn from_cbor(bytes: &[u8]) -> Result<Cbor, Error> {
    let mut input = bytes;
    let value = decode(&mut input, 0)?;
    if !input.is_empty() {
        return Err(Error::Cbor("trailing bytes"));
    }
    Ok(value)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
    if input.len() < n {
        return Err(Error::Cbor("truncated"));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

fn decode(input: &mut &[u8], depth: usize) -> Result<Cbor, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::Cbor("nested too deep"));
    }
    let first = take(input, 1)?[0];
    let (major, info) = (first >> 5, first & 0x1f);
    if major == 7 {
        return match first {
            0xf5 => Ok(Cbor::Bool(true)),
            0xf4 => Ok(Cbor::Bool(false)),
            _ => Err(Error::Cbor("unsupported simple value")),
        };
    }
    let n = match info {
        0..=23 => u64::from(info),
        24 => be(take(input, 1)?),
        25 => be(take(input, 2)?),
        26 => be(take(input, 4)?),
        27 => be(take(input, 8)?),
        _ => return Err(Error::Cbor("unsupported length")),
    };
    let n = usize::try_from(n).map_err(|_| Error::Cbor("length too large"))?;
    Ok(match major {
        2 => Cbor::Bytes(take(input, n)?.to_vec()),
        3 => Cbor::Text(
            String::from_utf8(take(input, n)?.to_vec()).map_err(|_| Error::Cbor("text not UTF-8"))?,
        ),
        4 => {
            if n > input.len() {
                return Err(Error::Cbor("array longer than its input"));
            }
            Cbor::Array((0..n).map(|_| decode(input, depth + 1)).collect::<Result<_, _>>()?)
        }
        5 => {
            if n > input.len() {
                return Err(Error::Cbor("map longer than its input"));
            }
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let Cbor::Text(k) = decode(input, depth + 1)? else {
                    return Err(Error::Cbor("non-text map key"));
                };
                entries.push((k, decode(input, depth + 1)?));
            }
            Cbor::Map(entries)
        }
        _ => return Err(Error::Cbor("unsupported major type")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind_and_every_length_width() {
        let long = "字".repeat(30_000);
        let value = Cbor::Array(vec![
            Cbor::Text("sync".into()),
            Cbor::Bytes(vec![7; 300]),
            Cbor::Bool(true),
            Cbor::Bool(false),
            Cbor::Map(vec![("k".into(), Cbor::Text(long))]),
        ]);
        assert_eq!(from_cbor(&to_cbor(&value)).ok(), Some(value));
    }

    #[test]
    fn refuses_truncated_and_trailing_input() {
        let bytes = to_cbor(&Cbor::Bytes(vec![1, 2, 3]));
        assert!(from_cbor(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(from_cbor(&longer).is_err());
    }
}
