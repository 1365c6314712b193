//! Stats recording on the hot path, and the reporter's per-tick merge.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use swarmer::stats::{CoreStats, EndpointStats, Snapshot};

fn bench(c: &mut Criterion) {
    let max_us = 120_000_000;
    let mut core = CoreStats::new(0, 4, max_us);
    let mut latency = 37u64;
    c.bench_function("record_success", |b| {
        b.iter(|| {
            latency = (latency * 7 + 13) % 50_000;
            core.start(1);
            core.success(black_box(1), black_box(latency), 13);
        })
    });
    let mut a = EndpointStats::new(max_us);
    let mut other = EndpointStats::new(max_us);
    for us in 1..100_000 {
        other.record(us, 13);
    }
    c.bench_function("merge_endpoint", |b| b.iter(|| a.merge(black_box(&other))));
    let mut snapshot = Snapshot::new(0, 4, max_us);
    c.bench_function("reset_snapshot_4_endpoints", |b| b.iter(|| snapshot.reset()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
