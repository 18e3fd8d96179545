//! The catalog's tests: the embedded CSV, the loader's errors, allocatable and overhead.
//! One file (~760 code lines): half of it is the table of malformed cells and rows
//! (`malformed_cases`, each with its exact error) and the mutation search for panics,
//! sharing the CSV helpers at the top.

use super::*;
use crate::model::{CapacityType, labels};

const SRC: &str = "t.csv";

fn parse(text: &str) -> Result<Catalog, CatalogError> {
    parse_csv(SRC, text, embedded_price_source())
}

fn load() -> Catalog {
    match embedded() {
        Ok(c) => c,
        Err(e) => panic!("embedded catalog does not parse: {e}"),
    }
}

fn get<'a>(c: &'a Catalog, name: &str) -> &'a InstanceType {
    match find(c, name) {
        Some(t) => t,
        None => panic!("{name} not in catalog"),
    }
}

/// The header of the embedded CSV and its rows, split independently of the loader.
fn raw_table() -> (Vec<&'static str>, Vec<Vec<&'static str>>) {
    let mut lines = EMBEDDED_CSV.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let rows = lines.map(|l| l.split(',').collect()).collect();
    (header, rows)
}

fn col(header: &[&str], name: &str) -> usize {
    header
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

/// A minimal valid CSV: header line 1, one row on line 2.
const MINI_HEADER: &str = "instance_type,family,vcpus,memory_gib,gpu_count,gpu_model,gpu_memory_mib_per_gpu,on_demand_usd_per_hour_us_east_1,eni_max_pods,mig_supported";
const MINI_ROW: &str = "g4dn.xlarge,g4dn,4,16,1,NVIDIA T4,16384,0.526,29,false";

fn mini(row: &str) -> String {
    format!("{MINI_HEADER}\n{row}\n")
}

fn err_of(text: &str) -> CatalogError {
    match parse(text) {
        Ok(c) => panic!("expected an error, got {} types", c.types.len()),
        Err(e) => e,
    }
}

#[test]
fn embedded_csv_has_header_and_67_rows() {
    assert!(EMBEDDED_CSV.starts_with("instance_type,family,vcpus,memory_gib,"));
    assert_eq!(EMBEDDED_CSV.lines().count(), 68);
}

#[test]
fn embedded_parses_67_types_in_file_order() {
    let c = load();
    assert_eq!(c.types.len(), 67);
    assert_eq!(c.source, embedded_price_source());
    assert_eq!(c.source.observed, "2026-07-20");
    let (header, rows) = raw_table();
    let name = col(&header, "instance_type");
    let names: Vec<&str> = c.types.iter().map(|t| t.name.as_str()).collect();
    let expected: Vec<&str> = rows.iter().map(|r| r[name]).collect();
    assert_eq!(names, expected);
    assert_eq!(names.first(), Some(&"p3.2xlarge"));
    assert_eq!(names.last(), Some(&"g7e.48xlarge"));
    let (arch, fraction, label_count) = (
        col(&header, "arch"),
        col(&header, "gpu_fraction"),
        col(&header, "gpu_label_count"),
    );
    for (t, row) in c.types.iter().zip(&rows) {
        assert_eq!(t.arch, row[arch], "{}", t.name);
        assert_eq!(
            f64::from(t.gpu_fraction_milli) / 1000.0,
            row[fraction].parse::<f64>().expect("fraction"),
            "{}",
            t.name
        );
        assert_eq!(
            t.gpu_label_count.to_string(),
            row[label_count],
            "{}",
            t.name
        );
        // Only the fractional g6f/gr6f have no GPU in Karpenter's label, and they are
        // single devices.
        assert_eq!(t.gpu_label_count == 0, t.is_fractional(), "{}", t.name);
        assert_eq!(
            t.family.starts_with("g5g"),
            t.arch == "arm64",
            "{}: only Graviton is arm64",
            t.name
        );
        assert_eq!(t.gpu_manufacturer, "nvidia");
        assert_eq!(t.spot_price, None);
        assert!(t.on_demand_price > 0.0);
    }
    // Deterministic.
    assert_eq!(load(), c);
}

#[test]
fn allocatable_matches_karpenter_columns_on_all_rows() {
    let (header, rows) = raw_table();
    let (vc, mem, pods) = (
        col(&header, "vcpus"),
        col(&header, "memory_gib"),
        col(&header, "eni_max_pods"),
    );
    let (want_cpu, want_mem) = (
        col(&header, "karpenter_allocatable_cpu_millicores"),
        col(&header, "karpenter_allocatable_memory_mib"),
    );
    let c = load();
    assert_eq!(rows.len(), 67);
    let arch = col(&header, "arch");
    let mut mismatches = Vec::new();
    for (row, t) in rows.iter().zip(&c.types) {
        let num = |i: usize| -> u64 {
            row[i]
                .parse()
                .unwrap_or_else(|_| panic!("{}: not an integer", row[i]))
        };
        // memory_gib is whole GiB on every embedded row.
        let memory_mib = num(mem) * 1024;
        let vcpus = u32::try_from(num(vc)).unwrap_or(u32::MAX);
        let max_pods = u32::try_from(num(pods)).unwrap_or(u32::MAX);
        let got = karpenter_allocatable_for_arch(row[arch], vcpus, memory_mib, max_pods);
        let want = Resources::new(num(want_cpu), num(want_mem) * MIB);
        if got != want || t.allocatable != want || t.memory_mib != memory_mib {
            mismatches.push(format!(
                "{}: got cpu {} mem {} MiB, loader {:?}, want cpu {} mem {} MiB",
                t.name,
                got.cpu_milli,
                got.memory_bytes / MIB,
                t.allocatable,
                want.cpu_milli,
                want.memory_bytes / MIB
            ));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn allocatable_by_hand() {
    // g4dn.xlarge: 16384 MiB, 4 vCPU, 29 pods.
    assert_eq!(vm_memory_overhead_mib(16384), 1229);
    assert_eq!(kube_reserved_memory_mib(29), 11 * 29 + 255);
    let a = karpenter_allocatable(4, 16384, 29);
    assert_eq!(a.cpu_milli, 3920);
    assert_eq!(a.memory_bytes, 14481 * MIB);
    // The CPU ladder, including the truncated 2.5 m of an odd core beyond the 4th.
    let ladder: Vec<u64> = [0, 1, 2, 3, 4, 5, 6, 8, 96, 192]
        .iter()
        .map(|v| kube_reserved_cpu_milli(*v))
        .collect();
    assert_eq!(ladder, vec![0, 60, 70, 75, 80, 82, 85, 90, 310, 550]);
    // ceil, computed exactly.
    assert_eq!(vm_memory_overhead_mib(0), 0);
    assert_eq!(vm_memory_overhead_mib(1), 1);
    assert_eq!(vm_memory_overhead_mib(40), 3);
    assert_eq!(vm_memory_overhead_mib(1000), 75);
    assert_eq!(vm_memory_overhead_mib(1001), 76);
    assert!(vm_memory_overhead_mib(u64::MAX) < u64::MAX);
    // Saturation instead of underflow.
    assert_eq!(karpenter_allocatable(1, 100, 110).memory_bytes, 0);
    assert_eq!(
        karpenter_allocatable(u32::MAX, u64::MAX, u32::MAX).memory_bytes,
        u64::MAX
    );
}

#[test]
fn arm64_subtracts_cma_reservation() {
    let amd = karpenter_allocatable_for_arch("amd64", 4, 16384, 29);
    assert_eq!(amd, karpenter_allocatable(4, 16384, 29));
    let arm = karpenter_allocatable_for_arch("arm64", 4, 16384, 29);
    // 16320 − ceil(16320 × 0.075) − 574 − 100 = 16320 − 1224 − 674.
    assert_eq!(arm.memory_bytes, (16320 - 1224 - 674) * MIB);
    let text =
        format!("{MINI_HEADER},arch\ng5g.xlarge,g5g,4,8,1,NVIDIA T4G,16384,0.42,58,false,arm64\n");
    let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let t = get(&c, "g5g.xlarge");
    assert_eq!(t.arch, "arm64");
    assert_eq!(t.label(labels::ARCH).as_deref(), Some("arm64"));
    assert_eq!(t.memory_mib, 8192);
    assert_eq!(t.allocatable, karpenter_allocatable(4, 8192 - 64, 58));
}

#[test]
fn labels_of_embedded_types() {
    let c = load();
    let p4d = get(&c, "p4d.24xlarge");
    let l = |t: &InstanceType, k: &str| t.label(k);
    assert_eq!(l(p4d, labels::INSTANCE_GPU_NAME).as_deref(), Some("a100"));
    assert_eq!(
        l(p4d, labels::INSTANCE_GPU_MEMORY).as_deref(),
        Some("40960")
    );
    assert_eq!(l(p4d, labels::INSTANCE_GPU_COUNT).as_deref(), Some("8"));
    assert_eq!(
        l(p4d, labels::INSTANCE_GPU_MANUFACTURER).as_deref(),
        Some("nvidia")
    );
    assert_eq!(l(p4d, labels::INSTANCE_FAMILY).as_deref(), Some("p4d"));
    assert_eq!(l(p4d, labels::INSTANCE_SIZE).as_deref(), Some("24xlarge"));
    assert_eq!(l(p4d, labels::INSTANCE_CPU).as_deref(), Some("96"));
    assert_eq!(l(p4d, labels::INSTANCE_MEMORY).as_deref(), Some("1179648"));
    assert_eq!(l(p4d, labels::ARCH).as_deref(), Some("amd64"));
    assert!(p4d.mig_supported);
    assert_eq!(p4d.price(CapacityType::OnDemand), Some(21.957642));
    assert_eq!(p4d.price(CapacityType::Spot), None);

    let g5 = get(&c, "g5.xlarge");
    assert_eq!(l(g5, labels::INSTANCE_GPU_NAME).as_deref(), Some("a10g"));
    assert_eq!(l(g5, labels::INSTANCE_GPU_MEMORY).as_deref(), Some("22888"));
    assert!(!g5.mig_supported);
    let g6e = get(&c, "g6e.12xlarge");
    assert_eq!(l(g6e, labels::INSTANCE_GPU_NAME).as_deref(), Some("l40s"));
    assert_eq!(l(g6e, labels::INSTANCE_GPU_COUNT).as_deref(), Some("4"));
    // Karpenter's labels for the 2026 types, as in its v1.14 instance-type docs.
    for (ty, gpu) in [
        ("g7e.2xlarge", "rtx-pro-server-6000"),
        ("g7.2xlarge", "rtx-pro-4500"),
        ("g5g.xlarge", "t4g"),
        ("p5en.48xlarge", "h200"),
        ("p6-b300.48xlarge", "b300"),
        ("g6f.large", "l4"),
    ] {
        assert_eq!(
            l(get(&c, ty), labels::INSTANCE_GPU_NAME).as_deref(),
            Some(gpu)
        );
    }
    assert_eq!(
        l(get(&c, "g5g.xlarge"), labels::ARCH).as_deref(),
        Some("arm64")
    );
    let metal = get(&c, "g4dn.metal");
    assert_eq!(l(metal, labels::INSTANCE_SIZE).as_deref(), Some("metal"));
    assert_eq!(l(metal, labels::INSTANCE_GPU_NAME).as_deref(), Some("t4"));
    let p5 = get(&c, "p5.48xlarge");
    assert_eq!(l(p5, labels::INSTANCE_GPU_NAME).as_deref(), Some("h100"));
    assert_eq!(p5.max_pods, 100);
    assert_eq!(find(&c, "g4dn.nope"), None);
}

#[test]
fn spot_and_arch_columns_round_trip_in_any_order() {
    let text = "\
spot_usd_per_hour,extra,mig_supported,eni_max_pods,on_demand_usd_per_hour_us_east_1,gpu_memory_mib_per_gpu,gpu_model,gpu_count,memory_gib,vcpus,family,instance_type,arch
0.2104,x,false,29,0.526,16384,NVIDIA T4,1,16,4,g4dn,g4dn.xlarge,
,y,true,737,21.957642,40960,NVIDIA A100,8,1152,96,p4d,p4d.24xlarge,amd64

 0.5 , z , false , 58 , 1.006 , 22888 , NVIDIA A10G , 1 , 0.5 , 4 , g5 , g5.tiny , amd64
";
    let c = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = c.types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["g4dn.xlarge", "p4d.24xlarge", "g5.tiny"]);
    let g4 = &c.types[0];
    assert_eq!(g4.price(CapacityType::Spot), Some(0.2104));
    assert_eq!(g4.price(CapacityType::OnDemand), Some(0.526));
    assert_eq!(g4.arch, "amd64");
    assert_eq!(g4.allocatable, karpenter_allocatable(4, 16384, 29));
    assert_eq!(c.types[1].spot_price, None);
    assert!(c.types[1].mig_supported);
    assert_eq!(c.types[2].spot_price, Some(0.5));
    assert_eq!(c.types[2].memory_mib, 512);
    assert_eq!(c.types[2].gpu_name, "a10g");
    // Same types as the embedded rows (apart from the spot price).
    let e = load();
    let mut g4e = get(&e, "g4dn.xlarge").clone();
    g4e.spot_price = Some(0.2104);
    assert_eq!(&g4e, g4);
    assert_eq!(get(&e, "p4d.24xlarge"), &c.types[1]);
    // CRLF line endings and a BOM are accepted.
    let crlf = format!("\u{feff}{}", text.replace('\n', "\r\n"));
    assert_eq!(parse(&crlf), Ok(c.clone()));
    // Quoted cells are CSV (the one reader, `table::read`): quoted names and numbers,
    // and a quoted comma is part of its cell, not a separator.
    let quoted = text
        .replacen("instance_type", "\"instance_type\"", 1)
        .replace(",4,", ",\"4\",");
    assert_eq!(parse(&quoted), Ok(c));
    let comma = parse(&format!(
        "{MINI_HEADER},notes\n{MINI_ROW},\"from a, b and c\"\n"
    ));
    assert_eq!(comma.map(|c| c.types.len()), Ok(1));
}

#[test]
fn gpu_model_and_memory_parsing() {
    let ok = |row: &str| parse(&mini(row)).unwrap_or_else(|e| panic!("{e}"));
    let c = ok("x1.a,x1,4,0.25,1,NVIDIA RTX PRO 6000,1024,1,8,false");
    assert_eq!(c.types[0].gpu_name, "rtx-pro-6000");
    assert_eq!(c.types[0].memory_mib, 256);
    let c = ok("x1.a,x1,4,0.0009765625,1,Nvidia   L4,1024,1e0,8,false");
    assert_eq!(c.types[0].memory_mib, 1);
    assert_eq!(c.types[0].gpu_name, "l4");
    assert_eq!(c.types[0].gpu_manufacturer, "nvidia");
    assert_eq!(c.types[0].on_demand_price, 1.0);
    let c = ok("x1.a,x1,4,0.50000000000000000000000,1,NVIDIA L4,1024,1,8,false");
    assert_eq!(c.types[0].memory_mib, 512);
    let e = err_of(&mini("x1.a,x1,4,22.35,1,NVIDIA L4,1024,1,8,false"));
    assert_eq!(e.message, "`22.35` GiB is not a whole number of MiB");
    let c = ok("x1.a,x1,4,000016.000,1,NVIDIA L4,1024,1,8,false");
    assert_eq!(c.types[0].memory_mib, 16384);
}

/// (name, input, expected Display of the error)
fn malformed_cases() -> Vec<(&'static str, String, &'static str)> {
    let row = mini;
    vec![
        (
            "gpu_fraction 0",
            format!(
                "{MINI_HEADER},gpu_fraction,gpu_label_count\ng6f.large,g6f,2,8,1,NVIDIA L4,2861,0.202,20,false,0,0\n"
            ),
            "t.csv:2: column `gpu_fraction`: expected a fraction of a GPU in (0, 1] with at most three decimals, such as `0.125`, found `0`",
        ),
        (
            "gpu_fraction above 1",
            format!(
                "{MINI_HEADER},gpu_fraction,gpu_label_count\ng6f.large,g6f,2,8,1,NVIDIA L4,2861,0.202,20,false,1.5,0\n"
            ),
            "t.csv:2: column `gpu_fraction`: expected a fraction of a GPU in (0, 1] with at most three decimals, such as `0.125`, found `1.5`",
        ),
        (
            "gpu_fraction negative",
            format!(
                "{MINI_HEADER},gpu_fraction,gpu_label_count\ng6f.large,g6f,2,8,1,NVIDIA L4,2861,0.202,20,false,-0.5,0\n"
            ),
            "t.csv:2: column `gpu_fraction`: expected a fraction of a GPU in (0, 1] with at most three decimals, such as `0.125`, found `-0.5`",
        ),
        (
            "gpu_fraction too fine",
            format!(
                "{MINI_HEADER},gpu_fraction,gpu_label_count\ng6f.large,g6f,2,8,1,NVIDIA L4,2861,0.202,20,false,0.1234,0\n"
            ),
            "t.csv:2: column `gpu_fraction`: expected a fraction of a GPU in (0, 1] with at most three decimals, such as `0.125`, found `0.1234`",
        ),
        (
            "gpu_fraction below 1 with two GPUs",
            format!(
                "{MINI_HEADER},gpu_fraction,gpu_label_count\ng6f.large,g6f,2,8,2,NVIDIA L4,2861,0.202,20,false,0.5,0\n"
            ),
            "t.csv:2: column `gpu_fraction`: a fraction of a GPU (0.5) needs `gpu_count` 1, found 2",
        ),
        (
            "gpu_label_count above gpu_count",
            format!(
                "{MINI_HEADER},gpu_fraction,gpu_label_count\ng4dn.xlarge,g4dn,4,16,1,NVIDIA T4,16384,0.526,29,false,1,2\n"
            ),
            "t.csv:2: column `gpu_label_count`: 2 is more than `gpu_count` (1)",
        ),
        (
            "empty file",
            String::new(),
            "t.csv:1: empty file: expected a header row",
        ),
        (
            "blank file",
            "\n  \n\r\n".to_string(),
            "t.csv:1: empty file: expected a header row",
        ),
        (
            "missing column",
            "instance_type,family,vcpus\ng4dn.xlarge,g4dn,4\n".to_string(),
            "t.csv:1: column `memory_gib`: missing required column",
        ),
        (
            "header only",
            format!("{MINI_HEADER}\n"),
            "t.csv:1: no data rows after the header",
        ),
        (
            "duplicate header",
            format!("{MINI_HEADER},vcpus\n{MINI_ROW},4\n"),
            "t.csv:1: column `vcpus`: duplicate column header (cells 3 and 11)",
        ),
        (
            "non-numeric vcpus",
            row("g4dn.xlarge,g4dn,four,16,1,NVIDIA T4,16384,0.526,29,false"),
            "t.csv:2: column `vcpus`: expected a whole number, found `four`",
        ),
        (
            "negative vcpus",
            row("g4dn.xlarge,g4dn,-4,16,1,NVIDIA T4,16384,0.526,29,false"),
            "t.csv:2: column `vcpus`: must not be negative, found `-4`",
        ),
        (
            "zero vcpus",
            row("g4dn.xlarge,g4dn,0,16,1,NVIDIA T4,16384,0.526,29,false"),
            "t.csv:2: column `vcpus`: must be greater than 0",
        ),
        (
            "zero gpus",
            row("g4dn.xlarge,g4dn,4,16,0,NVIDIA T4,16384,0.526,29,false"),
            "t.csv:2: column `gpu_count`: must be at least 1 (the catalog lists GPU instance types)",
        ),
        (
            "fractional MiB",
            row("g4dn.xlarge,g4dn,4,16.3,1,NVIDIA T4,16384,0.526,29,false"),
            "t.csv:2: column `memory_gib`: `16.3` GiB is not a whole number of MiB",
        ),
        (
            "negative memory",
            row("g4dn.xlarge,g4dn,4,-16,1,NVIDIA T4,16384,0.526,29,false"),
            "t.csv:2: column `memory_gib`: must not be negative, found `-16`",
        ),
        (
            "exponent memory",
            row("g4dn.xlarge,g4dn,4,1e3,1,NVIDIA T4,16384,0.526,29,false"),
            "t.csv:2: column `memory_gib`: expected a decimal number of GiB such as `16` or `0.5`, found `1e3`",
        ),
        (
            "zero price",
            row("g4dn.xlarge,g4dn,4,16,1,NVIDIA T4,16384,0,29,false"),
            "t.csv:2: column `on_demand_usd_per_hour_us_east_1`: must be a finite price greater than 0, found `0`",
        ),
        (
            "infinite price",
            row("g4dn.xlarge,g4dn,4,16,1,NVIDIA T4,16384,inf,29,false"),
            "t.csv:2: column `on_demand_usd_per_hour_us_east_1`: must be a finite price greater than 0, found `inf`",
        ),
        (
            "NaN price",
            row("g4dn.xlarge,g4dn,4,16,1,NVIDIA T4,16384,NaN,29,false"),
            "t.csv:2: column `on_demand_usd_per_hour_us_east_1`: must be a finite price greater than 0, found `NaN`",
        ),
        (
            "text price",
            row("g4dn.xlarge,g4dn,4,16,1,NVIDIA T4,16384,$0.52,29,false"),
            "t.csv:2: column `on_demand_usd_per_hour_us_east_1`: expected a price in USD per hour, found `$0.52`",
        ),
        (
            "bad bool",
            row("g4dn.xlarge,g4dn,4,16,1,NVIDIA T4,16384,0.526,29,yes"),
            "t.csv:2: column `mig_supported`: expected `true` or `false`, found `yes`",
        ),
        (
            "too few cells",
            row("g4dn.xlarge,g4dn,4,16,1,NVIDIA T4,16384,0.526,29"),
            "t.csv:2: expected 10 cells (as in the header), found 9",
        ),
        (
            "too many cells",
            row("g4dn.xlarge,g4dn,4,16,1,NVIDIA T4,16384,0.526,29,false,"),
            "t.csv:2: expected 10 cells (as in the header), found 11",
        ),
        (
            "duplicate type",
            format!("{MINI_HEADER}\n{MINI_ROW}\n\n{MINI_ROW}\n"),
            "t.csv:4: column `instance_type`: duplicate instance type `g4dn.xlarge` (first on line 2)",
        ),
        (
            "bad instance type",
            row("g4dn,g4dn,4,16,1,NVIDIA T4,16384,0.526,29,false"),
            "t.csv:2: column `instance_type`: expected `<family>.<size>` such as `g4dn.xlarge`, found `g4dn`",
        ),
        (
            "family mismatch",
            row("g4dn.xlarge,g5,4,16,1,NVIDIA T4,16384,0.526,29,false"),
            "t.csv:2: column `family`: `g5` does not match instance type `g4dn.xlarge` (expected `g4dn`)",
        ),
        (
            "gpu model one word",
            row("g4dn.xlarge,g4dn,4,16,1,T4,16384,0.526,29,false"),
            "t.csv:2: column `gpu_model`: expected `<manufacturer> <model>` such as `NVIDIA T4`, found `T4`",
        ),
        (
            "empty cell",
            row("g4dn.xlarge,g4dn,4,16,1,NVIDIA T4,,0.526,29,false"),
            "t.csv:2: column `gpu_memory_mib_per_gpu`: missing value",
        ),
        (
            "overflow",
            row("g4dn.xlarge,g4dn,4294967296,16,1,NVIDIA T4,16384,0.526,29,false"),
            "t.csv:2: column `vcpus`: `4294967296` is out of range (at most 4294967295)",
        ),
        (
            "bad spot",
            format!("{MINI_HEADER},spot_usd_per_hour\n{MINI_ROW},-0.1\n"),
            "t.csv:2: column `spot_usd_per_hour`: must be a finite price greater than 0, found `-0.1`",
        ),
        (
            "header after blank lines",
            format!("\n\n{MINI_HEADER}\ng4dn.xlarge,g4dn,4,16,1,NVIDIA T4,16384,0.526,0,false\n"),
            "t.csv:4: column `eni_max_pods`: must be greater than 0",
        ),
    ]
}

#[test]
fn malformed_inputs_give_exact_errors() {
    let mut failures = Vec::new();
    for (name, text, want) in malformed_cases() {
        match parse(&text) {
            Ok(_) => failures.push(format!("{name}: parsed, want `{want}`")),
            Err(e) if e.to_string() != want => {
                failures.push(format!("{name}:\n   got `{e}`\n  want `{want}`"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn error_fields_and_display() {
    let e = err_of(&mini(
        "g4dn.xlarge,g4dn,4,16,1,NVIDIA T4,16384,0.526,29,maybe",
    ));
    assert_eq!(
        e,
        CatalogError {
            source: SRC.to_string(),
            line: 2,
            column: Some("mig_supported".to_string()),
            message: "expected `true` or `false`, found `maybe`".to_string(),
            cell: Some(Box::new(CellError::NotBool {
                found: "maybe".to_string()
            })),
        }
    );
    assert_eq!(
        e.to_string(),
        format!("{SRC}:2: column `mig_supported`: expected `true` or `false`, found `maybe`")
    );
    let dyn_err: &dyn std::error::Error = &e;
    assert_eq!(
        dyn_err.source().map(ToString::to_string).as_deref(),
        Some("expected `true` or `false`, found `maybe`")
    );
    let e = CatalogError {
        source: "a.csv".into(),
        line: 7,
        column: None,
        message: "boom".into(),
        cell: None,
    };
    assert_eq!(e.to_string(), "a.csv:7: boom");
    let dyn_err: &dyn std::error::Error = &e;
    assert!(dyn_err.source().is_none());
}

#[test]
fn every_required_column_is_required() {
    let (header, rows) = raw_table();
    for name in columns::REQUIRED {
        let drop = col(&header, name);
        let keep = |cells: &[&str]| {
            cells
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .map(|(_, c)| *c)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut text = keep(&header);
        for r in &rows {
            text.push('\n');
            text.push_str(&keep(r));
        }
        let e = err_of(&text);
        assert_eq!(
            (e.line, e.column.as_deref(), e.message.as_str()),
            (1, Some(name), "missing required column"),
            "dropping {name}"
        );
    }
}

/// Parses without panicking; on success the catalog satisfies the loader's invariants.
fn check_no_panic(text: &str) -> Result<(), String> {
    let r = std::panic::catch_unwind(|| parse(text));
    let Ok(r) = r else {
        return Err(format!("panicked on {text:?}"));
    };
    match r {
        Ok(c) => {
            let mut seen = std::collections::HashSet::new();
            for t in &c.types {
                let ok = t.vcpus > 0
                    && t.gpu_count > 0
                    && t.memory_mib > 0
                    && t.max_pods > 0
                    && t.on_demand_price.is_finite()
                    && t.on_demand_price > 0.0
                    && t.spot_price.is_none_or(|p| p.is_finite() && p > 0.0)
                    && t.allocatable
                        == karpenter_allocatable_for_arch(
                            &t.arch,
                            t.vcpus,
                            t.memory_mib,
                            t.max_pods,
                        )
                    && t.name.starts_with(&format!("{}.", t.family))
                    && seen.insert(t.name.clone());
                if !ok {
                    return Err(format!("invariant broken for {t:?} from {text:?}"));
                }
            }
            if c.types.is_empty() {
                return Err(format!("Ok with no types from {text:?}"));
            }
            Ok(())
        }
        Err(e) => {
            if e.source != SRC || e.line == 0 || e.message.is_empty() {
                return Err(format!("odd error {e:?} from {text:?}"));
            }
            Ok(())
        }
    }
}

/// xorshift64*: a deterministic pseudo-random sequence for the mutation fuzz.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

#[test]
fn no_panics_on_malformed_truncated_and_mutated_input() {
    let mut failures = Vec::new();
    let mut check = |t: &str| {
        if let Err(f) = check_no_panic(t) {
            failures.push(f);
        }
    };
    for (_, text, _) in malformed_cases() {
        check(&text);
    }
    for text in [
        ",",
        ",,,\n,,,",
        "\"",
        "\u{feff}",
        "\r",
        "\r\n\r\n",
        "a\nb",
        "é,ü\n1,2",
        "\0",
        "instance_type",
        "💥,💥\n💥,💥",
    ] {
        check(text);
    }
    // Every truncation of the embedded CSV (char boundaries).
    for (i, _) in EMBEDDED_CSV.char_indices() {
        check(&EMBEDDED_CSV[..i]);
        check(&EMBEDDED_CSV[i..]);
    }
    // Mutations: replace, delete, insert, duplicate lines, swap lines.
    const ALPHABET: &[&str] = &[
        ",",
        "\n",
        "\r\n",
        "\"",
        "-",
        ".",
        "0",
        "9",
        "e",
        " ",
        "",
        "true",
        "inf",
        "NaN",
        "99999999999999999999",
        "é",
        "\t",
        "1e400",
        "-0",
        "\u{feff}",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let chars: Vec<char> = EMBEDDED_CSV.chars().collect();
    for _ in 0..3000 {
        let mut v = chars.clone();
        for _ in 0..=rng.below(3) {
            let at = rng.below(v.len() + 1);
            let ins: Vec<char> = ALPHABET[rng.below(ALPHABET.len())].chars().collect();
            match rng.below(3) {
                0 if at < v.len() => {
                    v.splice(at..at + 1, ins);
                }
                1 if at < v.len() => {
                    let end = (at + 1 + rng.below(8)).min(v.len());
                    v.drain(at..end);
                }
                _ => {
                    v.splice(at..at, ins);
                }
            }
        }
        let s: String = v.into_iter().collect();
        check(&s);
        let mut lines: Vec<&str> = s.lines().collect();
        if lines.len() > 2 {
            let (a, b) = (1 + rng.below(lines.len() - 1), rng.below(lines.len()));
            lines.swap(a, b);
            lines.push(lines[a]);
            check(&lines.join("\n"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
}

#[test]
fn daemonset_overhead_remaining() {
    let c = load();
    let t = get(&c, "g4dn.xlarge");
    let ds = DaemonSetOverhead {
        resources: Resources::new(200, 256 * MIB),
        pods: 4,
    };
    let (res, pods) = ds.remaining(t);
    assert_eq!(res, Resources::new(3720, (14481 - 256) * MIB));
    assert_eq!(pods, 25);
    let huge = DaemonSetOverhead {
        resources: Resources::new(u64::MAX, u64::MAX),
        pods: u32::MAX,
    };
    assert_eq!(huge.remaining(t), (Resources::ZERO, 0));
    assert_eq!(
        DaemonSetOverhead::default().remaining(t),
        (t.allocatable, t.max_pods)
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
            prop_assert_eq!(check_no_panic(&s), Ok(()));
        }

        #[test]
        fn arbitrary_rows_under_a_valid_header_never_panic(
            rows in prop::collection::vec("[-a-zA-Z0-9., \"\t]{0,80}", 0..5)
        ) {
            let text = format!("{MINI_HEADER}\n{}", rows.join("\n"));
            prop_assert_eq!(check_no_panic(&text), Ok(()));
        }

        #[test]
        fn whole_and_half_gib_round_trip(gib in 1u64..1_000_000, half in any::<bool>()) {
            let mem = if half { format!("{gib}.5") } else { gib.to_string() };
            let text = mini(&format!("x.y,x,4,{mem},1,NVIDIA T4,16384,1,29,false"));
            let c = parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(c.types[0].memory_mib, gib * 1024 + if half { 512 } else { 0 });
        }
    }
}

#[test]
fn files_without_the_new_columns_load_with_whole_gpus() {
    // A catalog written before `arch`, `gpu_fraction` and `gpu_label_count` existed.
    let c = parse(&mini(MINI_ROW)).expect("loads");
    let t = &c.types[0];
    assert_eq!(
        (t.arch.as_str(), t.gpu_fraction_milli, t.gpu_label_count),
        ("amd64", 1000, 1)
    );
    assert!(!t.is_fractional());
    // Empty cells read as the defaults too; `0.125` and `1.000` are exact.
    let c = parse(&format!(
        "{MINI_HEADER},gpu_fraction,gpu_label_count\n\
         g4dn.12xlarge,g4dn,48,192,4,NVIDIA T4,16384,3.912,234,false,,\n\
         g6f.large,g6f,2,8,1,NVIDIA L4,2861,0.202,20,false,0.125,0\n\
         g6.xlarge,g6,4,16,1,NVIDIA L4,22888,0.8048,58,false,1.000,1\n"
    ))
    .expect("loads");
    let got: Vec<(u32, u32, u32)> = c
        .types
        .iter()
        .map(|t| (t.gpu_count, t.gpu_fraction_milli, t.gpu_label_count))
        .collect();
    assert_eq!(got, [(4, 1000, 4), (1, 125, 0), (1, 1000, 1)]);
    // Karpenter's label follows EC2's count: no GPU on the fractional type.
    assert_eq!(
        c.types[1]
            .label(crate::model::labels::INSTANCE_GPU_COUNT)
            .as_deref(),
        Some("0")
    );
}
