//! How many events per second the engine processes on a simple scenario: every node rallies
//! pings with another. Prints the rate; never asserts on time. The large run is ignored by
//! default: `cargo test --release -p cairn-sim --test throughput -- --ignored --nocapture`.

mod common;

use cairn_sim::actors::{Addr, Service, Time};
use cairn_sim::{NoUser, SimDisk, World, WorldConfig};
use common::*;
use rand::Rng;
use std::time::Instant;

fn rallies(nodes: u32, rally: u64, chaos: bool) {
    let mut world = World::new(
        WorldConfig {
            seed: 1,
            chaos,
            ..WorldConfig::default()
        },
        NoUser,
    );
    let mut rng = world.rng_for("peers");
    for i in 0..nodes {
        let peer = Addr::new(node(rng.gen_range(0..nodes)), Service::Storage);
        world
            .add_node(node(i), SimDisk::new(0), move |_| {
                quiet_pinger(Some(peer), rally)
            })
            .unwrap();
    }
    let started = Instant::now();
    world.run_until_idle();
    let elapsed = started.elapsed().as_secs_f64();
    let c = world.counters();
    assert_eq!(c.messages_delivered, u64::from(nodes) * rally * 2);
    println!(
        "{nodes} nodes, chaos {chaos}: {} events in {elapsed:.3} s = {:.0} events/s \
         (virtual {:?}, digest {})",
        c.events,
        c.events as f64 / elapsed,
        world.now(),
        &world.digest()[..16]
    );
    assert!(world.now() > Time(0));
}

#[test]
fn events_per_second_small() {
    rallies(100, 200, false);
    rallies(100, 200, true);
}

#[test]
#[ignore = "a benchmark: run in release with --ignored --nocapture"]
fn events_per_second_ten_thousand_nodes() {
    rallies(10_000, 200, false);
    rallies(10_000, 50, true);
}
