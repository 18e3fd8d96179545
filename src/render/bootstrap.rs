//! Node bootstrap that preloads time-slicing, so a node comes up already sliced.
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

use crate::model::profile_name;

/// The MIME boundary of the AL2/AL2023 userData (the one Karpenter's documentation uses).
const BOUNDARY: &str = "//";

/// Bottlerocket settings for `replicas` per GPU (1 = no sharing).
pub fn bottlerocket_toml(replicas: u32, fail_requests_greater_than_one: bool) -> String {
    if replicas <= 1 {
        return "[settings.kubelet-device-plugins.nvidia]\n\
                device-sharing-strategy = \"none\"\n"
            .to_string();
    }
    format!(
        "[settings.kubelet-device-plugins.nvidia]\n\
         device-sharing-strategy = \"time-slicing\"\n\
         \n\
         [settings.kubelet-device-plugins.nvidia.time-slicing]\n\
         replicas = {replicas}\n\
         rename-by-default = false\n\
         fail-requests-greater-than-one = {fail_requests_greater_than_one}\n"
    )
}

/// Appends gpu-slicer's Bottlerocket settings to a user's userData TOML. A userData that
/// already configures `kubelet-device-plugins` is refused: the two would disagree.
pub fn merge_bottlerocket(
    user: Option<&str>,
    replicas: u32,
    fail_requests_greater_than_one: bool,
) -> Result<String, String> {
    let ours = bottlerocket_toml(replicas, fail_requests_greater_than_one);
    match user.map(str::trim_end).filter(|u| !u.trim().is_empty()) {
        None => Ok(ours),
        Some(u) if u.contains("kubelet-device-plugins") => Err(
            "already configures settings.kubelet-device-plugins; gpu-slicer writes those \
             settings per profile, so remove them from this EC2NodeClass"
                .to_string(),
        ),
        Some(u) => Ok(format!("{u}\n\n# gpu-slicer: time-slicing profile\n{ours}")),
    }
}

/// The shell part that runs before Karpenter's bootstrap on AL2 and AL2023.
pub fn shell_part(replicas: u32) -> String {
    let profile = profile_name(replicas);
    format!(
        "#!/bin/bash\n\
         # gpu-slicer: time-slicing profile {profile} ({replicas} replicas per GPU).\n\
         # The device plugin reads the profile from the node label nvidia.com/device-plugin.config,\n\
         # set by the NodePool template; this part only prepares the host.\n\
         set -u\n\
         mkdir -p /etc/gpu-slicer\n\
         printf 'profile=%s\\nreplicas=%s\\n' '{profile}' '{replicas}' > /etc/gpu-slicer/profile\n\
         if command -v nvidia-smi >/dev/null 2>&1; then\n\
         \x20 nvidia-smi --persistence-mode=1 || true\n\
         \x20 nvidia-smi --compute-mode=DEFAULT || true\n\
         fi\n"
    )
}

/// AL2 and AL2023 userData: a MIME multi-part document holding [`shell_part`].
pub fn mime_userdata(replicas: u32) -> String {
    format!(
        "MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\n\
         \n\
         --{BOUNDARY}\n\
         Content-Type: text/x-shellscript; charset=\"us-ascii\"\n\
         \n\
         {}\
         --{BOUNDARY}--\n",
        shell_part(replicas)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bottlerocket_is_explicit() {
        let t = bottlerocket_toml(4, false);
        for line in [
            "device-sharing-strategy = \"time-slicing\"",
            "replicas = 4",
            "rename-by-default = false",
            "fail-requests-greater-than-one = false",
        ] {
            assert!(t.contains(line), "missing {line:?} in\n{t}");
        }
        assert!(bottlerocket_toml(4, true).contains("fail-requests-greater-than-one = true"));
        let unshared = bottlerocket_toml(1, false);
        assert!(unshared.contains("\"none\""));
        assert!(!unshared.contains("replicas"));
    }

    #[test]
    fn bottlerocket_merge() {
        let user = "[settings.kubernetes]\nmax-pods = 110\n";
        let m = merge_bottlerocket(Some(user), 2, false).expect("merges");
        assert!(m.starts_with(user.trim_end()));
        assert!(m.contains("replicas = 2"));
        assert_eq!(
            merge_bottlerocket(None, 3, false).expect("no user data"),
            bottlerocket_toml(3, false)
        );
        let clash =
            "[settings.kubelet-device-plugins.nvidia]\ndevice-sharing-strategy = \"none\"\n";
        let e = merge_bottlerocket(Some(clash), 2, false).expect_err("clash");
        assert!(e.contains("kubelet-device-plugins"), "{e}");
    }

    #[test]
    fn mime_has_one_shell_part_and_no_labels() {
        let u = mime_userdata(4);
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
