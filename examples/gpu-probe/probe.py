#!/usr/bin/env python3
"""Measure this GPU's sharing figures and print the gpu-slicer NodePool annotations for them.

  python3 probe.py          CUDA context memory and time-slicing efficiency
  python3 probe.py --mps    the same, plus MPS efficiency (starts and stops its own MPS daemon)

Run it on a GPU nothing else uses. Needs python3, PyTorch with CUDA and nvidia-smi.
Environment: PROBE_SECONDS (busy time per run, default 7), PROBE_MATRIX (matrix side,
default 4096), PROBE_IDLE_PROCS (idle processes for the context-memory figure, default 8).
Efficiency = throughput of all N busy processes together / throughput of one process alone;
the annotation takes the smallest over N, rounded down to 2 decimals.
"""
import json, math, multiprocessing as mp, os, queue, shutil, subprocess, sys, tempfile, time

SECS = float(os.environ.get("PROBE_SECONDS", "7"))
SIZE = int(os.environ.get("PROBE_MATRIX", "4096"))
IDLE = int(os.environ.get("PROBE_IDLE_PROCS", "8"))
GPU = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]  # nvidia-smi -i takes an index or UUID
WAIT = 300  # seconds to wait for a child process before giving up


class ProbeError(Exception):
    """A condition the user can fix; printed as one line, without a traceback."""


def fail(msg):
    raise ProbeError(msg)


def log(msg):
    print(f"gpu-probe: {msg}", file=sys.stderr, flush=True)


def smi(fields):
    """One nvidia-smi --query-gpu row for our GPU, as a list of strings."""
    try:
        r = subprocess.run(["nvidia-smi", "-i", GPU, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        fail(f"nvidia-smi did not run ({e})")
    if r.returncode != 0:
        fail(f"nvidia-smi failed: {(r.stdout + r.stderr).strip()}")
    return [v.strip() for v in r.stdout.strip().splitlines()[0].split(",")]


# --- child processes (spawned: each is a fresh process with its own CUDA context) ---

def idle(env, ready, done):
    """Create a CUDA context, touch the GPU once, then wait."""
    os.environ.update(env)
    try:
        import torch
        torch.zeros(1, device="cuda"); torch.cuda.synchronize()
    except Exception as e:  # reported by the parent as a clear error
        ready.put(f"{type(e).__name__}: {e}"); return
    ready.put("ok"); done.wait()


def busy(env, ready, start, results):
    """fp16 matmul loop with a synchronize after each (compute-bound); reports iterations/s."""
    os.environ.update(env)
    try:
        import torch
        a = torch.randn(SIZE, SIZE, device="cuda", dtype=torch.float16)
        b = torch.randn(SIZE, SIZE, device="cuda", dtype=torch.float16)
        for _ in range(5):  # warm-up: kernels chosen and loaded before the clock starts
            a @ b; torch.cuda.synchronize()
    except Exception as e:  # reported by the parent as a clear error
        ready.put(f"{type(e).__name__}: {e}"); return
    ready.put("ok"); start.wait()
    try:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < SECS:
            a @ b; torch.cuda.synchronize(); n += 1
        results.put(n / (time.perf_counter() - t0))
    except Exception as e:
        results.put(f"{type(e).__name__}: {e}")


def gather(q, k, what):
    try:
        got = [q.get(timeout=WAIT) for _ in range(k)]
    except queue.Empty:
        fail(f"a child process did not answer within {WAIT} s while {what}")
    bad = [g for g in got if g != "ok" and not isinstance(g, float)]
    if bad:
        fail(f"a child process failed while {what}: {bad[0]}")
    return got


def run_busy(k, env=None):
    """Start k busy processes together; return each one's iterations/s."""
    ctx = mp.get_context("spawn")
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    ps = [ctx.Process(target=busy, args=(env or {}, ready, start, results), daemon=True) for _ in range(k)]
    for p in ps: p.start()
    gather(ready, k, f"warming up {k} busy process(es)")
    start.set()
    rates = gather(results, k, f"running {k} busy process(es)")
    for p in ps: p.join()
    return rates


def context_memory(env=None, k=IDLE):
    """GPU memory one CUDA context takes: nvidia-smi's memory.used with k idle processes, minus before, / k."""
    ctx = mp.get_context("spawn")
    ready, done = ctx.Queue(), ctx.Event()
    before = int(smi("memory.used")[0])
    ps = [ctx.Process(target=idle, args=(env or {}, ready, done), daemon=True) for _ in range(k)]
    for p in ps: p.start()
    gather(ready, k, f"starting {k} idle processes")
    time.sleep(1)
    after = int(smi("memory.used")[0])
    done.set()
    for p in ps: p.join()
    return (after - before) / k


def efficiency(solo, k, env=None):
    rates = run_busy(k, env)
    return {"processes": k, "each_it_s": [round(r, 1) for r in rates], "together_of_solo": round(sum(rates) / solo, 4)}


def floor2(x):
    return math.floor(x * 100 + 1e-9) / 100


def mps_section(solo):
    """Start a private MPS daemon, measure, and always stop it."""
    if not shutil.which("nvidia-cuda-mps-control"):
        fail("--mps needs nvidia-cuda-mps-control on PATH (the container needs NVIDIA_DRIVER_CAPABILITIES=compute,utility)")
    d = tempfile.mkdtemp(prefix="gpu-probe-mps-")
    env = {"CUDA_MPS_PIPE_DIRECTORY": d, "CUDA_MPS_LOG_DIRECTORY": d}
    ctl_env = dict(os.environ, **env)
    if subprocess.run(["nvidia-cuda-mps-control", "-d"], env=ctl_env).returncode != 0:
        fail(f"nvidia-cuda-mps-control -d failed (see {d})")
    try:
        time.sleep(2)
        out = {"context_memory_mib": round(context_memory(env), 2)}
        out["solo_of_solo"] = round(sum(run_busy(1, env)) / solo, 4)
        out["runs"] = [efficiency(solo, k, env) for k in (2, 4)]
        # What the NVIDIA device plugin's MPS sharing sets for 4 replicas: 100/4 % of the SMs each.
        out["runs"].append(dict(efficiency(solo, 4, dict(env, CUDA_MPS_ACTIVE_THREAD_PERCENTAGE="25")),
                                active_thread_percentage=25))
        out["server_list"] = subprocess.run(["nvidia-cuda-mps-control"], input="get_server_list\n",
                                            env=ctl_env, capture_output=True, text=True, timeout=60).stdout.split()
    finally:
        subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", env=ctl_env, text=True, capture_output=True, timeout=60)
        time.sleep(2)
    return out


def main():
    mps = "--mps" in sys.argv[1:]
    if set(sys.argv[1:]) - {"--mps"}:
        fail("usage: probe.py [--mps]")
    if not shutil.which("nvidia-smi"):
        fail("nvidia-smi not found: run this on a GPU node (container with NVIDIA_DRIVER_CAPABILITIES including utility)")
    name, driver, total, mode, used, util = smi("name,driver_version,memory.total,compute_mode,memory.used,utilization.gpu")
    if mode != "Default":
        fail(f"the GPU's compute mode is {mode}; several processes need Default")
    if int(used) > 1024 or (util.isdigit() and int(util) > 5):
        log(f"warning: the GPU is not idle ({used} MiB used, {util} % busy): the figures will be off")
    # Check torch/CUDA in a child so that this process never holds a CUDA context itself.
    chk = subprocess.run([sys.executable, "-c", "import torch; assert torch.cuda.is_available(), 'torch.cuda.is_available() is False'; "
                          "print(torch.__version__, torch.version.cuda)"], capture_output=True, text=True)
    if chk.returncode != 0:
        fail("PyTorch with CUDA is not usable here: " + (chk.stderr.strip().splitlines() or ["?"])[-1])
    torch_v, cuda_v = chk.stdout.split()
    out = {"gpu": name, "driver": driver, "memory_total_mib": int(total), "torch": torch_v, "cuda": cuda_v,
           "seconds_per_run": SECS, "matrix": SIZE, "memory_used_at_start_mib": int(used)}
    log(f"{name}, driver {driver}: context memory ({IDLE} idle processes)")
    cm = context_memory()
    if cm <= 0:
        fail(f"memory.used did not grow with {IDLE} CUDA processes ({cm:.1f} MiB each): is the GPU shared?")
    out["context_memory_mib"] = round(cm, 2)
    log("time-slicing: 1, 2, 4 busy processes")
    solo = run_busy(1)[0]
    out["solo_it_s"] = round(solo, 1)
    out["time_slicing"] = [efficiency(solo, k) for k in (2, 4)]
    if mps:
        log("MPS: 1, 2, 4 clients, and 4 at 25 % of the SMs")
        try:
            out["mps"] = mps_section(solo)
        except ProbeError as e:  # keep the time-slicing figures; say why MPS has none
            log(f"warning: MPS not measured: {e}")
            out["mps"] = {"error": str(e)}
    ts = floor2(min(r["together_of_solo"] for r in out["time_slicing"]))
    ann = {"gpu-slicer.io/context-memory": f"{math.ceil(cm)}Mi",
           "gpu-slicer.io/time-slicing-efficiency": f"{ts:.2f}"}
    if "runs" in out.get("mps", {}):
        ann["gpu-slicer.io/mps-efficiency"] = f"{floor2(min(r['together_of_solo'] for r in out['mps']['runs'])):.2f}"
    out["annotations"] = ann
    print(json.dumps(out, indent=1))
    print(f"\n# NodePool annotations for this GPU ({name}, driver {driver}):")
    for k, v in ann.items():
        print(f'{k}: "{v}"')
    if "runs" in out.get("mps", {}):
        r = out["mps"]["runs"]
        print(f"# MPS, 4 clients together: {r[1]['together_of_solo']:.2f} unlimited, "
              f"{r[2]['together_of_solo']:.2f} at 25 % of the SMs each (the device plugin's R = 4)")


if __name__ == "__main__":
    try:
        main()
    except ProbeError as e:
        sys.exit(f"gpu-probe: error: {e}")
    except KeyboardInterrupt:
        sys.exit("gpu-probe: interrupted")
