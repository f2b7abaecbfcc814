//! busbar's distributed mode (crate docs to come).

mod broker;
mod dead;
mod entry;
mod envelope;
mod error;
mod link;
mod publisher;
mod script;
mod settle;
mod worker;

#[doc(hidden)]
pub mod testsupport;

pub use crate::broker::{
    Broker, QueueStats, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT, DEFAULT_NAMESPACE, DEFAULT_RESULT_TTL,
};
pub use crate::dead::DeadLetter;
pub use crate::error::{BrokerError, PublishError};
pub use crate::publisher::{Publisher, PublisherStats};
pub use crate::worker::{Worker, WorkerBuilder, WorkerStats, DEFAULT_VISIBILITY_TIMEOUT};
