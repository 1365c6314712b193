//! Response parsing: head + Content-Length body, and a chunked body, as the client sees them.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use swarmer::http::{parse_head, Body};

const SMALL: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 02:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nHello, World!";

fn chunked() -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        out.extend_from_slice(b"3e8;ext=1\r\n");
        out.extend(std::iter::repeat_n(b'x', 1000));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nX-Checksum: 4000\r\n\r\n");
    out
}

fn parse_all(response: &[u8]) -> u64 {
    let head = parse_head(response, false).unwrap().unwrap();
    let mut body = Body::new(head.framing);
    let progress = body.decode(&response[head.len..]).unwrap();
    assert!(progress.done);
    progress.payload
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("response");
    group.throughput(Throughput::Elements(1));
    group.bench_function("content_length_13B", |b| b.iter(|| parse_all(black_box(SMALL))));
    let chunked = chunked();
    group.bench_function("chunked_4x1000B", |b| b.iter(|| parse_all(black_box(&chunked))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
