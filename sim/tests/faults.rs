//! Faults in a running world: partitions, loss, crashes and restarts over a surviving disk,
//! torn journal writes, bit rot, full disks, and random fault plans.

mod common;

use cairn_sim::actors::store::{Journal, ShareStore};
use cairn_sim::actors::{Addr, Service, ShareNum, Time};
use cairn_sim::network::LinkParams;
use cairn_sim::{
    DropReason, Fault, FaultKind, FaultPlan, FaultRates, NetworkConfig, NoUser, SimDisk, World,
    WorldConfig,
};
use common::*;
use std::time::Duration;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;

fn ticking_pair(config: WorldConfig) -> (World, Log<(Time, u64)>) {
    let mut world = World::new(config, NoUser);
    let pongs = log();
    let sink = pongs.clone();
    let peer = Addr::new(node(1), Service::Storage);
    world
        .add_node(node(0), SimDisk::new(0), move |_| {
            let ticker = Ticker {
                peer,
                pongs: sink.clone(),
                n: 0,
            };
            vec![(Service::Client, Box::new(ticker))]
        })
        .unwrap();
    world
        .add_node(node(1), SimDisk::new(0), |_| pinger(None, 0, log()))
        .unwrap();
    (world, pongs)
}

fn pongs_between(pongs: &Log<(Time, u64)>, from: u64, to: u64) -> usize {
    read(pongs)
        .iter()
        .filter(|(t, _)| t.0 >= from && t.0 < to)
        .count()
}

#[test]
fn a_partition_drops_messages_until_healed() {
    let (mut world, pongs) = ticking_pair(WorldConfig::default());
    let (a, b) = (vec![node(0)], vec![node(1)]);
    world
        .schedule_fault(
            Time(100 * MS),
            Fault::Partition {
                a,
                b,
                one_way: false,
            },
        )
        .unwrap();
    world.schedule_fault(Time(300 * MS), Fault::Heal).unwrap();
    world.run_until(Time(500 * MS));
    assert!(pongs_between(&pongs, 0, 100 * MS) >= 9);
    assert_eq!(pongs_between(&pongs, 102 * MS, 300 * MS), 0);
    assert!(pongs_between(&pongs, 302 * MS, 500 * MS) >= 19);
    assert!(world.counters().dropped(DropReason::Partitioned) >= 19);
    assert_eq!(world.counters().faults_of(FaultKind::Partition), 1);
}

#[test]
fn a_one_way_partition_drops_only_one_direction() {
    let (mut world, pongs) = ticking_pair(WorldConfig::default());
    // Pings get through, pongs do not.
    let (a, b) = (vec![node(1)], vec![node(0)]);
    world
        .schedule_fault(
            Time(0),
            Fault::Partition {
                a,
                b,
                one_way: true,
            },
        )
        .unwrap();
    world.run_until(Time(105 * MS));
    assert_eq!(read(&pongs).len(), 0);
    let c = world.counters();
    assert_eq!(c.dropped(DropReason::Partitioned), c.messages_sent / 2);
}

#[test]
fn a_clock_that_jumps_changes_what_actors_read_but_not_when_timers_fire() {
    let (mut world, pongs) = ticking_pair(WorldConfig::default());
    let hour = 3600 * SEC;
    let jump = |ahead| Fault::SetClock {
        node: node(0),
        ahead,
    };
    world
        .schedule_fault(Time(100 * MS), jump(hour as i64))
        .unwrap();
    world
        .schedule_fault(Time(300 * MS), jump(-(50 * MS as i64)))
        .unwrap();
    world.schedule_fault(Time(400 * MS), jump(0)).unwrap();
    world.run_until(Time(500 * MS));
    let seen = read(&pongs);
    let read_in = |from: u64, to: u64| {
        seen.iter()
            .filter(|(t, _)| (from..to).contains(&t.0))
            .count()
    };
    // The pinger's clock reads an hour ahead, then 50 ms behind, then right; its timers,
    // set for 10 ms each, keep firing every 10 ms all along (one pong a tick).
    assert!(
        (18..=21).contains(&read_in(hour + 100 * MS, hour + 300 * MS)),
        "{seen:?}"
    );
    assert!((8..=11).contains(&read_in(250 * MS, 350 * MS)), "{seen:?}");
    assert_eq!(
        seen.len(),
        50,
        "a tick every 10 ms, whatever the clock says: {seen:?}"
    );
    assert_eq!(world.counters().faults_of(FaultKind::SetClock), 3);
}

#[test]
fn a_degraded_link_loses_and_delays_only_its_own_messages() {
    let (mut world, pongs) = ticking_pair(WorldConfig::default());
    let degrade = |loss, extra| Fault::DegradeLink {
        a: node(1),
        b: node(0),
        loss,
        extra,
    };
    world
        .schedule_fault(Time(100 * MS), degrade(1.0, Duration::ZERO))
        .unwrap();
    world
        .schedule_fault(Time(200 * MS), degrade(0.0, Duration::from_millis(500)))
        .unwrap();
    world
        .schedule_fault(Time(300 * MS), degrade(0.0, Duration::ZERO))
        .unwrap();
    world.run_until(Time(2 * SEC));
    // Cut off; then half a second late (the pings of 200-300 ms arrive at 700-800 ms,
    // when the link is whole again, and their pongs come among the others'); then whole.
    assert!(pongs_between(&pongs, 0, 100 * MS) >= 9);
    assert_eq!(pongs_between(&pongs, 102 * MS, 300 * MS), 0);
    assert!(pongs_between(&pongs, 302 * MS, 400 * MS) >= 9);
    assert!(pongs_between(&pongs, 702 * MS, 800 * MS) >= 18);
    assert!(world.counters().dropped(DropReason::Lost) >= 9);
    assert_eq!(world.counters().faults_of(FaultKind::DegradeLink), 3);
    assert!(world
        .schedule_fault(Time(3 * SEC), degrade(1.5, Duration::ZERO))
        .is_err());
}

#[test]
fn loss_and_duplication_faults_change_what_arrives() {
    let (mut world, pongs) = ticking_pair(WorldConfig::default());
    world
        .schedule_fault(Time(0), Fault::SetLoss { p: 0.5 })
        .unwrap();
    world
        .schedule_fault(Time(SEC), Fault::SetLoss { p: 0.0 })
        .unwrap();
    world
        .schedule_fault(Time(SEC), Fault::SetDuplication { p: 1.0 })
        .unwrap();
    world.run_until(Time(2 * SEC));
    let lossy = pongs_between(&pongs, 0, SEC);
    assert!(
        (10..50).contains(&lossy),
        "about a quarter of 100 rallies: {lossy}"
    );
    let doubled = pongs_between(&pongs, SEC + 5 * MS, 2 * SEC);
    assert!(
        doubled >= 3 * 99,
        "each ping twice, each pong twice: {doubled}"
    );
    assert!(world.counters().messages_duplicated > 0);
    assert!(world
        .schedule_fault(Time(3 * SEC), Fault::SetLoss { p: 1.5 })
        .is_err());
}

#[test]
fn a_delay_spike_and_a_slow_node_delay_messages() {
    let config = WorldConfig {
        network: NetworkConfig {
            link: LinkParams {
                jitter: Duration::ZERO,
                ..LinkParams::default()
            },
            ..NetworkConfig::default()
        },
        ..WorldConfig::default()
    };
    let (mut world, pongs) = ticking_pair(config);
    let spike = Fault::DelaySpike {
        extra: Duration::from_millis(50),
        duration: Duration::from_millis(5),
    };
    world.schedule_fault(Time(100 * MS), spike).unwrap();
    world
        .schedule_fault(
            Time(200 * MS),
            Fault::SlowNode {
                node: node(1),
                factor: 4,
            },
        )
        .unwrap();
    world.run_until(Time(300 * MS));
    let got = read(&pongs);
    // Ping n leaves at 10n ms and normally returns 2 ms later.
    let rtt = |n: u64| {
        got.iter()
            .find(|(_, id)| *id == n)
            .map(|(t, _)| t.0 - n * 10 * MS)
    };
    assert_eq!(rtt(5), Some(2 * MS));
    assert_eq!(
        rtt(10),
        Some(52 * MS),
        "the ping took the spike, the pong did not"
    );
    assert_eq!(rtt(11), Some(2 * MS));
    assert_eq!(rtt(25), Some(8 * MS), "both directions four times slower");
}

fn journaling_node(world: &mut World, disk: &SimDisk, boots: &Log<Boot>) {
    let boots = boots.clone();
    world
        .add_node(node(0), disk.clone(), move |disk| {
            Journaler::set(disk, Duration::from_millis(10), boots.clone())
        })
        .unwrap();
}

#[test]
fn crash_stops_delivery_and_restart_rebuilds_from_the_disk() {
    let mut world = World::new(WorldConfig::default(), NoUser);
    let disk = SimDisk::new(1 << 20);
    let boots = log();
    journaling_node(&mut world, &disk, &boots);
    world
        .add_node(node(1), SimDisk::new(0), |_| pinger(None, 0, log()))
        .unwrap();
    // Ticks at 10, 20, 30 ms: records 0..3; shares 0 and 2 committed, 1 incoming.
    world
        .schedule_fault(Time(35 * MS), Fault::Crash { node: node(0) })
        .unwrap();
    let to_dead = Addr::new(node(0), Service::Vdrive);
    world
        .schedule_input(Time(40 * MS), to_dead, cairn_sim::actors::Input::Start)
        .unwrap();
    world
        .schedule_fault(Time(50 * MS), Fault::Restart { node: node(0) })
        .unwrap();
    world.run_until(Time(55 * MS));
    assert!(world.is_up(node(0)));
    assert_eq!(
        world.counters().inputs_undelivered,
        1,
        "the input to the crashed node"
    );
    let seen = read(&boots);
    assert_eq!(seen.len(), 2);
    let after = &seen[1];
    assert_eq!(after.at, Time(50 * MS));
    assert_eq!(
        after.records,
        vec![b"tick 0".to_vec(), b"tick 1".to_vec(), b"tick 2".to_vec()]
    );
    assert_eq!(after.complete, vec![(ShareNum(0), 16), (ShareNum(2), 16)]);
    assert_eq!(
        after.incoming,
        vec![(SI, ShareNum(1))],
        "a process crash keeps the page cache"
    );

    // Now a power loss: unsynced (incoming) shares vanish; records and committed shares stay.
    world
        .schedule_fault(Time(75 * MS), Fault::LoseUnsyncedWrites { node: node(0) })
        .unwrap();
    world
        .schedule_fault(Time(75 * MS), Fault::Crash { node: node(0) })
        .unwrap();
    world
        .schedule_fault(Time(80 * MS), Fault::Restart { node: node(0) })
        .unwrap();
    world.run_until(Time(85 * MS));
    let seen = read(&boots);
    let last = &seen[2];
    // After the first restart: ticks 3 (60 ms, uncommitted) and 4 (70 ms, committed).
    assert_eq!(last.records.len(), 5);
    assert_eq!(
        last.complete.iter().map(|(s, _)| s.0).collect::<Vec<_>>(),
        vec![0, 2, 4]
    );
    assert_eq!(last.incoming, vec![]);
    assert_eq!(disk.usage().incoming_shares, 0);
}

#[test]
fn messages_to_a_crashed_node_are_dropped_even_after_it_restarts() {
    let (mut world, pongs) = ticking_pair(WorldConfig::default());
    world
        .schedule_fault(Time(95 * MS), Fault::Crash { node: node(1) })
        .unwrap();
    world
        .schedule_fault(Time(200 * MS), Fault::Restart { node: node(1) })
        .unwrap();
    world.run_until(Time(300 * MS));
    assert_eq!(pongs_between(&pongs, 96 * MS, 200 * MS), 0);
    assert!(pongs_between(&pongs, 200 * MS, 300 * MS) >= 9);
    assert!(world.counters().dropped(DropReason::NodeDown) >= 10);
}

#[test]
fn a_torn_write_crashes_the_node_and_its_tail_is_dropped() {
    let mut world = World::new(WorldConfig::default(), NoUser);
    let disk = SimDisk::new(1 << 20);
    let boots = log();
    journaling_node(&mut world, &disk, &boots);
    world
        .schedule_fault(Time(35 * MS), Fault::TornWrite { node: node(0) })
        .unwrap();
    world.run_until(Time(40 * MS));
    assert!(!world.is_up(node(0)));
    let torn = disk.usage().journal_bytes;
    world
        .schedule_fault(Time(50 * MS), Fault::Restart { node: node(0) })
        .unwrap();
    world.run_until(Time(75 * MS));
    let seen = read(&boots);
    assert_eq!(seen[1].records.len(), 3, "the torn tail is not a record");
    assert_eq!(seen[1].incoming, vec![], "a torn write is a power loss");
    assert!(
        disk.usage().journal_bytes < torn + 2 * 16,
        "the tail was cut before appending"
    );
    assert_eq!(
        disk.journal().records().unwrap().len(),
        5,
        "appends after the tear survive"
    );
}

#[test]
fn bit_rot_strikes_committed_shares_only_and_a_full_disk_refuses_writes() {
    let mut world = World::new(WorldConfig::default(), NoUser);
    let disk = SimDisk::new(1 << 20);
    let boots = log();
    journaling_node(&mut world, &disk, &boots);
    world.run_until(Time(25 * MS));
    // Share 0 committed, share 1 incoming; both hold 16 bytes of their number.
    world
        .schedule_fault(
            Time(26 * MS),
            Fault::BitRot {
                node: node(0),
                count: 3,
            },
        )
        .unwrap();
    world
        .schedule_fault(
            Time(26 * MS),
            Fault::DiskFull {
                node: node(0),
                full: true,
            },
        )
        .unwrap();
    world.run_until(Time(27 * MS));
    let mut d = disk.shares();
    let share0 = d.read(SI, ShareNum(0), 0, 16).unwrap();
    let flipped: u32 = share0.iter().map(|b| b.count_ones()).sum();
    assert!(
        flipped == 1 || flipped == 3,
        "3 flips, two may cancel: {flipped}"
    );
    assert_eq!(d.available_bytes().unwrap(), 0);
    assert!(disk.journal().append(b"x").is_err());
    disk.set_full(false);
    d.commit(SI, ShareNum(1)).unwrap();
    assert_eq!(d.read(SI, ShareNum(1), 0, 16).unwrap(), vec![1; 16]);
}

fn plan_world(seed: u64) -> World {
    let config = WorldConfig {
        seed,
        network: NetworkConfig {
            link: LinkParams {
                loss: 0.01,
                duplicate: 0.01,
                reorder: 0.05,
                ..LinkParams::default()
            },
            ..NetworkConfig::default()
        },
        ..WorldConfig::default()
    };
    let mut world = World::new(config, NoUser);
    let ids: Vec<_> = (0..6).map(node).collect();
    for i in 0..6u32 {
        let boots = log();
        let peer = Addr::new(node((i + 1) % 6), Service::Storage);
        world
            .add_node(node(i), SimDisk::new(1 << 20), move |disk| {
                let mut set = Journaler::set(disk, Duration::from_millis(50), boots.clone());
                set.push((
                    Service::Client,
                    Box::new(Ticker {
                        peer,
                        pongs: log(),
                        n: 0,
                    }),
                ));
                set.extend(pinger(None, 0, log()));
                set
            })
            .unwrap();
    }
    let mut plan = FaultPlan::new(Time(0), Time(20 * SEC), ids);
    plan.rates = FaultRates {
        crash: 0.5,
        partition: 0.3,
        loss: 0.3,
        duplication: 0.3,
        delay_spike: 0.3,
        slow_node: 0.3,
        torn_write: 0.2,
        bit_rot: 0.5,
        disk_full: 0.0,
        clock_jump: 0.3,
        degraded_link: 0.3,
    };
    plan.downtime = (Duration::from_millis(100), Duration::from_secs(2));
    plan.duration = (Duration::from_millis(100), Duration::from_secs(3));
    plan.max_down = 2;
    world.schedule_fault_plan(&plan).unwrap();
    world
}

#[test]
fn a_random_fault_plan_runs_deterministically() {
    let mut one = plan_world(11);
    let mut two = plan_world(11);
    let mut other = plan_world(12);
    for world in [&mut one, &mut two, &mut other] {
        world.run_until(Time(21 * SEC));
    }
    assert_eq!(one.digest(), two.digest());
    assert_eq!(one.counters(), two.counters());
    assert_ne!(one.digest(), other.digest());
    let c = one.counters();
    assert!(
        c.faults_of(FaultKind::Crash) + c.faults_of(FaultKind::TornWrite) > 0,
        "{c}"
    );
    assert!(c.messages_dropped() > 0 && c.messages_duplicated > 0, "{c}");
    assert!(one.incidents().is_empty(), "{:?}", one.incidents());
    assert!(
        one.node_ids().all(|n| one.is_up(n)),
        "every crash was followed by a restart"
    );
    println!("fault plan run: {c}");
}
