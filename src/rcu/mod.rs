//! Quiescence without stopping: RCU grace periods at poll boundaries
//! ([`Handle::synchronize`](crate::Handle::synchronize),
//! [`Handle::defer`](crate::Handle::defer)) and the read-mostly cell built
//! on them ([`Rcu`](crate::Rcu)).
//!
//! - [`grace`]: the grace-period protocol (who writes what, who wakes whom);
//! - [`synchronize`]: the future and its blocking form;
//! - [`defer`]: batched drops after a grace period (`call_rcu`);
//! - [`cell`]: the `Rcu<T>` cell;
//! - [`outside`]: counting readers off the workers (SRCU's two counters);
//! - [`read_section`]: the thread-local depth that keeps stops and
//!   quiescent states out of read closures.

pub(crate) mod cell;
pub(crate) mod defer;
pub(crate) mod grace;
pub(crate) mod outside;
pub(crate) mod read_section;
pub(crate) mod synchronize;
