//! The flags that say how a `gpu-share` is read and what shared GPUs deliver
//! (`model::slice::ShareModel`, `Efficiency`): one definition for `plan`, `render`, `run`
//! and `simulate`, so the replay reads shares as the controller would be told to.
//! `admit` takes `--share-model` alone (the efficiencies only set node labels).

use clap::{Args, ValueEnum};

use crate::config::parse_efficiency;
use crate::model::slice::{Efficiency, ShareModel};

/// `--share-model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ShareModelArg {
    /// A share of the GPU's time: R ≤ 1 / share (the contract's reading).
    Time,
    /// A share of what the GPU does alone: R ≤ efficiency / share.
    Throughput,
}

impl ShareModelArg {
    pub fn model(self) -> ShareModel {
        match self {
            ShareModelArg::Time => ShareModel::Time,
            ShareModelArg::Throughput => ShareModel::Throughput,
        }
    }
}

/// How shares are read and what shared GPUs deliver.
#[derive(Args, Debug, Clone)]
pub(super) struct ShareFlags {
    /// How a pod's gpu-slicer.io/gpu-share is read: time (a share of the GPU's time,
    /// R ≤ 1/share) or throughput (a share of what the GPU does alone, switching loss
    /// counted: R ≤ efficiency/share). A NodePool's gpu-slicer.io/share-model adds its
    /// own reading in its pool.
    #[arg(long, value_enum, default_value = "time")]
    pub share_model: ShareModelArg,
    /// What all busy pods on one time-sliced GPU get together, of the GPU alone, in
    /// pools without gpu-slicer.io/time-slicing-efficiency (0.73 measured on an H200).
    #[arg(long, value_name = "FRACTION", value_parser = time_slicing_efficiency)]
    pub time_slicing_efficiency: Option<u32>,
    /// The same under MPS, in pools without gpu-slicer.io/mps-efficiency (1.01 measured
    /// on an H100 with the device plugin's thread limit, 1.10 without; up to 2).
    #[arg(long, value_name = "FRACTION", value_parser = mps_efficiency)]
    pub mps_efficiency: Option<u32>,
}

impl ShareFlags {
    pub fn model(&self) -> ShareModel {
        self.share_model.model()
    }

    /// The efficiencies, the measured ones where no flag says otherwise.
    pub fn efficiency(&self) -> Efficiency {
        Efficiency {
            time_slicing_milli: self
                .time_slicing_efficiency
                .unwrap_or(Efficiency::MEASURED.time_slicing_milli),
            mps_milli: self
                .mps_efficiency
                .unwrap_or(Efficiency::MEASURED.mps_milli),
        }
    }
}

/// clap's value parsers return the message as a `String` (its convention).
fn time_slicing_efficiency(s: &str) -> Result<u32, String> {
    parse_efficiency(s, "--time-slicing-efficiency".into(), 1000).map_err(|e| e.message)
}

fn mps_efficiency(s: &str) -> Result<u32, String> {
    parse_efficiency(s, "--mps-efficiency".into(), 2000).map_err(|e| e.message)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        share: ShareFlags,
    }

    fn parse(args: &[&str]) -> Result<ShareFlags, String> {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .map(|c| c.share)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_time_and_the_measurement() {
        let f = parse(&[]).expect("no flags");
        assert_eq!(f.model(), ShareModel::Time);
        assert_eq!(f.efficiency(), Efficiency::MEASURED);
    }

    #[test]
    fn values_are_read_in_thousandths() {
        let f = parse(&[
            "--share-model",
            "throughput",
            "--time-slicing-efficiency",
            "0.6",
            "--mps-efficiency",
            "1250m",
        ])
        .expect("valid");
        assert_eq!(f.model(), ShareModel::Throughput);
        assert_eq!(
            f.efficiency(),
            Efficiency {
                time_slicing_milli: 600,
                mps_milli: 1250
            }
        );
    }

    #[test]
    fn bad_values_name_the_flag_and_the_bound() {
        let e = parse(&["--time-slicing-efficiency", "1.2"]).expect_err("above 1");
        assert!(
            e.contains("--time-slicing-efficiency") && e.contains("at most 1"),
            "{e}"
        );
        let e = parse(&["--mps-efficiency", "2.5"]).expect_err("above 2");
        assert!(e.contains("at most 2"), "{e}");
        let e = parse(&["--mps-efficiency", "0"]).expect_err("zero");
        assert!(e.contains("greater than 0"), "{e}");
        let e = parse(&["--share-model", "speed"]).expect_err("unknown model");
        assert!(e.contains("time") && e.contains("throughput"), "{e}");
    }
}
