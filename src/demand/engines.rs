//! GPU memory the manifests already state: what a pod's GPU containers tell their inference
//! server or the CUDA driver about GPU memory, read when the pod has no
//! `gpu-slicer.io/gpu-memory` annotation (the annotation always wins; the caller does not
//! call this then).
//!
//! Pure: reads the pod spec as JSON, nothing else. Fractions are in thousandths of the GPU
//! the pod lands on (rounded up), absolute memory in MiB (rounded up).
//!
//! # What is read
//!
//! Only containers of `spec.containers` that ask for `nvidia.com/gpu` (limit or request).
//! Their words are `command` followed by `args`; an item with white space in it (the script
//! of `["sh", "-c", "vllm serve m --gpu-memory-utilization 0.85"]`) is split on white space
//! and each word loses its surrounding quotes and a trailing `;`. A flag is read as
//! `--flag=value` or `--flag value` (underscores count as dashes, as vLLM's parser allows);
//! when it appears twice the last one counts, as argparse does. `$(NAME)` (Kubernetes),
//! `${NAME}` and `$NAME` (a shell) are replaced with the container's literal `env` value;
//! a reference to anything else (`valueFrom`, an unknown name) cannot be known at plan time,
//! and a fraction written that way counts as the whole GPU.
//!
//! | engine | value | runs when | default |
//! |---|---|---|---|
//! | vLLM | `--gpu-memory-utilization` (`-gmu`) | `vllm serve`, `-m vllm.entrypoints.…`, or an image repository containing `vllm` | 0.9 |
//! | Hugging Face TGI | `--cuda-memory-fraction`, else env `CUDA_MEMORY_FRACTION` | `text-generation-launcher`, or an image containing `text-generation-inference` | 1.0 |
//! | SGLang | `--mem-fraction-static` | `-m sglang.launch_server`, `-m sglang_router.launch_server`, `sglang serve`, or an image containing `sglang` | 1.0, see below |
//! | CUDA MPS | env `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT` (`0=4G`, `4096M`, `0=1G,1=512MB`) | any GPU container | none |
//!
//! A flag is read whether or not the engine is recognised (the flag names are the engines'
//! own); the default applies only to a container the table recognises. SGLang has no fixed
//! default: it sizes `mem_fraction_static` as `(GPU memory − reserve) / GPU memory`, the
//! reserve being what it keeps for activations and CUDA graphs (`_handle_gpu_memory_settings`
//! in `python/sglang/srt/server_args.py`), so that the static part plus the reserve fill the
//! GPU: 1.0 is what an SGLang pod without the flag takes. An MPS limit applies to each
//! device the container sees; the largest entry is the pod's per-GPU need. `G`, `M`, `K`
//! (with or without `B` or `i`) are read as powers of 1024, which never understates.
//! `PYTORCH_CUDA_ALLOC_CONF` is not read: none of its options (`max_split_size_mb`,
//! `expandable_segments`, `garbage_collection_threshold`, `roundup_power2_divisions`,
//! `backend`, `pinned_*`, `release_lock_on_cudamalloc`) limits how much memory is used.
//!
//! vLLM's `--kv-cache-memory` (an exact KV-cache size that makes vLLM ignore the fraction) is
//! not read: the fraction still counts, which can only overstate.
//!
//! Several GPU containers add up: their fractions (capped at the whole GPU) and their MiB.
//!
//! Upstream sources: vLLM engine arguments
//! (<https://docs.vllm.ai/en/latest/configuration/engine_args.html>: "the fraction of GPU
//! memory to be used for the model executor … default 0.9 … a per-instance limit"), TGI
//! launcher arguments (<https://huggingface.co/docs/text-generation-inference/reference/launcher>:
//! `--cuda-memory-fraction`, env `CUDA_MEMORY_FRACTION`, default 1.0), SGLang server
//! arguments (<https://docs.sglang.io/advanced_features/server_arguments.html>) and
//! `python/sglang/srt/server_args.py`, CUDA MPS environment variables
//! (<https://docs.nvidia.com/deploy/mps/latest/appendix-environment-variables.html>), PyTorch's
//! CUDA caching allocator (<https://pytorch.org/docs/stable/notes/cuda.html>, "Optimizing
//! memory usage with `PYTORCH_CUDA_ALLOC_CONF`", and `c10/cuda/CUDAAllocatorConfig.h`).
//!
//! The word splitting is hand-rolled rather than a shell lexer (`shlex`): only three flags
//! and their values are looked for, so whitespace and quotes are all that matter, and a
//! lexer would add a dependency without running the script any better.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::requests::{container_requests, scalar_string};
use crate::config::FieldError;
use crate::config::value::{as_map, describe, list, opt_str, show};
use crate::model::MIB;

/// An inference server whose GPU-memory setting is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Vllm,
    Tgi,
    Sglang,
}

impl Engine {
    const ALL: [Engine; 3] = [Engine::Vllm, Engine::Tgi, Engine::Sglang];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Engine::Vllm => "vLLM",
            Engine::Tgi => "TGI",
            Engine::Sglang => "SGLang",
        }
    }

    /// The command-line flag that states the fraction.
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Engine::Vllm => "--gpu-memory-utilization",
            Engine::Tgi => "--cuda-memory-fraction",
            Engine::Sglang => "--mem-fraction-static",
        }
    }

    /// The flag and its aliases (vLLM's `-gmu`).
    fn flags(self) -> &'static [&'static str] {
        match self {
            Engine::Vllm => &["--gpu-memory-utilization", "-gmu"],
            Engine::Tgi => &["--cuda-memory-fraction"],
            Engine::Sglang => &["--mem-fraction-static"],
        }
    }

    /// The environment variable the engine reads when the flag is absent.
    fn env(self) -> Option<&'static str> {
        match self {
            Engine::Tgi => Some("CUDA_MEMORY_FRACTION"),
            Engine::Vllm | Engine::Sglang => None,
        }
    }

    /// What the engine takes without the flag, thousandths (see the module doc for SGLang).
    fn default_milli(self) -> u32 {
        match self {
            Engine::Vllm => 900,
            Engine::Tgi | Engine::Sglang => 1000,
        }
    }

    /// The default as the note shows it.
    fn default_text(self) -> &'static str {
        match self {
            Engine::Vllm => "0.9",
            Engine::Tgi => "1.0",
            Engine::Sglang => "(sized to fill the GPU)",
        }
    }

    /// Text an image repository of the engine contains.
    fn image_marker(self) -> &'static str {
        match self {
            Engine::Vllm => "vllm",
            Engine::Tgi => "text-generation-inference",
            Engine::Sglang => "sglang",
        }
    }

    /// Does this command line start the engine? `words[i]` is looked at with the next word.
    fn launched_by(self, words: &[Word]) -> bool {
        words.iter().enumerate().any(|(i, w)| {
            let base = w.text.rsplit('/').next().unwrap_or_default();
            let next = words.get(i + 1).map(|n| n.text.as_str());
            match self {
                Engine::Vllm => {
                    (base == "vllm" && next == Some("serve"))
                        || w.text.starts_with("vllm.entrypoints.")
                }
                Engine::Tgi => base == "text-generation-launcher",
                Engine::Sglang => {
                    (base == "sglang" && next == Some("serve"))
                        || w.text.starts_with("sglang.launch_server")
                        || w.text.starts_with("sglang_router.launch_server")
                }
            }
        })
    }
}

/// How a stated fraction was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum How {
    /// On the command line, as this value.
    Flag(String),
    /// In the engine's environment variable, as this value.
    Env(String),
    /// The engine runs without saying: its default.
    Default,
    /// Written as a reference that cannot be resolved at plan time (this flag and value,
    /// or this variable): the whole GPU.
    NotLiteral(String),
}

/// What one container states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Amount {
    /// A share of the GPU, thousandths.
    Fraction {
        engine: Engine,
        milli: u32,
        how: How,
    },
    /// `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`: MiB per GPU, and the value as written.
    Mib { mib: u64, text: String },
}

/// One statement and the container that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub container: String,
    pub amount: Amount,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.amount {
            Amount::Fraction { engine, how, .. } => {
                let (name, flag) = (engine.name(), engine.flag());
                match how {
                    How::Flag(v) => write!(f, "{name}'s {flag} {v}")?,
                    How::Env(v) => {
                        let env = engine.env().unwrap_or_default();
                        write!(f, "{name}'s {env}={v}")?;
                    }
                    How::Default => {
                        write!(f, "{name}'s default {flag} {}", engine.default_text())?;
                    }
                    How::NotLiteral(what) => write!(
                        f,
                        "{name}'s {what}, not a literal value, counted as the whole GPU"
                    )?,
                }
            }
            Amount::Mib { text, .. } => write!(f, "{MPS_LIMIT}={text}")?,
        }
        write!(f, " (container {})", self.container)
    }
}

/// What a pod's GPU containers state about GPU memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatedMemory {
    /// Sum of the stated fractions, capped at 1000; `None` when none is stated.
    pub fraction_milli: Option<u32>,
    /// Sum of the stated MiB; `None` when none is stated.
    pub mib: Option<u64>,
    /// The statements, in container order.
    pub sources: Vec<Source>,
}

impl StatedMemory {
    /// `GPU memory 0.90 of the GPU, from vLLM's default --gpu-memory-utilization 0.9
    /// (container vllm)`; `None` when nothing is stated.
    pub(crate) fn note(&self) -> Option<String> {
        let mut amounts = Vec::new();
        if let Some(m) = self.fraction_milli {
            let stated: u64 = self
                .sources
                .iter()
                .map(|s| match s.amount {
                    Amount::Fraction { milli, .. } => u64::from(milli),
                    Amount::Mib { .. } => 0,
                })
                .sum();
            if stated > u64::from(m) {
                amounts.push(format!(
                    "{} of the GPU ({} stated in all, capped at the whole GPU)",
                    fraction_text(u64::from(m)),
                    fraction_text(stated)
                ));
            } else {
                amounts.push(format!("{} of the GPU", fraction_text(u64::from(m))));
            }
        }
        if let Some(m) = self.mib {
            amounts.push(format!("{m} MiB"));
        }
        if amounts.is_empty() {
            return None;
        }
        let sources: Vec<String> = self.sources.iter().map(Source::to_string).collect();
        Some(format!(
            "GPU memory {}, from {}",
            amounts.join(" and "),
            sources.join("; ")
        ))
    }
}

/// Thousandths as a decimal with at least two places: 900 → `0.90`, 851 → `0.851`.
fn fraction_text(milli: u64) -> String {
    let s = format!("{}.{:03}", milli / 1000, milli % 1000);
    match s.strip_suffix('0') {
        Some(t) => t.to_string(),
        None => s,
    }
}

/// The MPS client's device-memory limit.
pub(crate) const MPS_LIMIT: &str = "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT";

/// What the pod's GPU containers state. `spec` is the pod spec, `path` its field path
/// (`spec`); errors name the field (`spec.containers[0].args[3]`).
pub(crate) fn stated_gpu_memory(
    spec: &Map<String, Value>,
    path: &str,
) -> Result<StatedMemory, FieldError> {
    let containers_path = format!("{path}.containers");
    let mut sources = Vec::new();
    for (i, c) in list(spec, "containers", &containers_path)?
        .iter()
        .enumerate()
    {
        let cpath = format!("{containers_path}[{i}]");
        if container_requests(c, &cpath)?.gpus == 0 {
            continue;
        }
        // container_requests has rejected anything but a mapping.
        let Value::Object(c) = c else { continue };
        let name = opt_str(c, "name", &format!("{cpath}.name"))?
            .filter(|n| !n.is_empty())
            .map_or_else(|| format!("containers[{i}]"), str::to_string);
        for amount in container_amounts(c, &cpath)? {
            sources.push(Source {
                container: name.clone(),
                amount,
            });
        }
    }
    let mut fraction: Option<u64> = None;
    let mut mib: Option<u64> = None;
    for s in &sources {
        match s.amount {
            Amount::Fraction { milli, .. } => {
                fraction = Some(fraction.unwrap_or(0).saturating_add(u64::from(milli)));
            }
            Amount::Mib { mib: m, .. } => mib = Some(mib.unwrap_or(0).saturating_add(m)),
        }
    }
    Ok(StatedMemory {
        // Capped at 1000, so the conversion cannot fail.
        fraction_milli: fraction.map(|f| u32::try_from(f.min(1000)).unwrap_or(1000)),
        mib,
        sources,
    })
}

/// One word of a command line and the field it came from.
#[derive(Debug, Clone)]
struct Word {
    text: String,
    path: String,
}

/// An `env` entry: a literal value, or one only known in the cluster (`valueFrom`).
#[derive(Debug, Clone)]
enum EnvValue {
    Literal { value: String, path: String },
    Unknown,
}

/// What one GPU container states, engines first (in [`Engine::ALL`] order), then MPS.
fn container_amounts(c: &Map<String, Value>, cpath: &str) -> Result<Vec<Amount>, FieldError> {
    let env = env_of(c, cpath)?;
    let words = words_of(c, cpath)?;
    let image = opt_str(c, "image", &format!("{cpath}.image"))?.unwrap_or_default();
    let repo = repository(image);
    let mut out = Vec::new();
    for engine in Engine::ALL {
        let stated = match flag_value(&words, engine.flags())? {
            Some(w) => Some((w.text.clone(), w.path.clone(), true)),
            None => match engine.env().and_then(|e| env.get(e)) {
                Some(EnvValue::Literal { value, .. }) if value.trim().is_empty() => None,
                Some(EnvValue::Literal { value, path }) => {
                    Some((value.clone(), path.clone(), false))
                }
                Some(EnvValue::Unknown) => {
                    let name = engine.env().unwrap_or_default();
                    out.push(Amount::Fraction {
                        engine,
                        milli: 1000,
                        how: How::NotLiteral(format!("{name} (valueFrom)")),
                    });
                    continue;
                }
                None => None,
            },
        };
        let amount = match stated {
            Some((text, path, on_command_line)) => match expand(&text, &env) {
                Some(value) => {
                    let milli = parse_fraction(&value).map_err(|m| {
                        let what = if on_command_line {
                            engine.flag()
                        } else {
                            engine.env().unwrap_or_default()
                        };
                        FieldError::new(&path, format!("{}'s {what} {m}", engine.name()))
                    })?;
                    let how = if on_command_line {
                        How::Flag(value)
                    } else {
                        How::Env(value)
                    };
                    Amount::Fraction { engine, milli, how }
                }
                None => Amount::Fraction {
                    engine,
                    milli: 1000,
                    how: How::NotLiteral(if on_command_line {
                        format!("{} {text}", engine.flag())
                    } else {
                        format!("{}={text}", engine.env().unwrap_or_default())
                    }),
                },
            },
            None if engine.launched_by(&words) || repo.contains(engine.image_marker()) => {
                Amount::Fraction {
                    engine,
                    milli: engine.default_milli(),
                    how: How::Default,
                }
            }
            None => continue,
        };
        out.push(amount);
    }
    if let Some(EnvValue::Literal { value, path }) = env.get(MPS_LIMIT)
        && !value.trim().is_empty()
        && let Some(v) = expand(value, &env)
    {
        let mib =
            parse_mps_limit(&v).map_err(|m| FieldError::new(path, format!("{MPS_LIMIT} {m}")))?;
        out.push(Amount::Mib { mib, text: v });
    }
    Ok(out)
}

/// The container's `env` by name (a later entry wins, as in Kubernetes).
fn env_of(c: &Map<String, Value>, cpath: &str) -> Result<BTreeMap<String, EnvValue>, FieldError> {
    let env_path = format!("{cpath}.env");
    let mut out = BTreeMap::new();
    for (j, e) in list(c, "env", &env_path)?.iter().enumerate() {
        let epath = format!("{env_path}[{j}]");
        let e = as_map(e, &epath)?;
        let Some(name) = opt_str(e, "name", &format!("{epath}.name"))? else {
            continue;
        };
        let vpath = format!("{epath}.value");
        let value = match e.get("value") {
            None | Some(Value::Null) if e.get("valueFrom").is_some_and(|v| !v.is_null()) => {
                EnvValue::Unknown
            }
            None | Some(Value::Null) => EnvValue::Literal {
                value: String::new(),
                path: vpath,
            },
            Some(v) => EnvValue::Literal {
                value: scalar_string(v).ok_or_else(|| {
                    FieldError::new(&vpath, format!("expected a string, found {}", describe(v)))
                })?,
                path: vpath,
            },
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// `command` then `args`, split into words (see the module doc).
fn words_of(c: &Map<String, Value>, cpath: &str) -> Result<Vec<Word>, FieldError> {
    let mut out = Vec::new();
    for key in ["command", "args"] {
        let lpath = format!("{cpath}.{key}");
        for (k, item) in list(c, key, &lpath)?.iter().enumerate() {
            let path = format!("{lpath}[{k}]");
            let text = scalar_string(item).ok_or_else(|| {
                FieldError::new(
                    &path,
                    format!("expected a string, found {}", describe(item)),
                )
            })?;
            if text.contains(char::is_whitespace) {
                for piece in text.split_whitespace() {
                    out.push(Word {
                        text: unquote(piece).to_string(),
                        path: path.clone(),
                    });
                }
            } else {
                out.push(Word { text, path });
            }
        }
    }
    Ok(out)
}

/// A shell word without its surrounding quotes and a trailing `;`.
fn unquote(w: &str) -> &str {
    let w = w.strip_suffix(';').unwrap_or(w);
    for q in ['"', '\''] {
        if let Some(inner) = w.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner;
        }
    }
    w
}

/// The value of the last `--flag=value` or `--flag value` among the words, `--flag` being
/// any of `flags`, as a word (its text already unquoted); a flag without a value is an
/// error.
fn flag_value(words: &[Word], flags: &[&str]) -> Result<Option<Word>, FieldError> {
    let mut found = None;
    for (i, w) in words.iter().enumerate() {
        let (name, inline) = match w.text.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (w.text.as_str(), None),
        };
        let name = name.replace('_', "-");
        if !name.starts_with('-') || !flags.contains(&name.as_str()) {
            continue;
        }
        let flag = name.as_str();
        found = Some(match inline {
            Some(v) => Word {
                text: unquote(v).to_string(),
                path: w.path.clone(),
            },
            None => words.get(i + 1).cloned().ok_or_else(|| {
                FieldError::new(&w.path, format!("{flag} needs a value, such as {flag}=0.9"))
            })?,
        });
    }
    Ok(found)
}

/// `text` with `$(NAME)`, `${NAME}` and `$NAME` replaced by the literal env values;
/// `None` when a reference cannot be resolved (`valueFrom`, unknown name, `$$`).
fn expand(text: &str, env: &BTreeMap<String, EnvValue>) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(r) = after.strip_prefix('(') {
            r.split_once(')')?
        } else if let Some(r) = after.strip_prefix('{') {
            r.split_once('}')?
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            after.split_at(end)
        };
        match env.get(name) {
            Some(EnvValue::Literal { value, .. }) if !name.is_empty() => out.push_str(value),
            _ => return None,
        }
        rest = tail;
    }
    out.push_str(rest);
    Some(out)
}

/// The repository of an image reference, lower-cased, without registry host, tag or
/// digest: `ghcr.io/huggingface/text-generation-inference:3.3` →
/// `huggingface/text-generation-inference`.
fn repository(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or_default();
    let (head, last) = no_digest.rsplit_once('/').unwrap_or(("", no_digest));
    let last = last.split(':').next().unwrap_or_default();
    let mut parts: Vec<&str> = if head.is_empty() {
        Vec::new()
    } else {
        head.split('/').collect()
    };
    if parts
        .first()
        .is_some_and(|h| h.contains('.') || h.contains(':') || *h == "localhost")
    {
        parts.remove(0);
    }
    parts.push(last);
    parts.join("/").to_ascii_lowercase()
}

/// A value a container states that cannot be read: the rest of a sentence naming the flag
/// or the variable (`vLLM's --gpu-memory-utilization must be greater than 0, got "0"`).
/// `shown` is the value as messages show it (quoted, cut).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ValueError {
    #[error("must be a fraction of the GPU in (0, 1] such as 0.9, got {shown}")]
    NotFraction { shown: String },
    #[error("must be greater than 0, got {shown}")]
    NotPositive { shown: String },
    #[error("must be at most 1 (the whole GPU), got {shown}")]
    AboveWholeGpu { shown: String },
    #[error("must be a limit such as 0=4G, 4096M or 0=1G,1=512MB, got {shown}")]
    NotMpsLimit { shown: String },
    #[error("needs a unit (M or G) after {number}, got {shown}")]
    NoUnit { number: String, shown: String },
}

/// A fraction of the GPU in (0, 1], written as a decimal (`0.9`, `.85`, `1`, `1.0`), in
/// thousandths rounded up.
pub(crate) fn parse_fraction(s: &str) -> Result<u32, ValueError> {
    let t = s.trim();
    let grammar = || ValueError::NotFraction { shown: show(s) };
    let body = t.strip_prefix('+').unwrap_or(t);
    if body.starts_with('-') && body.len() > 1 {
        return Err(ValueError::NotPositive { shown: show(s) });
    }
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(grammar());
    }
    let int = int.trim_start_matches('0');
    if int.len() > 1 || int.parse::<u64>().unwrap_or(0) > 1 {
        return Err(ValueError::AboveWholeGpu { shown: show(s) });
    }
    let whole = u64::from(int == "1");
    let mut milli = whole * 1000;
    for (k, b) in frac.bytes().take(3).enumerate() {
        milli += u64::from(b - b'0') * [100, 10, 1][k];
    }
    if frac.bytes().skip(3).any(|b| b != b'0') {
        milli += 1;
    }
    if milli == 0 {
        return Err(ValueError::NotPositive { shown: show(s) });
    }
    if milli > 1000 {
        return Err(ValueError::AboveWholeGpu { shown: show(s) });
    }
    // milli is in 1..=1000 here.
    u32::try_from(milli).map_err(|_| grammar())
}

/// `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`: `<device>=<limit>` entries separated by commas, or
/// one bare `<limit>`; a limit is whole digits and a unit `K`, `M`, `G` or `T` (optionally
/// followed by `B`, `i` or `iB`), read as powers of 1024. The largest entry, in MiB rounded
/// up.
pub(crate) fn parse_mps_limit(s: &str) -> Result<u64, ValueError> {
    let grammar = || ValueError::NotMpsLimit { shown: show(s) };
    let mut largest: Option<u64> = None;
    for entry in s.split(',') {
        let entry = entry.trim();
        let value = match entry.split_once('=') {
            Some((dev, v)) if !dev.trim().is_empty() => v.trim(),
            Some(_) => return Err(grammar()),
            None => entry,
        };
        let num_end = value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len());
        let (num, unit) = value.split_at(num_end);
        if num.is_empty() || num.len() > 15 {
            return Err(grammar());
        }
        let n: u64 = num.parse().map_err(|_| grammar())?;
        let unit = unit.to_ascii_uppercase();
        let unit = unit
            .strip_suffix("IB")
            .or_else(|| unit.strip_suffix('B'))
            .or_else(|| unit.strip_suffix('I'))
            .unwrap_or(&unit);
        let bytes_per = match unit {
            "K" => 1u64 << 10,
            "M" => 1 << 20,
            "G" => 1 << 30,
            "T" => 1 << 40,
            "" => {
                return Err(ValueError::NoUnit {
                    number: show(num),
                    shown: show(s),
                });
            }
            _ => return Err(grammar()),
        };
        if n == 0 {
            return Err(ValueError::NotPositive { shown: show(s) });
        }
        let mib = n.saturating_mul(bytes_per).div_ceil(MIB);
        largest = Some(largest.map_or(mib, |l| l.max(mib)));
    }
    largest.ok_or_else(grammar)
}

#[cfg(test)]
mod tests;
