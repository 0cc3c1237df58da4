//! [`AnyMessage`]: a message of any type, for runtimes that host several behaviours.

use std::any::{Any, TypeId};
use std::fmt;

use qorch_protocol::{Message, Priority, short_type_name};

/// Copies a boxed value of a known type.
type CloneFn = fn(&(dyn Any + Send)) -> Box<dyn Any + Send>;

/// What [`AnyMessage`] knows of its value's type.
struct MsgVTable {
    name: fn() -> &'static str,
    /// `Some` for values made by [`AnyMessage::cloneable`].
    clone: Option<CloneFn>,
}

/// A message of any type: what travels in a runtime that hosts several behaviours
/// ([`AnyAgent`](crate::AnyAgent)), each with its own message type. The runtime makes and
/// opens them; users meet one only in the application's inbox of such a runtime
/// ([`RuntimeHandle::recv`](crate::RuntimeHandle::recv)), where
/// [`downcast`](Self::downcast) gives the typed message back.
///
/// # Examples
///
/// ```
/// use qorch_runtime::AnyMessage;
///
/// let m = AnyMessage::new(7_u64);
/// assert!(m.is::<u64>());
/// assert_eq!(m.type_name(), "u64");
/// let m = m.downcast::<String>().unwrap_err(); // not a String: given back
/// assert_eq!(m.downcast::<u64>().unwrap(), 7);
/// ```
pub struct AnyMessage {
    value: Box<dyn Any + Send>,
    priority: Priority,
    vtable: &'static MsgVTable,
}

impl AnyMessage {
    /// Wraps a message.
    pub fn new<X: Message>(msg: X) -> AnyMessage {
        AnyMessage {
            priority: msg.priority(),
            value: Box::new(msg),
            vtable: const {
                &MsgVTable {
                    name: short_type_name::<X>,
                    clone: None,
                }
            },
        }
    }

    /// Wraps a message that the runtime may copy (for redeliveries and periodic timers).
    pub fn cloneable<X: Message + Clone>(msg: X) -> AnyMessage {
        AnyMessage {
            priority: msg.priority(),
            value: Box::new(msg),
            vtable: const {
                &MsgVTable {
                    name: short_type_name::<X>,
                    clone: Some(clone_value::<X>),
                }
            },
        }
    }

    /// Whether the message is an `X`.
    pub fn is<X: 'static>(&self) -> bool {
        (*self.value).type_id() == TypeId::of::<X>()
    }

    /// The message's type, without its module path.
    pub fn type_name(&self) -> &'static str {
        (self.vtable.name)()
    }

    /// The message, if it is an `X`.
    pub fn downcast_ref<X: 'static>(&self) -> Option<&X> {
        self.value.downcast_ref()
    }

    /// The typed message, or itself if it is not an `X`.
    ///
    /// # Errors
    ///
    /// The message, unchanged, if it is not an `X`.
    pub fn downcast<X: 'static>(self) -> Result<X, AnyMessage> {
        if self.is::<X>() {
            match self.value.downcast::<X>() {
                Ok(x) => Ok(*x),
                // Unreachable: the type was just checked.
                Err(value) => Err(AnyMessage { value, ..self }),
            }
        } else {
            Err(self)
        }
    }

    /// A copy, for values made by [`cloneable`](Self::cloneable).
    pub fn try_clone(&self) -> Option<AnyMessage> {
        let clone = self.vtable.clone?;
        Some(AnyMessage {
            value: clone(&*self.value),
            priority: self.priority,
            vtable: self.vtable,
        })
    }

    /// A copy for the runtime's redeliveries and periodic timers, which make their messages
    /// with [`cloneable`](Self::cloneable); anything else becomes a message nobody accepts
    /// (a dead letter, logged), never a panic.
    pub(crate) fn copy(&self) -> AnyMessage {
        self.try_clone()
            .unwrap_or_else(|| AnyMessage::new(Uncopied(self.type_name())))
    }
}

fn clone_value<X: Clone + Send + 'static>(v: &(dyn Any + Send)) -> Box<dyn Any + Send> {
    match v.downcast_ref::<X>() {
        Some(x) => Box::new(x.clone()),
        None => Box::new(Uncopied(short_type_name::<X>())),
    }
}

/// What [`AnyMessage::copy`] makes of a message it cannot copy.
#[derive(Debug)]
struct Uncopied(#[expect(dead_code, reason = "shown by Debug")] &'static str);

impl Message for Uncopied {}

impl Message for AnyMessage {
    #[inline]
    fn priority(&self) -> Priority {
        self.priority
    }
}

impl fmt::Debug for AnyMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnyMessage<{}>", self.type_name())
    }
}

/// `x` as an `M` if `X` and `M` are the same type (no allocation; the check folds away).
#[inline]
pub(crate) fn cast<X: 'static, M: 'static>(x: X) -> Result<M, X> {
    if TypeId::of::<X>() != TypeId::of::<M>() {
        return Err(x);
    }
    let mut slot = Some(x);
    if let Some(m) = (&mut slot as &mut dyn Any).downcast_mut::<Option<M>>()
        && let Some(m) = m.take()
    {
        return Ok(m);
    }
    match slot {
        Some(x) => Err(x),
        None => unreachable!("taken only on success"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_moves_only_between_equal_types() {
        assert_eq!(cast::<u64, u64>(5), Ok(5));
        assert_eq!(cast::<u64, u32>(5), Err(5));
        assert_eq!(cast::<String, String>("a".into()), Ok("a".to_owned()));
    }

    #[test]
    fn copies_keep_type_and_priority() {
        #[derive(Clone, Debug, PartialEq)]
        struct Urgent(u8);
        impl Message for Urgent {
            const PRIORITY: Priority = Priority::High;
        }
        let m = AnyMessage::cloneable(Urgent(3));
        let c = m.copy();
        assert_eq!(c.priority(), Priority::High);
        assert_eq!(c.downcast::<Urgent>().unwrap(), Urgent(3));
        let plain = AnyMessage::new(Urgent(4));
        assert!(plain.try_clone().is_none());
        assert_eq!(plain.copy().type_name(), "Uncopied");
    }
}
