//! Byzantine peers cannot grow an honest node's memory without bound: the whole simulated
//! grid's heap (every honest node, and the attackers' own bounded state) is measured by
//! counting allocations, after an hour of attacks and again after eight. Once the tables the
//! attackers fill are at their caps or expiring as fast as they fill (incoming shares: 1,024
//! per node per server, dropped after 30 idle minutes; answers kept at most 10 minutes;
//! one subscription per node; lease journals compacted past twice their live leases), more
//! attack time adds nothing. The bounds are in SECURITY.md.

use cairn::sim::scenario::Scenario;
use peak_alloc::PeakAlloc;
use std::time::Duration;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const MIB: f64 = (1 << 20) as f64;

fn live() -> f64 {
    HEAP.current_usage() as f64 / MIB
}

#[test]
fn hours_of_attacks_leave_the_heap_where_one_hour_left_it() {
    // 10 honest servers, 2 byzantine servers and a byzantine client flooding every second.
    let mut s = Scenario::with_attackers(5, 10, 2, 1);
    let data: Vec<u8> = (0..60_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let cap = s.upload(&data).expect("an upload among attackers").cap;
    let baseline = live();

    s.world.run_for(Duration::from_secs(3600));
    let after_one_hour = live() - baseline;
    s.world.run_for(Duration::from_secs(7 * 3600));
    let after_eight_hours = live() - baseline;
    // And the disks: each honest server's lease journal, compacted as it goes.
    let journal = s
        .storage()
        .iter()
        .map(|&node| {
            s.world
                .disk(node)
                .expect("a storage disk")
                .usage()
                .journal_bytes
        })
        .max()
        .unwrap_or(0);
    let peak = HEAP.peak_usage() as f64 / MIB - baseline;
    let attacks: u64 = s.attacks().attacks.values().sum();
    eprintln!(
        "{attacks} attack messages; heap above the settled grid: {after_one_hour:.2} MiB after 1 h, \
         {after_eight_hours:.2} MiB after 8 h, peak {peak:.2} MiB; largest lease journal {journal} bytes"
    );
    assert!(attacks > 50_000, "the attack ran: {attacks} messages");
    assert!(
        s.attacks().breaches.is_empty(),
        "{:?}",
        s.attacks().breaches
    );
    assert!(
        after_eight_hours <= after_one_hour * 1.25 + 1.0,
        "the heap grew with the attack's length: {after_one_hour:.2} MiB after 1 h, \
         {after_eight_hours:.2} MiB after 8 h"
    );
    assert!(
        peak < 64.0,
        "peak {peak:.2} MiB above the settled grid, bound 64 MiB"
    );
    assert!(
        journal < 100 << 10,
        "a lease journal of {journal} bytes, bound 100 KiB"
    );

    // And the grid still serves.
    let (out, result) = s.download(&cap);
    result.expect("the file downloads after eight hours of attacks");
    assert!(out == data);
}
