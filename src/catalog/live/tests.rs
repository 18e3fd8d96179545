use super::*;
use crate::catalog::{embedded, find, karpenter_allocatable_for_arch};

const NOW: i64 = 1_800_000_000;

fn ec2(name: &str, gpus: u32, gpu: &str, gpu_mib: u64, vcpus: u32, mem_mib: u64) -> Ec2Type {
    Ec2Type {
        name: name.to_string(),
        vcpus,
        memory_mib: mem_mib,
        gpu_count: gpus,
        gpu_name: gpu.to_string(),
        gpu_manufacturer: "NVIDIA".to_string(),
        gpu_memory_mib: gpu_mib,
        gpu_partition_size: None,
        max_enis: 3,
        ipv4_per_eni: 10,
        architectures: vec!["x86_64".to_string()],
    }
}

fn fetched<T>(data: T, age: i64) -> Option<Fetched<T>> {
    Some(Fetched {
        fetched_at: NOW - age,
        data,
    })
}

#[test]
fn eni_max_pods_follows_the_eks_formula() {
    let mut t = ec2("p4d.24xlarge", 8, "A100", 40960, 96, 1_179_648);
    (t.max_enis, t.ipv4_per_eni) = (15, 50);
    assert_eq!(t.eni_max_pods(), 737);
    let g = ec2("g4dn.xlarge", 1, "T4", 16384, 4, 16384);
    assert_eq!(g.eni_max_pods(), 29);
    let mut zero = g.clone();
    zero.ipv4_per_eni = 0;
    assert_eq!(zero.eni_max_pods(), 2, "no underflow");
}

#[test]
fn without_live_data_the_base_catalog_is_unchanged() {
    let base = embedded().expect("catalog");
    let m = merge(&base, &LiveData::new("us-east-1"), NOW, &Ttls::default());
    assert_eq!(m.catalog, base);
    assert!(m.notes.is_empty(), "{:?}", m.notes);
    assert!(m.origins.values().all(|o| o.shape == Origin::Catalog
        && o.on_demand == Origin::Catalog
        && o.zones.is_none()));
    assert!(m.status.iter().all(|s| s.fetched_at.is_none() && !s.stale));
}

#[test]
fn live_shapes_replace_the_base_ones_and_new_sizes_are_added() {
    let base = embedded().expect("catalog");
    let mut g4 = ec2("g4dn.xlarge", 1, "T4", 16384, 4, 16384);
    g4.architectures = vec!["i386".into(), "x86_64".into()];
    let new_size = ec2("g6.96xlarge", 16, "L4", 22888, 384, 1_572_864);
    // A new fractional size, as EC2 reports g6f: a count of 0 and the slice's memory,
    // no partition size: 2861 / 22888 MiB of the catalog's whole L4 = 1/8.
    let fractional = ec2("g6f.8xlarge", 0, "L4", 2861, 32, 131_072);
    // One with a partition size: that is its share.
    let mut partitioned = ec2("g6f.12xlarge", 0, "L4", 5722, 48, 196_608);
    partitioned.gpu_partition_size = Some(0.25);
    // A fraction of a GPU the catalog has no whole one of, and no partition size.
    let unknown_fraction = ec2("g6f.16xlarge", 0, "Z1", 4096, 64, 262_144);
    let amd = Ec2Type {
        gpu_manufacturer: "AMD".into(),
        ..ec2("g5.2xlarge", 1, "Radeon", 8192, 8, 32768)
    };
    let unknown_family = ec2("g3.4xlarge", 1, "M60", 8192, 16, 124_928);
    let live = LiveData {
        region: "eu-west-1".into(),
        instances: fetched(
            vec![
                g4,
                new_size,
                fractional,
                partitioned,
                unknown_fraction,
                amd,
                unknown_family,
            ],
            60,
        ),
        on_demand: fetched(
            BTreeMap::from([
                ("g6.96xlarge".to_string(), 26.0),
                ("g6f.8xlarge".to_string(), 1.9),
                ("g6f.12xlarge".to_string(), 2.8),
            ]),
            60,
        ),
        ..LiveData::default()
    };
    let m = merge(&base, &live, NOW, &Ttls::default());
    let names: Vec<&str> = m.catalog.types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["g4dn.xlarge", "g6.96xlarge", "g6f.12xlarge", "g6f.8xlarge"],
        "{:?}",
        m.notes
    );
    for (name, share) in [("g6f.8xlarge", 125), ("g6f.12xlarge", 250)] {
        let f = find(&m.catalog, name).expect(name);
        assert_eq!(
            (f.gpu_count, f.gpu_label_count, f.gpu_fraction_milli),
            (1, 0, share),
            "{name}"
        );
        assert!(f.is_fractional());
        assert_eq!(
            f.label(crate::model::labels::INSTANCE_GPU_COUNT).as_deref(),
            Some("0")
        );
    }

    let t = find(&m.catalog, "g4dn.xlarge").expect("g4dn.xlarge");
    assert_eq!(
        (t.max_pods, t.arch.as_str(), t.gpu_name.as_str()),
        (29, "amd64", "t4")
    );
    assert_eq!(
        t.allocatable,
        karpenter_allocatable_for_arch("amd64", 4, 16384, 29)
    );
    // The base price stays where the Pricing API gave none, and says so.
    let base_g4 = find(&base, "g4dn.xlarge").expect("base");
    assert_eq!(t.on_demand_price, base_g4.on_demand_price);
    assert_eq!(m.origins["g4dn.xlarge"].on_demand, Origin::Catalog);
    assert!(matches!(
        m.origins["g4dn.xlarge"].shape,
        Origin::Live {
            age_seconds: 60,
            stale: false,
            ..
        }
    ));

    let n = find(&m.catalog, "g6.96xlarge").expect("new size");
    assert_eq!(
        (n.gpu_count, n.on_demand_price, n.family.as_str()),
        (16, 26.0, "g6")
    );
    assert!(!n.mig_supported, "L4 has no MIG");

    let notes = m.notes.join("\n");
    assert!(
        notes.contains("g6f.16xlarge: a fractional GPU of unknown size"),
        "{notes}"
    );
    assert!(
        notes.contains("not returned by DescribeInstanceTypes in eu-west-1"),
        "{notes}"
    );
    assert!(notes.contains("p5.48xlarge"), "{notes}");
    assert!(
        !notes.contains("g3.4xlarge"),
        "unknown families are not planned, silently: {notes}"
    );
}

#[test]
fn offerings_drop_types_and_bound_spot_prices_to_offered_zones() {
    let base = embedded().expect("catalog");
    let zones = |z: &[&str]| z.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let offerings = BTreeMap::from([
        (
            "g4dn.xlarge".to_string(),
            zones(&["us-east-1a", "us-east-1b"]),
        ),
        ("g5.xlarge".to_string(), zones(&["us-east-1c"])),
        ("g6.xlarge".to_string(), BTreeSet::new()),
    ]);
    let spot = BTreeMap::from([
        (
            "g4dn.xlarge".to_string(),
            BTreeMap::from([
                ("us-east-1a".to_string(), 0.30),
                ("us-east-1b".to_string(), 0.25),
                // Not offered there: ignored even though cheapest.
                ("us-east-1f".to_string(), 0.01),
            ]),
        ),
        (
            "g5.xlarge".to_string(),
            BTreeMap::from([("us-east-1c".to_string(), f64::NAN)]),
        ),
    ]);
    let live = LiveData {
        region: "us-east-1".into(),
        offerings: fetched(offerings, 10),
        spot: fetched(spot, 10),
        ..LiveData::default()
    };
    let m = merge(&base, &live, NOW, &Ttls::default());
    let names: Vec<&str> = m.catalog.types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["g4dn.xlarge", "g5.xlarge"]);
    assert_eq!(
        find(&m.catalog, "g4dn.xlarge").and_then(|t| t.spot_price),
        Some(0.25)
    );
    assert_eq!(
        m.origins["g4dn.xlarge"]
            .zones
            .as_deref()
            .map(<[String]>::len),
        Some(2)
    );
    // A NaN price is not a price.
    assert_eq!(
        find(&m.catalog, "g5.xlarge").and_then(|t| t.spot_price),
        None
    );
    assert_eq!(m.origins["g5.xlarge"].spot, None);
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("not offered") && n.contains("g6.xlarge"))
    );
    assert!(
        m.catalog.source.name.contains("spot 1/2"),
        "{}",
        m.catalog.source.name
    );
}

#[test]
fn live_on_demand_prices_win_and_unpriced_new_types_are_dropped() {
    let base = embedded().expect("catalog");
    let live = LiveData {
        region: "us-west-2".into(),
        instances: fetched(
            vec![
                ec2("g5.xlarge", 1, "A10G", 22888, 4, 16384),
                ec2("g5.96xlarge", 16, "A10G", 22888, 384, 1_572_864),
            ],
            0,
        ),
        on_demand: fetched(
            BTreeMap::from([
                ("g5.xlarge".to_string(), 1.1),
                ("g5.96xlarge".to_string(), 0.0),
            ]),
            0,
        ),
        ..LiveData::default()
    };
    let m = merge(&base, &live, NOW, &Ttls::default());
    let names: Vec<&str> = m.catalog.types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["g5.xlarge"]);
    assert_eq!(m.catalog.types[0].on_demand_price, 1.1);
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("no on-demand price") && n.contains("g5.96xlarge")),
        "{:?}",
        m.notes
    );
    assert_eq!(
        m.catalog.source.name,
        "live AWS us-west-2 (on-demand 1/1 types, spot 0/1)"
    );
}

#[test]
fn stale_data_is_used_and_flagged() {
    let base = embedded().expect("catalog");
    let ttls = Ttls::default();
    let live = LiveData {
        region: "us-east-1".into(),
        on_demand: fetched(
            BTreeMap::from([("g4dn.xlarge".to_string(), 0.6)]),
            ttls.on_demand + 5,
        ),
        spot: fetched(
            BTreeMap::from([(
                "g4dn.xlarge".to_string(),
                BTreeMap::from([("us-east-1a".to_string(), 0.2)]),
            )]),
            ttls.spot - 1,
        ),
        ..LiveData::default()
    };
    assert!(live.needs_refresh(DataKind::OnDemandPrices, NOW, &ttls));
    assert!(!live.needs_refresh(DataKind::SpotPrices, NOW, &ttls));
    assert!(
        live.needs_refresh(DataKind::InstanceTypes, NOW, &ttls),
        "never fetched"
    );
    let m = merge(&base, &live, NOW, &ttls);
    let t = find(&m.catalog, "g4dn.xlarge").expect("kept");
    assert_eq!((t.on_demand_price, t.spot_price), (0.6, Some(0.2)));
    assert!(matches!(
        m.origins["g4dn.xlarge"].on_demand,
        Origin::Live { stale: true, .. }
    ));
    assert!(matches!(
        m.origins["g4dn.xlarge"].spot,
        Some(Origin::Live { stale: false, .. })
    ));
    let od = m
        .status
        .iter()
        .find(|s| s.kind == DataKind::OnDemandPrices)
        .expect("status");
    assert!(od.stale);
    assert_eq!(od.age_seconds, Some(ttls.on_demand + 5));
    // Mixed sources say both dates.
    assert!(
        m.catalog.source.observed.contains("catalog 2026-07-20"),
        "{}",
        m.catalog.source.observed
    );
}

#[test]
fn live_data_round_trips_through_json() {
    let live = LiveData {
        region: "us-east-1".into(),
        instances: fetched(vec![ec2("g4dn.xlarge", 1, "T4", 16384, 4, 16384)], 1),
        on_demand: fetched(BTreeMap::from([("g4dn.xlarge".to_string(), 0.526)]), 2),
        ..LiveData::default()
    };
    let text = serde_json::to_string(&live).expect("json");
    let back: LiveData = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, live);
}

/// A price-list entry in the shape `GetProducts` returns (values made up).
fn price_doc(instance_type: &str, capacitystatus: &str, usd: &str) -> String {
    serde_json::json!({
        "product": {
            "productFamily": "Compute Instance",
            "attributes": {
                "servicecode": "AmazonEC2",
                "instanceType": instance_type,
                "operatingSystem": "Linux",
                "tenancy": "Shared",
                "preInstalledSw": "NA",
                "capacitystatus": capacitystatus,
                "marketoption": "OnDemand",
                "regionCode": "us-east-1",
                "usagetype": format!("BoxUsage:{instance_type}")
            },
            "sku": "ABC"
        },
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {"ABC.JRTCKXETXF": {
            "priceDimensions": {"ABC.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "pricePerUnit": {"USD": usd}
            }},
            "sku": "ABC", "offerTermCode": "JRTCKXETXF"
        }}}
    })
    .to_string()
}

/// [`parse_price_item`] with its error as text.
fn price_item(text: &str, region: &str) -> Result<Option<(String, f64)>, String> {
    parse_price_item(text, region).map_err(|e| e.to_string())
}

#[test]
fn price_items_parse_and_foreign_ones_are_skipped() {
    assert_eq!(
        price_item(
            &price_doc("g4dn.xlarge", "Used", "0.5260000000"),
            "us-east-1"
        ),
        Ok(Some(("g4dn.xlarge".to_string(), 0.526)))
    );
    // Unused capacity reservations and other regions are not the on-demand price.
    assert_eq!(
        price_item(
            &price_doc("g4dn.xlarge", "UnusedCapacityReservation", "0.526"),
            "us-east-1"
        ),
        Ok(None)
    );
    assert_eq!(
        price_item(&price_doc("g4dn.xlarge", "Used", "0.526"), "eu-west-1"),
        Ok(None)
    );
    assert_eq!(
        price_item(
            &price_doc("g4dn.xlarge", "Used", "0.0000000000"),
            "us-east-1"
        ),
        Ok(None)
    );
    let e = price_item(&price_doc("g4dn.xlarge", "Used", "cheap"), "us-east-1")
        .expect_err("bad number");
    assert!(
        e.contains("terms.OnDemand.ABC.JRTCKXETXF.priceDimensions.ABC.JRTCKXETXF.6YS6EN2CT7.pricePerUnit.USD"),
        "{e}"
    );
    assert!(
        price_item("{", "us-east-1")
            .expect_err("not json")
            .contains("not JSON")
    );
    let no_terms = r#"{"product":{"attributes":{"instanceType":"g5.xlarge"}}}"#;
    assert_eq!(
        price_item(no_terms, "us-east-1"),
        Err("missing terms.OnDemand".to_string())
    );
    let no_type = r#"{"product":{"attributes":{"operation":"RunInstances"}},"terms":{}}"#;
    assert_eq!(price_item(no_type, "us-east-1"), Ok(None));
}

#[test]
fn price_item_errors_keep_the_parser_error() {
    use std::error::Error as _;
    let e = parse_price_item(&price_doc("g4dn.xlarge", "Used", "cheap"), "us-east-1")
        .expect_err("bad number");
    assert_eq!(
        e.to_string(),
        "terms.OnDemand.ABC.JRTCKXETXF.priceDimensions.ABC.JRTCKXETXF.6YS6EN2CT7.pricePerUnit.USD: \"cheap\" is not a number"
    );
    assert!(
        e.source()
            .is_some_and(|s| s.is::<std::num::ParseFloatError>())
    );
    let e = parse_price_item("{", "us-east-1").expect_err("not JSON");
    assert!(e.to_string().starts_with("not JSON: "), "{e}");
    assert!(e.source().is_some_and(|s| s.is::<serde_json::Error>()));
    let e = parse_price_item("{}", "us-east-1").expect_err("no attributes");
    assert_eq!(e.to_string(), "missing product.attributes");
    assert!(e.source().is_none());
    let attrs = serde_json::json!({"regionCode": "eu-west-1", "tenancy": "Shared"});
    let attrs = attrs.as_object().expect("an object");
    assert_eq!(
        attribute_matches(attrs, "us-east-1").map_err(|e| e.to_string()),
        Err("attribute regionCode is \"eu-west-1\", not \"us-east-1\"".to_string())
    );
    assert_eq!(attribute_matches(attrs, "eu-west-1"), Ok(()));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever AWS answers, the merge keeps to known families, prices every type with
    /// a usable price, and never panics.
    #[test]
    fn merge_output_is_always_plannable(
        picks in proptest::collection::vec((0usize..38, 0u32..9, 0u64..100_000, proptest::num::f64::ANY, proptest::bool::ANY), 0..40),
        with_instances in proptest::bool::ANY,
        with_offerings in proptest::bool::ANY,
        age in 0i64..200_000,
    ) {
        let base = embedded().expect("catalog");
        let mut instances = Vec::new();
        let mut od = BTreeMap::new();
        let mut offerings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (i, gpus, gpu_mib, price, offered) in &picks {
            let b = &base.types[*i];
            let name = if *gpus == 7 { format!("{}.huge", b.family) } else { b.name.clone() };
            instances.push(ec2(&name, *gpus, &b.gpu_name, *gpu_mib, b.vcpus, b.memory_mib));
            od.insert(name.clone(), *price);
            if *offered {
                offerings.entry(name).or_default().insert("z1".to_string());
            }
        }
        let live = LiveData {
            region: "r".into(),
            instances: if with_instances { fetched(instances, age) } else { None },
            offerings: if with_offerings { fetched(offerings.clone(), age) } else { None },
            on_demand: fetched(od, age),
            spot: None,
        };
        let m = merge(&base, &live, NOW, &Ttls::default());
        let families: BTreeSet<&str> = base.types.iter().map(|t| t.family.as_str()).collect();
        for t in &m.catalog.types {
            proptest::prop_assert!(families.contains(t.family.as_str()));
            proptest::prop_assert!(t.on_demand_price.is_finite() && t.on_demand_price > 0.0);
            proptest::prop_assert!(t.gpu_count > 0 && t.gpu_memory_mib > 0);
            proptest::prop_assert!(m.origins.contains_key(&t.name));
            if with_offerings {
                proptest::prop_assert!(offerings.get(&t.name).is_some_and(|z| !z.is_empty()));
            }
        }
    }
}
