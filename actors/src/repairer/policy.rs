//! When a check should lead to a repair: the repair policy of a node or a simulation. The
//! caller schedules the checks (periodically, say); the policy reads each [`CheckReport`]
//! and says whether to repair, and to what happiness.

use crate::checker::CheckReport;

/// When to repair a checked file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RepairPolicy {
    /// Never repair.
    #[default]
    Never,
    /// Repair when the file's servers-of-happiness is below the `happy` it was checked for.
    Unhealthy,
    /// Repair when fewer than `threshold` distinct shares are reachable.
    BelowDistinct { threshold: usize },
}

impl RepairPolicy {
    /// The `happy` to give [`crate::local::LocalRequest::Repair`] after a check that found
    /// `report`, or `None` if the policy does not repair it. The target is the report's
    /// `happy`, raised to the threshold where that is higher (so that the repair, which acts
    /// only below its target, does act), and never above `N`.
    pub fn repair_target(&self, report: &CheckReport) -> Option<usize> {
        match *self {
            RepairPolicy::Never => None,
            RepairPolicy::Unhealthy => (!report.healthy).then_some(report.happy),
            RepairPolicy::BelowDistinct { threshold } => (report.distinct_shares < threshold)
                .then_some(report.happy.max(threshold).min(report.n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::StorageIndex;
    use std::collections::BTreeMap;

    fn report(distinct: usize, happiness: usize) -> CheckReport {
        CheckReport {
            storage_index: StorageIndex([0; 16]),
            k: 3,
            n: 10,
            happy: 7,
            holders: BTreeMap::new(),
            distinct_shares: distinct,
            happiness,
            servers_asked: 12,
            servers_answered: 12,
            healthy: happiness >= 7,
            recoverable: distinct >= 3,
            faults: Vec::new(),
            bad_copies: Vec::new(),
            leases_renewed: 0,
        }
    }

    #[test]
    fn each_policy_repairs_what_it_says() {
        assert_eq!(RepairPolicy::Never.repair_target(&report(2, 2)), None);
        assert_eq!(RepairPolicy::Unhealthy.repair_target(&report(10, 7)), None);
        assert_eq!(
            RepairPolicy::Unhealthy.repair_target(&report(10, 6)),
            Some(7)
        );
        let below = |threshold| RepairPolicy::BelowDistinct { threshold };
        assert_eq!(below(9).repair_target(&report(9, 7)), None);
        // Happy enough, but short of the threshold: the target rises so the repair acts.
        assert_eq!(below(9).repair_target(&report(8, 8)), Some(9));
        assert_eq!(below(5).repair_target(&report(4, 4)), Some(7));
        assert_eq!(below(20).repair_target(&report(9, 9)), Some(10));
    }
}
