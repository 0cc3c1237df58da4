//! The named registry: agents registered under names, looked up with the type of the
//! messages they accept.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::RwLock;

use qorch_protocol::{AgentId, AgentRef, Message, short_type_name};

/// Why a registration or lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Another agent holds the name.
    #[error("the name {name:?} is taken by agent {holder}")]
    Taken {
        /// The name.
        name: String,
        /// Who holds it.
        holder: AgentId,
    },
    /// Nobody holds the name.
    #[error("no agent is registered as {0:?}")]
    NotFound(String),
    /// The agent registered under the name accepts another message type.
    #[error("{name:?} accepts {actual}, not {expected}")]
    WrongType {
        /// The name.
        name: String,
        /// The type asked for.
        expected: String,
        /// The type its agent accepts.
        actual: String,
    },
    /// The registry shared between processes failed.
    #[error("the shared registry failed: {0}")]
    Remote(String),
}

/// A boxed future, for [`SharedRegistry`]'s methods.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A registry shared by the runtimes of several processes (qorch-net keeps one in NATS).
/// Names are unique across them; types are compared by their full name
/// (`std::any::type_name`), since type ids do not travel between binaries.
pub trait SharedRegistry: Send + Sync + 'static {
    /// Claims `name` for `agent`, which accepts messages of type `type_name`.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Taken`] if another agent holds it, [`RegistryError::Remote`] if the
    /// store failed.
    fn register<'a>(
        &'a self,
        name: &'a str,
        agent: AgentId,
        type_name: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// Frees `name` if `agent` holds it; whether it did.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Remote`] if the store failed.
    fn unregister<'a>(
        &'a self,
        name: &'a str,
        agent: AgentId,
    ) -> BoxFuture<'a, Result<bool, RegistryError>>;

    /// Who holds `name`, and the full name of the message type it accepts.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Remote`] if the store failed.
    fn lookup<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<(AgentId, String)>, RegistryError>>;

    /// Agent `agent` terminated: free `names` if it still holds them, in the background
    /// (called from a node's thread, which must not wait).
    fn forget(&self, agent: AgentId, names: Vec<String>);
}

/// One registered name.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) agent: AgentId,
    pub(crate) type_id: TypeId,
    /// The full type name: the key between processes, where type ids do not travel.
    pub(crate) type_name: &'static str,
}

/// A runtime's registry.
#[derive(Default)]
pub(crate) struct Registry {
    names: RwLock<HashMap<String, Entry>>,
}

impl Registry {
    pub(crate) fn register<X: Message>(
        &self,
        name: &str,
        agent: AgentId,
    ) -> Result<(), RegistryError> {
        let mut names = self
            .names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = names.get(name) {
            if e.agent == agent && e.type_id == TypeId::of::<X>() {
                return Ok(());
            }
            return Err(RegistryError::Taken {
                name: name.to_owned(),
                holder: e.agent,
            });
        }
        names.insert(
            name.to_owned(),
            Entry {
                agent,
                type_id: TypeId::of::<X>(),
                type_name: std::any::type_name::<X>(),
            },
        );
        Ok(())
    }

    pub(crate) fn lookup<X: Message>(&self, name: &str) -> Result<AgentRef<X>, RegistryError> {
        let names = self
            .names
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = names
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        if e.type_id != TypeId::of::<X>() {
            return Err(wrong_type::<X>(name, e.type_name));
        }
        Ok(AgentRef::from_id(e.agent))
    }

    /// Frees `name` if `agent` holds it; whether it did.
    pub(crate) fn unregister(&self, name: &str, agent: AgentId) -> bool {
        let mut names = self
            .names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if names.get(name).is_some_and(|e| e.agent == agent) {
            names.remove(name);
            true
        } else {
            false
        }
    }

    /// Frees every name of an agent that terminated; the names freed.
    pub(crate) fn forget(&self, agent: AgentId) -> Vec<String> {
        {
            let names = self
                .names
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if names.is_empty() || !names.values().any(|e| e.agent == agent) {
                return Vec::new();
            }
        }
        let mut names = self
            .names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let gone: Vec<String> = names
            .iter()
            .filter(|(_, e)| e.agent == agent)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone {
            names.remove(n);
        }
        gone
    }
}

/// The error of a lookup of `name` as an `X` whose agent accepts `actual`.
pub(crate) fn wrong_type<X>(name: &str, actual: &str) -> RegistryError {
    RegistryError::WrongType {
        name: name.to_owned(),
        expected: short_type_name::<X>().to_owned(),
        actual: actual.rsplit("::").next().unwrap_or(actual).to_owned(),
    }
}
