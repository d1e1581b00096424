//! What a research run simulates: the mesh, the files, the churn and failure models, the
//! repair policy and the workload, as one [`Scenario`] (read from TOML or built from flags).

use cairn_actors::repairer::RepairPolicy;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Hours in a day, for the many parameters given in hours or days.
pub const HOUR: f64 = 3600.0;
/// Seconds in a day.
pub const DAY: f64 = 24.0 * HOUR;

/// One research run. Every field has a default, so a TOML file names only what it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Storage nodes at the start.
    pub nodes: u32,
    /// Files uploaded at the start.
    pub files: u32,
    /// k: shares needed to read a file.
    pub shares_needed: u8,
    /// N: shares made of each file.
    pub shares_total: u8,
    /// H: servers that must hold distinct shares for an upload to succeed.
    pub shares_happy: u8,
    /// Each file's size in bytes (its shares are `ceil(size / k)` bytes, synthetic).
    pub file_size: u64,
    /// Simulated days of churn after the uploads.
    pub days: f64,
    /// The seed every random choice is drawn from.
    pub seed: u64,
    /// Download attempts of random files at random times over the run (0: as many as files).
    pub downloads: u64,
    /// Transient on/off churn of each node.
    pub churn: Churn,
    /// Permanent departures and replacement arrivals.
    pub departures: Departures,
    /// Correlated failures: zones (racks) whose nodes all go down together.
    pub zones: Zones,
    /// Whether and when files are repaired.
    pub repair: Repair,
    /// How often each file is checked for repair, in hours (checks are spread evenly).
    pub repair_interval_hours: f64,
    /// Each node's bandwidth for repair traffic, bytes per second (0: unlimited).
    pub repair_bandwidth: u64,
    /// Servers asked at once when looking for a file's shares (0: 2N).
    pub search_width: u32,
    /// Time-series samples over the run.
    pub samples: u32,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            nodes: 100,
            files: 1000,
            shares_needed: 3,
            shares_total: 10,
            shares_happy: 7,
            file_size: 1 << 20,
            days: 30.0,
            seed: 0,
            downloads: 0,
            churn: Churn::default(),
            departures: Departures::default(),
            zones: Zones::default(),
            repair: Repair::None,
            // Weekly, as a deep-check-and-repair job might run.
            repair_interval_hours: 168.0,
            repair_bandwidth: 0,
            search_width: 0,
            samples: 120,
        }
    }
}

/// How a node comes and goes while it is a member of the mesh.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum Churn {
    /// Always up.
    None,
    /// Up a fraction `p` of the time, with exponential up and down periods whose means add
    /// up to `cycle_hours`.
    Availability { p: f64, cycle_hours: f64 },
    /// Exponential up and down periods with these means.
    Exponential {
        mean_up_hours: f64,
        mean_down_hours: f64,
    },
    /// Weibull up and down periods (shape below 1: heavy-tailed, as measured in real
    /// peer-to-peer systems).
    Weibull {
        up_shape: f64,
        up_scale_hours: f64,
        down_shape: f64,
        down_scale_hours: f64,
    },
}

impl Default for Churn {
    fn default() -> Self {
        Churn::Availability {
            p: 0.9,
            cycle_hours: 24.0,
        }
    }
}

/// Permanent departures: each node leaves for good after an exponential lifetime, taking its
/// shares with it; a new, empty node may replace it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Departures {
    /// Mean node lifetime in days (0: nodes never leave).
    pub mean_lifetime_days: f64,
    /// Whether each departed node is replaced by a new one.
    pub replace: bool,
    /// How long after a departure its replacement arrives, in hours.
    pub replacement_delay_hours: f64,
}

impl Default for Departures {
    fn default() -> Self {
        Departures {
            mean_lifetime_days: 0.0,
            replace: true,
            replacement_delay_hours: 1.0,
        }
    }
}

/// Correlated failures: nodes sit in `count` zones (node i in zone i mod count); each zone
/// fails now and then, taking all its nodes down for the outage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Zones {
    /// Zones (0: no correlated failures).
    pub count: u32,
    /// Mean time between one zone's outages, in days.
    pub mean_days_between_outages: f64,
    /// Mean outage length (exponential), in hours.
    pub mean_outage_hours: f64,
}

impl Default for Zones {
    fn default() -> Self {
        Zones {
            count: 0,
            mean_days_between_outages: 30.0,
            mean_outage_hours: 4.0,
        }
    }
}

/// The repair policy: `none`; `threshold:R` — repair a file whose check finds fewer than R
/// distinct shares; or `unhealthy` — repair a file whose check finds its servers-of-happiness
/// below H. A repair regenerates every missing share. The decision is the actors'
/// [`RepairPolicy`], the one a node's checker and repairer use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    None,
    Threshold(u8),
    Unhealthy,
}

impl Repair {
    /// The actors' policy this names.
    pub fn policy(self) -> RepairPolicy {
        match self {
            Repair::None => RepairPolicy::Never,
            Repair::Threshold(r) => RepairPolicy::BelowDistinct {
                threshold: usize::from(r),
            },
            Repair::Unhealthy => RepairPolicy::Unhealthy,
        }
    }
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::None => f.write_str("none"),
            Repair::Threshold(r) => write!(f, "threshold:{r}"),
            Repair::Unhealthy => f.write_str("unhealthy"),
        }
    }
}

impl FromStr for Repair {
    type Err = ScenarioError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ScenarioError::Repair(s.to_string());
        match s {
            "none" => return Ok(Repair::None),
            "unhealthy" => return Ok(Repair::Unhealthy),
            _ => {}
        }
        let r = s.strip_prefix("threshold:").ok_or_else(bad)?;
        r.parse().map(Repair::Threshold).map_err(|_| bad())
    }
}

impl Serialize for Repair {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Repair {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A scenario that cannot be run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    #[error(
        "repair policy {0:?} is not `none`, `unhealthy` or `threshold:R` (R a number of shares)"
    )]
    Repair(String),
    #[error("{0}")]
    Invalid(String),
}

impl Scenario {
    /// Checks that the scenario can run; the message says which parameter to change.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let (k, n, h) = (self.shares_needed, self.shares_total, self.shares_happy);
        let check = |ok: bool, msg: String| {
            if ok {
                Ok(())
            } else {
                Err(ScenarioError::Invalid(msg))
            }
        };
        check(
            1 <= k && k <= h && h <= n,
            format!("shares need 1 <= needed ({k}) <= happy ({h}) <= total ({n})"),
        )?;
        check(
            u32::from(n) <= self.nodes,
            format!(
                "{} nodes cannot hold {n} shares on distinct servers: use --nodes >= {n}",
                self.nodes
            ),
        )?;
        check(self.files > 0, "there must be at least one file".into())?;
        check(
            self.file_size > 0,
            "files must have at least one byte".into(),
        )?;
        check(
            self.days.is_finite() && self.days > 0.0,
            format!("days must be positive, not {}", self.days),
        )?;
        check(self.samples >= 2, "take at least 2 samples".into())?;
        check(
            self.repair_interval_hours > 0.0,
            "the repair interval must be positive".into(),
        )?;
        if let Repair::Threshold(r) = self.repair {
            check(
                k < r && r <= n,
                format!("repair threshold {r} must be above needed ({k}) and at most total ({n})"),
            )?;
        }
        self.churn.validate()?;
        let d = &self.departures;
        check(
            d.mean_lifetime_days >= 0.0 && d.replacement_delay_hours >= 0.0,
            "departure parameters must not be negative".into(),
        )?;
        let z = &self.zones;
        check(
            z.count == 0 || (z.mean_days_between_outages > 0.0 && z.mean_outage_hours > 0.0),
            "zone outage intervals and lengths must be positive".into(),
        )
    }

    /// Servers asked at once when looking for shares.
    pub fn search_width(&self) -> usize {
        match self.search_width {
            0 => 2 * usize::from(self.shares_total),
            w => w.max(u32::from(self.shares_total)) as usize,
        }
    }

    /// Download attempts over the run.
    pub fn download_attempts(&self) -> u64 {
        match self.downloads {
            0 => u64::from(self.files),
            d => d,
        }
    }

    /// Each share's (synthetic) size.
    pub fn share_size(&self) -> u64 {
        self.file_size
            .div_ceil(u64::from(self.shares_needed.max(1)))
    }
}

impl Churn {
    fn validate(&self) -> Result<(), ScenarioError> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let ok = match *self {
            Churn::None => true,
            Churn::Availability { p, cycle_hours } => {
                (0.0..=1.0).contains(&p) && positive(cycle_hours)
            }
            Churn::Exponential {
                mean_up_hours,
                mean_down_hours,
            } => positive(mean_up_hours) && positive(mean_down_hours),
            Churn::Weibull {
                up_shape,
                up_scale_hours,
                down_shape,
                down_scale_hours,
            } => [up_shape, up_scale_hours, down_shape, down_scale_hours]
                .into_iter()
                .all(positive),
        };
        if ok {
            Ok(())
        } else {
            Err(ScenarioError::Invalid(format!(
                "churn {self:?}: availability must be within 0 and 1, durations and shapes positive"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_policies_parse_and_print() {
        assert_eq!("none".parse::<Repair>(), Ok(Repair::None));
        assert_eq!("threshold:7".parse::<Repair>(), Ok(Repair::Threshold(7)));
        assert_eq!(Repair::Threshold(7).to_string(), "threshold:7");
        assert_eq!("unhealthy".parse::<Repair>(), Ok(Repair::Unhealthy));
        for bad in ["", "threshold:", "threshold:x", "always", "threshold:300"] {
            assert!(bad.parse::<Repair>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_scenarios_are_refused_with_a_reason() {
        assert!(Scenario::default().validate().is_ok());
        let cases = [
            Scenario {
                shares_needed: 0,
                ..Scenario::default()
            },
            Scenario {
                shares_happy: 11,
                ..Scenario::default()
            },
            Scenario {
                nodes: 5,
                ..Scenario::default()
            },
            Scenario {
                days: -1.0,
                ..Scenario::default()
            },
            Scenario {
                repair: Repair::Threshold(2),
                ..Scenario::default()
            },
            Scenario {
                churn: Churn::Availability {
                    p: 1.5,
                    cycle_hours: 24.0,
                },
                ..Scenario::default()
            },
        ];
        for s in cases {
            assert!(s.validate().is_err(), "{s:?}");
        }
    }
}
