//! The controller (`gpu-slicer run`): kube-rs glue around the pure stages. Watches fold
//! into indexes, one batched loop plans, renders and hands the difference to the one
//! writer, which only writes while this replica holds the leader Lease.

pub mod elector;
pub mod error;
pub mod events;
pub mod metrics;
pub mod oneshot;
pub mod prices;
pub mod repack;
pub mod run;
pub mod server;
pub mod watch;
pub mod webhook;
pub mod writer;
