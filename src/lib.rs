//! gpu-slicer: replica-aware, GPU-memory-safe, cost-minimising capacity planning for
//! NVIDIA time-slicing with Karpenter.
//!
//! The pure core (`model`, `catalog`, `demand`, `config`, `planner`) does no I/O: it
//! takes text and values and returns values. The CLI (feature `cli`) reads files and
//! prints.
//!
//! Repetition: the pairs a clone finder reports outside `karpenter/generated` are alike in
//! shape only (struct literals with the same fields, the `as_str` and `Display` of closed
//! label sets, `derive` blocks, table-driven test cases), except three that the modules
//! concerned explain (`planner::fluid`, `planner` tests, `catalog::live`). They are left as
//! plain code; folding them would need macros that hide the fields being set.

pub mod admission;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(any(feature = "aws", feature = "controller"))]
pub mod backoff;
pub mod catalog;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
#[cfg(feature = "controller")]
pub mod controller;
pub mod demand;
pub mod guard;
pub mod karpenter;
pub mod model;
pub mod planner;
pub mod reconcile;
pub mod render;
pub mod sim;
pub mod table;
pub mod trace;
