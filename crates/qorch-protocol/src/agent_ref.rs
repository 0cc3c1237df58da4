//! [`AgentRef`]: the address of an agent, typed by the messages it accepts.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Address, AgentId};

/// A reference to an agent that accepts messages of type `M`.
///
/// Spawning an agent returns one; sending it a message of any other type does not compile.
/// It is a typed [`AgentId`]: `Copy`, eight bytes at most (four, in fact), comparable,
/// hashable, printable, and serializable as the bare id, so it can be stored, put in
/// messages and sent to other processes. Whoever deserializes one vouches for its type, as
/// for any serialized value; the runtime still checks the type of every message it delivers.
///
/// # Examples
///
/// ```
/// use qorch_protocol::{Address, AgentId, AgentRef};
///
/// enum CounterMsg { Add(u64) }
///
/// let r: AgentRef<CounterMsg> = AgentRef::from_id(AgentId(7));
/// let copy = r;
/// assert_eq!(r, copy);
/// assert_eq!(r.id(), AgentId(7));
/// assert_eq!(Address::from(r), Address::Agent(AgentId(7)));
/// assert_eq!(r.to_string(), "agent/7");
/// assert_eq!(std::mem::size_of::<AgentRef<CounterMsg>>(), 4);
/// ```
pub struct AgentRef<M> {
    id: AgentId,
    _accepts: PhantomData<fn(M)>,
}

impl<M> AgentRef<M> {
    /// A reference to agent `id`, which the caller states accepts `M`. Runtimes hand out
    /// references when they spawn agents; use this where only the id travelled (a table of
    /// peers, a distributed run's numbering). A message of the wrong type sent through it is
    /// refused at delivery (a dead letter, logged), never handed to the agent.
    #[inline]
    pub const fn from_id(id: AgentId) -> Self {
        AgentRef {
            id,
            _accepts: PhantomData,
        }
    }

    /// The agent's id.
    #[inline]
    pub const fn id(&self) -> AgentId {
        self.id
    }

    /// The agent's address.
    #[inline]
    pub const fn address(&self) -> Address {
        Address::Agent(self.id)
    }
}

impl<M> Clone for AgentRef<M> {
    #[inline]
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for AgentRef<M> {}

impl<M> PartialEq for AgentRef<M> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<M> Eq for AgentRef<M> {}

impl<M> PartialEq<AgentId> for AgentRef<M> {
    #[inline]
    fn eq(&self, other: &AgentId) -> bool {
        self.id == *other
    }
}

impl<M> PartialEq<AgentRef<M>> for AgentId {
    #[inline]
    fn eq(&self, other: &AgentRef<M>) -> bool {
        *self == other.id
    }
}

impl<M> PartialOrd for AgentRef<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<M> Ord for AgentRef<M> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.id.cmp(&other.id)
    }
}

impl<M> Hash for AgentRef<M> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl<M> fmt::Debug for AgentRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentRef<{}>({})", short_type_name::<M>(), self.id.0)
    }
}

impl<M> fmt::Display for AgentRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.id, f)
    }
}

impl<M> From<AgentRef<M>> for AgentId {
    #[inline]
    fn from(r: AgentRef<M>) -> AgentId {
        r.id
    }
}

impl<M> From<AgentRef<M>> for Address {
    #[inline]
    fn from(r: AgentRef<M>) -> Address {
        Address::Agent(r.id)
    }
}

impl<M> From<&AgentRef<M>> for Address {
    #[inline]
    fn from(r: &AgentRef<M>) -> Address {
        Address::Agent(r.id)
    }
}

impl<M> Serialize for AgentRef<M> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.id.serialize(s)
    }
}

impl<'de, M> Deserialize<'de> for AgentRef<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        AgentId::deserialize(d).map(AgentRef::from_id)
    }
}

/// A type's name without its module path (`alloc::string::String` -> `String`), for
/// messages and logs.
pub fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    // Keep generic arguments whole: cut the path only before the first `<`.
    let head = full.find('<').map_or(full, |i| &full[..i]);
    match head.rfind("::") {
        Some(i) => &full[i + 2..],
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_keep_generic_arguments() {
        assert_eq!(short_type_name::<String>(), "String");
        assert_eq!(short_type_name::<u64>(), "u64");
        assert_eq!(
            short_type_name::<Vec<String>>(),
            "Vec<alloc::string::String>"
        );
    }

    #[test]
    fn refs_cross_the_wire_inside_messages() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        enum Msg {
            Hello { reply_to: AgentRef<Msg>, n: u32 },
        }
        let codec = crate::WireCodec::default();
        let sent = Msg::Hello {
            reply_to: AgentRef::from_id(AgentId(7)),
            n: 3,
        };
        let bytes = codec.encode(&sent).unwrap();
        assert_eq!(codec.decode::<Msg>(&bytes).unwrap(), sent);
    }

    #[test]
    fn refs_serialize_as_bare_ids() {
        let r: AgentRef<u8> = AgentRef::from_id(AgentId(41));
        assert_eq!(serde_json::to_string(&r).unwrap(), "41");
        let back: AgentRef<u8> = serde_json::from_str("41").unwrap();
        assert_eq!(back, r);
    }
}
