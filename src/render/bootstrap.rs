//! Node bootstrap that preloads time-slicing or MPS, so a node comes up already sliced.
//!
//! - **Bottlerocket**: userData TOML `settings.kubelet-device-plugins.nvidia`. Bottlerocket
//!   runs the NVIDIA device plugin itself and its defaults rename the resource
//!   (`rename-by-default = true` → `nvidia.com/gpu.shared`), so every setting is written
//!   explicitly. Karpenter merges this TOML with the settings it generates.
//! - **AL2023 / AL2**: the device plugin DaemonSet picks the profile from the node label
//!   `nvidia.com/device-plugin.config`, which comes from the NodePool template (never from
//!   userData: Karpenter overwrites labels and taints given there). The userData is a MIME
//!   multi-part document with one shell part, which Karpenter runs before its own bootstrap
//!   part: it records the profile on the host and puts the GPUs in the `Default` compute
//!   mode that time-slicing needs.

use crate::model::slice::{NodeSharing, Slice};

/// The MIME boundary of the AL2/AL2023 userData (the one Karpenter's documentation uses).
const BOUNDARY: &str = "//";

/// Bottlerocket settings for nodes with `slice` (R = 1: no sharing). MPS is
/// `device-sharing-strategy = "mps"` with `mps.replicas` and `mps.rename-by-default`
/// (Bottlerocket has no `fail-requests-greater-than-one` for MPS: the device plugin always
/// refuses such requests under MPS).
pub fn bottlerocket_toml(slice: &Slice, fail_requests_greater_than_one: bool) -> String {
    let replicas = slice.replicas;
    match slice.sharing {
        NodeSharing::Mps if replicas > 1 => format!(
            "[settings.kubelet-device-plugins.nvidia]\n\
             device-sharing-strategy = \"mps\"\n\
             \n\
             [settings.kubelet-device-plugins.nvidia.mps]\n\
             replicas = {replicas}\n\
             rename-by-default = false\n"
        ),
        _ if replicas <= 1 => "[settings.kubelet-device-plugins.nvidia]\n\
                               device-sharing-strategy = \"none\"\n"
            .to_string(),
        _ => format!(
            "[settings.kubelet-device-plugins.nvidia]\n\
             device-sharing-strategy = \"time-slicing\"\n\
             \n\
             [settings.kubelet-device-plugins.nvidia.time-slicing]\n\
             replicas = {replicas}\n\
             rename-by-default = false\n\
             fail-requests-greater-than-one = {fail_requests_greater_than_one}\n"
        ),
    }
}

/// A user's Bottlerocket userData that already configures `kubelet-device-plugins`: it
/// and gpu-slicer's settings would disagree ([`merge_bottlerocket`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "already configures settings.kubelet-device-plugins; gpu-slicer writes those \
     settings per profile, so remove them from this EC2NodeClass"
)]
pub struct DevicePluginsConfigured;

/// Appends gpu-slicer's Bottlerocket settings to a user's userData TOML. A userData that
/// already configures `kubelet-device-plugins` is refused: the two would disagree.
pub fn merge_bottlerocket(
    user: Option<&str>,
    slice: &Slice,
    fail_requests_greater_than_one: bool,
) -> Result<String, DevicePluginsConfigured> {
    let ours = bottlerocket_toml(slice, fail_requests_greater_than_one);
    match user.map(str::trim_end).filter(|u| !u.trim().is_empty()) {
        None => Ok(ours),
        Some(u) if u.contains("kubelet-device-plugins") => Err(DevicePluginsConfigured),
        Some(u) => Ok(format!(
            "{u}\n\n# gpu-slicer: {} profile\n{ours}",
            slice.profile()
        )),
    }
}

/// The first Bottlerocket release whose settings can express MPS
/// (`settings.kubelet-device-plugins.nvidia.mps`; bottlerocket-settings-models 0.20.0,
/// 2026-01-14, documented from Bottlerocket 1.54.x).
pub const BOTTLEROCKET_MPS_SINCE: (u32, u32) = (1, 54);

/// Whether a Bottlerocket AMI alias version (`latest`, `v1.54.0`, `1.54.1`) can express
/// MPS. `None`: the version is not one an alias can name.
pub fn bottlerocket_has_mps(version: &str) -> Option<bool> {
    if version == "latest" {
        return Some(true);
    }
    let v = version.strip_prefix('v').unwrap_or(version);
    let mut parts = v.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    Some((major, minor) >= BOTTLEROCKET_MPS_SINCE)
}

/// The shell part that runs before Karpenter's bootstrap on AL2 and AL2023.
pub fn shell_part(slice: &Slice) -> String {
    let profile = slice.profile();
    let replicas = slice.replicas;
    // Time-slicing needs the `Default` compute mode; under MPS the device plugin's MPS
    // control daemon puts the GPUs in `EXCLUSIVE_PROCESS` itself.
    let compute_mode = if slice.sharing == NodeSharing::Mps {
        ""
    } else {
        "\x20 nvidia-smi --compute-mode=DEFAULT || true\n"
    };
    let what = if slice.sharing == NodeSharing::Mps {
        format!("MPS profile {profile} ({replicas} clients per GPU)")
    } else {
        format!("time-slicing profile {profile} ({replicas} replicas per GPU)")
    };
    format!(
        "#!/bin/bash\n\
         # gpu-slicer: {what}.\n\
         # The device plugin reads the profile from the node label nvidia.com/device-plugin.config,\n\
         # set by the NodePool template; this part only prepares the host.\n\
         set -u\n\
         mkdir -p /etc/gpu-slicer\n\
         printf 'profile=%s\\nreplicas=%s\\n' '{profile}' '{replicas}' > /etc/gpu-slicer/profile\n\
         if command -v nvidia-smi >/dev/null 2>&1; then\n\
         \x20 nvidia-smi --persistence-mode=1 || true\n\
         {compute_mode}\
         fi\n"
    )
}

/// AL2 and AL2023 userData: a MIME multi-part document holding [`shell_part`].
pub fn mime_userdata(slice: &Slice) -> String {
    format!(
        "MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\n\
         \n\
         --{BOUNDARY}\n\
         Content-Type: text/x-shellscript; charset=\"us-ascii\"\n\
         \n\
         {}\
         --{BOUNDARY}--\n",
        shell_part(slice)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bottlerocket_is_explicit() {
        let t = bottlerocket_toml(&Slice::new(16384, 4), false);
        for line in [
            "device-sharing-strategy = \"time-slicing\"",
            "replicas = 4",
            "rename-by-default = false",
            "fail-requests-greater-than-one = false",
        ] {
            assert!(t.contains(line), "missing {line:?} in\n{t}");
        }
        assert!(
            bottlerocket_toml(&Slice::new(16384, 4), true)
                .contains("fail-requests-greater-than-one = true")
        );
        let unshared = bottlerocket_toml(&Slice::new(16384, 1), false);
        assert!(unshared.contains("\"none\""));
        assert!(!unshared.contains("replicas"));
    }

    #[test]
    fn bottlerocket_merge() {
        let user = "[settings.kubernetes]\nmax-pods = 110\n";
        let m = merge_bottlerocket(Some(user), &Slice::new(16384, 2), false).expect("merges");
        assert!(m.starts_with(user.trim_end()));
        assert!(m.contains("replicas = 2"));
        assert_eq!(
            merge_bottlerocket(None, &Slice::new(16384, 3), false).expect("no user data"),
            bottlerocket_toml(&Slice::new(16384, 3), false)
        );
        let clash =
            "[settings.kubelet-device-plugins.nvidia]\ndevice-sharing-strategy = \"none\"\n";
        let e = merge_bottlerocket(Some(clash), &Slice::new(16384, 2), false).expect_err("clash");
        assert!(e.to_string().contains("kubelet-device-plugins"), "{e}");
        assert_eq!(
            e.to_string(),
            "already configures settings.kubelet-device-plugins; gpu-slicer writes those \
             settings per profile, so remove them from this EC2NodeClass"
        );
    }

    #[test]
    fn mps_profiles() {
        let mps = Slice::new(16384, 4).under_mps(crate::model::slice::Efficiency::MEASURED);
        let t = bottlerocket_toml(&mps, true);
        for line in [
            "device-sharing-strategy = \"mps\"",
            "[settings.kubelet-device-plugins.nvidia.mps]",
            "replicas = 4",
            "rename-by-default = false",
        ] {
            assert!(t.contains(line), "missing {line:?} in\n{t}");
        }
        assert!(
            !t.contains("time-slicing") && !t.contains("fail-requests"),
            "{t}"
        );
        let u = mime_userdata(&mps);
        assert!(u.contains("'mps-r4' '4'"), "{u}");
        assert!(
            !u.contains("--compute-mode"),
            "MPS sets its own compute mode:\n{u}"
        );
        assert!(mime_userdata(&Slice::new(16384, 4)).contains("--compute-mode=DEFAULT"));
        for (v, want) in [
            ("latest", Some(true)),
            ("v1.54.0", Some(true)),
            ("1.60.2", Some(true)),
            ("v1.53.9", Some(false)),
            ("v1.20.0", Some(false)),
            ("vx", None),
        ] {
            assert_eq!(bottlerocket_has_mps(v), want, "{v}");
        }
    }

    #[test]
    fn mime_has_one_shell_part_and_no_labels() {
        let u = mime_userdata(&Slice::new(16384, 4));
        assert!(u.starts_with("MIME-Version: 1.0\n"));
        assert_eq!(u.matches("--//\n").count(), 1);
        assert!(u.ends_with("--//--\n"));
        assert!(u.contains("Content-Type: text/x-shellscript"));
        assert!(u.contains("profile=%s"));
        assert!(u.contains("'ts-r4' '4'"));
        // Karpenter overwrites labels and taints from userData: none are set there.
        assert!(!u.contains("--node-labels"));
        assert!(!u.contains("register-with-taints"));
    }
}
