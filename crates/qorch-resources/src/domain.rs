//! Resource kinds, amounts, pools, requests and grants.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies a resource kind within a [`ResourceKinds`] registry (its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KindId(pub u16);

impl KindId {
    /// The index into a [`ResourceVector`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// The resource kinds of a deployment, by name: `cpu`, `memory`, `bandwidth`, and any
/// user-defined ones. A [`ResourceVector`] has one amount per kind, in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceKinds {
    names: Vec<String>,
}

impl ResourceKinds {
    /// The three standard kinds: `cpu`, `memory`, `bandwidth`.
    pub fn standard() -> Self {
        ResourceKinds {
            names: vec!["cpu".into(), "memory".into(), "bandwidth".into()],
        }
    }

    /// Kinds from names (duplicates are kept once, in first-seen order).
    pub fn from_names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        let mut k = ResourceKinds { names: Vec::new() };
        for n in names {
            k.add(n);
        }
        k
    }

    /// Adds a kind (or returns the existing one of that name).
    pub fn add(&mut self, name: impl Into<String>) -> KindId {
        let name = name.into();
        if let Some(id) = self.get(&name) {
            return id;
        }
        self.names.push(name);
        KindId((self.names.len() - 1) as u16)
    }

    /// The kind of a name.
    pub fn get(&self, name: &str) -> Option<KindId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| KindId(i as u16))
    }

    /// The name of a kind.
    pub fn name(&self, kind: KindId) -> Option<&str> {
        self.names.get(kind.index()).map(String::as_str)
    }

    /// Number of kinds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no kinds.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// All kinds with their names.
    pub fn iter(&self) -> impl Iterator<Item = (KindId, &str)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (KindId(i as u16), n.as_str()))
    }
}

/// Amounts of every resource kind (one `f64` per kind of a [`ResourceKinds`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceVector(Vec<f64>);

impl ResourceVector {
    /// All zero, for `kinds` kinds.
    pub fn zeros(kinds: usize) -> Self {
        ResourceVector(vec![0.0; kinds])
    }

    /// From amounts in kind order.
    pub fn from_amounts(amounts: Vec<f64>) -> Self {
        ResourceVector(amounts)
    }

    /// The amounts in kind order.
    pub fn amounts(&self) -> &[f64] {
        &self.0
    }

    /// The amounts in kind order, to change in place.
    pub fn amounts_mut(&mut self) -> &mut [f64] {
        &mut self.0
    }

    /// Number of kinds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has no kinds.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The amount of one kind (0 for a kind beyond the vector).
    pub fn get(&self, kind: KindId) -> f64 {
        self.0.get(kind.index()).copied().unwrap_or(0.0)
    }

    /// Sets the amount of one kind, growing the vector if needed.
    pub fn set(&mut self, kind: KindId, amount: f64) {
        if kind.index() >= self.0.len() {
            self.0.resize(kind.index() + 1, 0.0);
        }
        self.0[kind.index()] = amount;
    }

    /// Adds `other` element-wise (growing to the longer length).
    pub fn add_assign(&mut self, other: &ResourceVector) {
        if other.0.len() > self.0.len() {
            self.0.resize(other.0.len(), 0.0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    /// Subtracts `other` element-wise (growing to the longer length).
    pub fn sub_assign(&mut self, other: &ResourceVector) {
        if other.0.len() > self.0.len() {
            self.0.resize(other.0.len(), 0.0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a -= b;
        }
    }

    /// Multiplies every amount by `factor`.
    #[must_use]
    pub fn scaled(&self, factor: f64) -> ResourceVector {
        ResourceVector(self.0.iter().map(|a| a * factor).collect())
    }

    /// Whether every amount is at most the matching one of `capacity` (plus `tolerance`).
    pub fn fits_within(&self, capacity: &ResourceVector, tolerance: f64) -> bool {
        self.0
            .iter()
            .enumerate()
            .all(|(i, &a)| a <= capacity.0.get(i).copied().unwrap_or(0.0) + tolerance)
    }

    /// Whether every amount is finite and non-negative.
    pub fn is_valid(&self) -> bool {
        self.0.iter().all(|a| a.is_finite() && *a >= 0.0)
    }

    /// Whether every amount is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|a| *a == 0.0)
    }

    /// The sum of all amounts (a scalar size, when kinds share a unit or are normalized).
    pub fn total(&self) -> f64 {
        self.0.iter().sum()
    }

    /// The element-wise maximum of `self` and `other` (growing to the longer length).
    #[must_use]
    pub fn max(&self, other: &ResourceVector) -> ResourceVector {
        let n = self.0.len().max(other.0.len());
        ResourceVector(
            (0..n)
                .map(|i| self.get(KindId(i as u16)).max(other.get(KindId(i as u16))))
                .collect(),
        )
    }

    /// The element-wise minimum of `self` and `other` (growing to the longer length; a
    /// missing amount counts as zero).
    #[must_use]
    pub fn min(&self, other: &ResourceVector) -> ResourceVector {
        let n = self.0.len().max(other.0.len());
        ResourceVector(
            (0..n)
                .map(|i| self.get(KindId(i as u16)).min(other.get(KindId(i as u16))))
                .collect(),
        )
    }

    /// `self - other`, clamped at zero element-wise.
    #[must_use]
    pub fn saturating_sub(&self, other: &ResourceVector) -> ResourceVector {
        let n = self.0.len().max(other.0.len());
        ResourceVector(
            (0..n)
                .map(|i| (self.get(KindId(i as u16)) - other.get(KindId(i as u16))).max(0.0))
                .collect(),
        )
    }

    /// The vector padded with zeros (or truncated) to exactly `kinds` amounts.
    #[must_use]
    pub fn resized(&self, kinds: usize) -> ResourceVector {
        let mut v = self.0.clone();
        v.resize(kinds, 0.0);
        ResourceVector(v)
    }

    /// The largest ratio `self[k] / capacity[k]` over the kinds with a positive amount: how
    /// full `capacity` would be with `self` alone (`f64::INFINITY` if some kind has an amount
    /// but no capacity, 0 for the zero vector).
    pub fn max_share_of(&self, capacity: &ResourceVector) -> f64 {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, a)| **a > 0.0)
            .map(|(i, &a)| {
                let c = capacity.0.get(i).copied().unwrap_or(0.0);
                if c > 0.0 { a / c } else { f64::INFINITY }
            })
            .fold(0.0, f64::max)
    }
}

impl From<Vec<f64>> for ResourceVector {
    fn from(amounts: Vec<f64>) -> Self {
        ResourceVector(amounts)
    }
}

/// Identifies a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PoolId(pub u32);

impl PoolId {
    /// The index into dense tables.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pool/{}", self.0)
    }
}

/// What a pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// A compute node.
    #[default]
    Node,
    /// A device (accelerator, storage).
    Device,
    /// A network link.
    Link,
}

/// A pool of resources agents can be placed on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Its id.
    pub id: PoolId,
    /// A human-readable name.
    pub name: String,
    /// What it is.
    pub kind: PoolKind,
    /// How much of each resource kind it holds.
    pub capacity: ResourceVector,
}

impl Pool {
    /// A pool of kind [`PoolKind::Node`].
    pub fn node(id: PoolId, name: impl Into<String>, capacity: ResourceVector) -> Self {
        Pool {
            id,
            name: name.into(),
            kind: PoolKind::Node,
            capacity,
        }
    }
}

/// Which pools a request may use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolFilter {
    /// Any pool.
    #[default]
    Any,
    /// Only these pools.
    Only(Vec<PoolId>),
    /// Any pool but these.
    Except(Vec<PoolId>),
}

impl PoolFilter {
    /// Whether the filter allows `pool`.
    pub fn allows(&self, pool: PoolId) -> bool {
        match self {
            PoolFilter::Any => true,
            PoolFilter::Only(ps) => ps.contains(&pool),
            PoolFilter::Except(ps) => !ps.contains(&pool),
        }
    }
}

/// What an agent asks for: at least `min` to be useful, ideally `desired`, with a priority
/// `weight` (its served demand counts `weight` times), on the pools `pools` allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRequest {
    /// The least useful amount (the grant is either at least this or nothing).
    pub min: ResourceVector,
    /// The amount wanted.
    pub desired: ResourceVector,
    /// Priority weight, positive.
    pub weight: f64,
    /// Pools it may use.
    pub pools: PoolFilter,
}

/// Why a request is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// An amount is negative, NaN or infinite.
    #[error("request amounts must be finite and non-negative (got {0:?})")]
    InvalidAmount(Vec<f64>),
    /// The minimum exceeds the desired amount for some kind.
    #[error("minimum {min:?} exceeds desired {desired:?}")]
    MinAboveDesired {
        /// The minimum.
        min: Vec<f64>,
        /// The desired amount.
        desired: Vec<f64>,
    },
    /// The weight is not a positive finite number.
    #[error("request weight must be positive and finite, got {0}")]
    InvalidWeight(f64),
}

impl ResourceRequest {
    /// A validated request.
    ///
    /// # Errors
    ///
    /// A [`RequestError`] if an amount is invalid, `min` exceeds `desired`, or the weight is
    /// not positive.
    pub fn new(
        min: ResourceVector,
        desired: ResourceVector,
        weight: f64,
        pools: PoolFilter,
    ) -> Result<Self, RequestError> {
        let r = ResourceRequest {
            min,
            desired,
            weight,
            pools,
        };
        r.validate()?;
        Ok(r)
    }

    /// A request for exactly `amount` (minimum = desired), weight 1, any pool.
    pub fn exact(amount: ResourceVector) -> Self {
        ResourceRequest {
            min: amount.clone(),
            desired: amount,
            weight: 1.0,
            pools: PoolFilter::Any,
        }
    }

    /// Checks the request.
    ///
    /// # Errors
    ///
    /// As [`ResourceRequest::new`].
    pub fn validate(&self) -> Result<(), RequestError> {
        for v in [&self.min, &self.desired] {
            if !v.is_valid() {
                return Err(RequestError::InvalidAmount(v.amounts().to_vec()));
            }
        }
        if !self.min.fits_within(&self.desired, 0.0) {
            return Err(RequestError::MinAboveDesired {
                min: self.min.amounts().to_vec(),
                desired: self.desired.amounts().to_vec(),
            });
        }
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(RequestError::InvalidWeight(self.weight));
        }
        Ok(())
    }
}

/// What an agent was given: an amount on a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// The pool.
    pub pool: PoolId,
    /// The amounts granted.
    pub amount: ResourceVector,
}

impl Grant {
    /// A grant of `amount` on `pool`.
    pub fn new(pool: PoolId, amount: ResourceVector) -> Self {
        Grant { pool, amount }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_vectors() {
        let mut k = ResourceKinds::standard();
        let gpu = k.add("gpu");
        assert_eq!(k.add("gpu"), gpu);
        assert_eq!(k.len(), 4);
        assert_eq!(k.name(gpu), Some("gpu"));
        let mut v = ResourceVector::zeros(2);
        v.set(gpu, 3.0);
        assert_eq!(v.len(), 4);
        let mut w = v.clone();
        w.add_assign(&v);
        assert_eq!(w.get(gpu), 6.0);
        assert!(v.fits_within(&w, 0.0) && !w.fits_within(&v, 0.0));
    }

    #[test]
    fn requests_are_validated() {
        let one = ResourceVector::from_amounts(vec![1.0]);
        let two = ResourceVector::from_amounts(vec![2.0]);
        assert!(ResourceRequest::new(one.clone(), two.clone(), 1.0, PoolFilter::Any).is_ok());
        assert!(matches!(
            ResourceRequest::new(two.clone(), one.clone(), 1.0, PoolFilter::Any),
            Err(RequestError::MinAboveDesired { .. })
        ));
        assert!(matches!(
            ResourceRequest::new(one.clone(), one.clone(), 0.0, PoolFilter::Any),
            Err(RequestError::InvalidWeight(_))
        ));
        let bad = ResourceVector::from_amounts(vec![f64::NAN]);
        assert!(ResourceRequest::new(bad.clone(), bad, 1.0, PoolFilter::Any).is_err());
        assert!(PoolFilter::Except(vec![PoolId(1)]).allows(PoolId(2)));
        assert!(!PoolFilter::Only(vec![PoolId(1)]).allows(PoolId(2)));
    }
}
