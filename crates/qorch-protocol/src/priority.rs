//! Priority classes and the [`Message`] trait through which a type declares its default class.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The priority class of a message.
///
/// Classes are ordered: `Control > High > Normal > Low`. A mailbox keeps one lane per class and
/// always serves the highest non-empty lane first, subject to its starvation guard.
///
/// * `Control`: protocol traffic that must never wait behind data (stop, status, acknowledgements).
/// * `High`: time-critical data, such as new allocations sent down the tree.
/// * `Normal`: ordinary agent traffic and demand reports (the default).
/// * `Low`: bulk or background traffic.
///
/// # Examples
///
/// ```
/// use qorch_protocol::Priority;
///
/// assert!(Priority::Control > Priority::High);
/// assert!(Priority::High > Priority::Normal);
/// assert!(Priority::Normal > Priority::Low);
/// assert_eq!("high".parse::<Priority>(), Ok(Priority::High));
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, PartialOrd, Ord,
)]
#[repr(u8)]
pub enum Priority {
    /// Bulk or background traffic, served last.
    Low = 0,
    /// Ordinary traffic (the default class).
    #[default]
    Normal = 1,
    /// Time-critical data.
    High = 2,
    /// Protocol control traffic; never waits behind data.
    Control = 3,
}

impl Priority {
    /// Number of priority classes (and of lanes in a mailbox).
    pub const COUNT: usize = 4;

    /// All classes from the highest to the lowest, the order in which a mailbox serves lanes.
    pub const DESCENDING: [Priority; Self::COUNT] = [
        Priority::Control,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];

    /// The lane index of this class: 0 for `Control` up to 3 for `Low`.
    ///
    /// Lane 0 is served first.
    #[inline]
    pub const fn lane(self) -> usize {
        Self::COUNT - 1 - self as usize
    }

    /// The class served by lane `index` (the inverse of [`Priority::lane`]).
    ///
    /// Returns `None` when `index >= Priority::COUNT`.
    pub const fn from_lane(index: usize) -> Option<Priority> {
        if index < Self::COUNT {
            Some(Self::DESCENDING[index])
        } else {
            None
        }
    }

    /// The lower-case name of the class, as accepted by [`FromStr`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Control => "control",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when parsing an unknown priority name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority `{0}`: expected one of control, high, normal, low")]
pub struct ParsePriorityError(String);

impl FromStr for Priority {
    type Err = ParsePriorityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "control" => Ok(Priority::Control),
            "high" => Ok(Priority::High),
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            _ => Err(ParsePriorityError(s.to_owned())),
        }
    }
}

/// A message that can travel through a [`PriorityMailbox`](crate::PriorityMailbox).
///
/// A type declares its default class with [`Message::PRIORITY`] (`Normal` unless overridden);
/// an enum can pick a class per variant by overriding [`Message::priority`]. A sender may still
/// override the class of one send with `try_send_with` / `send_with`.
///
/// # Examples
///
/// ```
/// use qorch_protocol::{Message, Priority};
///
/// struct Heartbeat;
/// impl Message for Heartbeat {
///     const PRIORITY: Priority = Priority::Control;
/// }
///
/// enum Work { Urgent(u32), Batch(Vec<u32>) }
/// impl Message for Work {
///     fn priority(&self) -> Priority {
///         match self {
///             Work::Urgent(_) => Priority::High,
///             Work::Batch(_) => Priority::Low,
///         }
///     }
/// }
///
/// assert_eq!(Heartbeat.priority(), Priority::Control);
/// assert_eq!(Work::Batch(vec![]).priority(), Priority::Low);
/// ```
pub trait Message: Send + 'static {
    /// The default class of every value of this type.
    const PRIORITY: Priority = Priority::Normal;

    /// The class of this particular value; defaults to [`Message::PRIORITY`].
    #[inline]
    fn priority(&self) -> Priority {
        Self::PRIORITY
    }
}

macro_rules! normal_messages {
    ($($t:ty),* $(,)?) => { $(impl Message for $t {})* };
}

// Plain values are convenient in tests, benchmarks and simple behaviours.
normal_messages!(
    (),
    bool,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    char,
    String,
    &'static str,
    std::time::Instant,
    std::time::SystemTime,
    std::time::Duration,
);

impl<T: Send + 'static> Message for Vec<T> {}
impl<T: Send + ?Sized + 'static> Message for Box<T> {}
impl<T: Send + 'static> Message for Option<T> {}
impl<T: Send + 'static, const N: usize> Message for [T; N] {}

macro_rules! tuple_messages {
    ($(($($t:ident),+)),* $(,)?) => { $(impl<$($t: Send + 'static),+> Message for ($($t,)+) {})* };
}

tuple_messages!((A, B), (A, B, C), (A, B, C, D));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_round_trip_and_order() {
        for (i, p) in Priority::DESCENDING.iter().enumerate() {
            assert_eq!(p.lane(), i);
            assert_eq!(Priority::from_lane(i), Some(*p));
            assert_eq!(p.as_str().parse::<Priority>(), Ok(*p));
        }
        assert_eq!(Priority::from_lane(4), None);
        assert!(Priority::DESCENDING.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn parse_rejects_unknown_names() {
        let err = "urgent".parse::<Priority>().unwrap_err();
        assert!(err.to_string().contains("urgent"));
        assert_eq!("HIGH".parse::<Priority>(), Ok(Priority::High));
    }
}
