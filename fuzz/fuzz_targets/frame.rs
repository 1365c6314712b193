//! The master's frame decoder: any bytes decode to a message or an error, with no panic; a
//! decoded snapshot either fits the plan's histograms or is refused, and one that fits merges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmer::dist::wire::{decode, fit, Message};
use swarmer::stats::EndpointStats;

const MAX_US: u64 = 60_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(Message::Stats(mut snapshot)) = decode(data) else { return };
    let endpoints = snapshot.endpoints.len();
    if fit(&mut snapshot, endpoints, MAX_US).is_ok() {
        let mut total = EndpointStats::new(MAX_US);
        for e in &snapshot.endpoints {
            total.merge(e);
        }
        let _ = total.quantile_us(0.99);
    }
});
