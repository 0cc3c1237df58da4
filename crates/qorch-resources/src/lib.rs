//! The resource domain of qorch: what there is to allocate, what agents ask for, and what they
//! were given. A plain library (no actors): the scheduler turns these types into QUBOs, the
//! runtime carries them between actors.
//!
//! ```
//! use qorch_resources::{PoolFilter, ResourceKinds, ResourceRequest, ResourceVector};
//!
//! let kinds = ResourceKinds::standard(); // cpu, memory, bandwidth
//! let cpu = kinds.get("cpu").unwrap();
//! let mut want = ResourceVector::zeros(kinds.len());
//! want.set(cpu, 2.0);
//! let req = ResourceRequest::new(want.clone(), want, 1.0, PoolFilter::Any).unwrap();
//! assert_eq!(req.desired.get(cpu), 2.0);
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod domain;

pub use domain::{
    Grant, KindId, Pool, PoolFilter, PoolId, PoolKind, RequestError, ResourceKinds,
    ResourceRequest, ResourceVector,
};
pub use qorch_protocol::{AgentId, ClusterId};
