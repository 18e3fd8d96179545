//! The `--repack-*` flags `run` and `simulate` share: one definition, one check, so the
//! replay re-packs exactly as the controller would be told to.

use std::time::Duration;

use clap::Args;

use super::{Failure, parse_duration, usage};

/// Re-packing (defragmentation) flags.
#[derive(Args, Debug, Clone)]
pub(super) struct RepackFlags {
    /// How often gpu-slicer looks for nodes to re-pack onto cheaper ones; 0s turns
    /// re-packing off.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub repack_interval: Duration,
    /// A repack move must save at least this fraction of the replaced nodes' cost (0..1).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.05)]
    pub repack_min_saving: f64,
    /// Pods bound for less than this pin their node (repack never moves them).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub repack_min_pod_age: Duration,
    /// Most nodes repacking replaces in any hour.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub repack_max_nodes_per_hour: u32,
}

impl RepackFlags {
    /// The interval, or None when re-packing is off.
    pub fn interval(&self) -> Option<Duration> {
        (!self.repack_interval.is_zero()).then_some(self.repack_interval)
    }

    /// Checks every flag; a bad one is a usage error naming it.
    pub fn check(&self) -> Result<(), Failure> {
        if !(self.repack_min_saving.is_finite() && (0.0..=1.0).contains(&self.repack_min_saving)) {
            return Err(usage(format!(
                "--repack-min-saving must be a fraction from 0 to 1 (0.05 = 5 %), not {}",
                self.repack_min_saving
            )));
        }
        if self.repack_max_nodes_per_hour == 0 {
            return Err(usage(
                "--repack-max-nodes-per-hour must be at least 1 (--repack-interval 0s turns \
                 repacking off)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        repack: RepackFlags,
    }

    fn parse(args: &[&str]) -> RepackFlags {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .expect("parses")
            .repack
    }

    #[test]
    fn defaults_pass_and_each_bad_flag_is_named() {
        let d = parse(&[]);
        assert!(d.check().is_ok());
        assert_eq!(d.interval(), Some(Duration::from_secs(3600)));
        assert_eq!(parse(&["--repack-interval", "0s"]).interval(), None);
        for (args, flag) in [
            (["--repack-min-saving", "1.5"], "--repack-min-saving"),
            (["--repack-min-saving", "NaN"], "--repack-min-saving"),
            (
                ["--repack-max-nodes-per-hour", "0"],
                "--repack-max-nodes-per-hour",
            ),
        ] {
            let e = parse(&args).check().expect_err("refused");
            assert_eq!(e.code, 2);
            assert!(e.message.starts_with(flag), "{}", e.message);
        }
    }
}
