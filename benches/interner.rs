//! The base's object interner ([`clew::index::flat::FlatInterner`]): 1,000 probes of random
//! known names in a 200,000-name table (a filter's candidates), one by one and batched
//! (`get_many`, whose probes overlap their cache misses); and a build of the table. Asserts the
//! answers before timing. Each iteration probes the next of 200 different candidate lists, so
//! that the probes miss the caches as a server's do (the same 1,000 names again would be
//! answered from L1/L2).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::index::flat::FlatInterner;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const NAMES: u32 = 200_000;
const PROBES: usize = 1000;
const LISTS: usize = 200;

fn names() -> Vec<String> {
    (0..NAMES).map(|i| format!("document:d{i}")).collect()
}

/// Deterministic pseudo-random ids (xorshift), so runs compare.
fn probes() -> Vec<String> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..PROBES * LISTS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("document:d{}", x % u64::from(NAMES))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let names = names();
    let mut t = FlatInterner::default();
    for n in &names {
        t.intern(n).unwrap();
    }
    t.shrink();
    let all = probes();
    let lists: Vec<&[String]> = all.chunks(PROBES).collect();
    let mut out = Vec::new();
    t.get_many(&all, &mut out);
    for (k, id) in all.iter().zip(&out) {
        let id = id.expect("every probe is a known name");
        assert_eq!(t.resolve(id), Some(k.as_str()));
        assert_eq!(t.get(k), Some(id));
    }
    let mut g = c.benchmark_group("interner");
    let mut next = lists.iter().cycle();
    g.bench_function("get, 1000 random of 200k", |b| {
        b.iter(|| {
            let keys = next.next().copied().unwrap_or_default();
            let mut found = 0u32;
            for k in keys {
                found += u32::from(t.get(black_box(k)).is_some());
            }
            assert_eq!(found, PROBES as u32);
        })
    });
    g.bench_function("get_many, 1000 random of 200k", |b| {
        b.iter(|| {
            let keys = next.next().copied().unwrap_or_default();
            t.get_many(black_box(keys), &mut out);
            assert_eq!(out.len(), PROBES);
        })
    });
    g.sample_size(10);
    g.bench_function("intern 200k and shrink", |b| {
        b.iter(|| {
            let mut t = FlatInterner::default();
            for n in &names {
                t.intern(n);
            }
            t.shrink();
            black_box(t.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
