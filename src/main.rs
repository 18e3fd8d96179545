//! The `gpu-slicer` binary: a thin wrapper over [`gpu_slicer::cli`].

fn main() -> std::process::ExitCode {
    gpu_slicer::cli::main()
}
