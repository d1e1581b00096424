//! The run's summary: the figures a study reads first, and the parameters that produced them
//! (so that `summary.json` alone says what was run).

use super::client::ClientStats;
use super::scenario::Scenario;
use super::series::Sample;
use serde::Serialize;

/// What a run found. Everything but `wall_seconds` is a function of the scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Successful download attempts over attempts (1 if there were none).
    pub readable_fraction: f64,
    pub download_attempts: u64,
    pub download_successes: u64,
    /// What `readable_fraction` would be with independent nodes each up a fraction A of the
    /// time, no departures and no repair: `P(Binomial(N, A) >= k)`.
    pub binomial_readable_fraction: f64,
    /// The churn model's long-run node availability A.
    pub model_availability: f64,
    /// The mean of the sampled fraction of members up.
    pub observed_availability: f64,
    pub files: u32,
    pub uploads_ok: u64,
    /// Files with fewer than k distinct shares left on members at the end.
    pub files_lost: u32,
    /// Repair traffic: bytes read to rebuild plus bytes of regenerated shares written.
    pub repair_bytes: u64,
    pub repair_download_bytes: u64,
    pub repair_upload_bytes: u64,
    pub repairs: u64,
    pub shares_regenerated: u64,
    pub checks: u64,
    pub unrepairable_checks: u64,
    pub incomplete_repairs: u64,
    /// Shares the storage servers committed during the churn phase (counted by the servers'
    /// stores, independently of the client's repair accounting).
    pub shares_stored_during_churn: u64,
    /// Storage nodes that ever joined (the initial ones and their replacements).
    pub nodes_ever: u32,
    /// Shares per member node at the end: mean, most, coefficient of variation.
    pub final_load_mean: f64,
    pub final_load_max: u64,
    pub final_load_cv: f64,
    /// Events the world acted on (messages, timers, local inputs, churn faults).
    pub events: u64,
    /// The trace digest: equal for equal scenarios.
    pub digest: String,
    pub simulated_days: f64,
    /// Wall-clock seconds the run took (the one field that differs between equal runs).
    pub wall_seconds: f64,
    pub parameters: Scenario,
}

impl Summary {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        scenario: &Scenario,
        stats: &ClientStats,
        last: Option<&Sample>,
        series: &[Sample],
        availability: f64,
        events: u64,
        digest: String,
        nodes_ever: u32,
        shares_stored_during_churn: u64,
        wall_seconds: f64,
    ) -> Self {
        let readable = match stats.download_attempts {
            0 => 1.0,
            n => stats.download_successes as f64 / n as f64,
        };
        let observed =
            series.iter().map(|s| s.availability).sum::<f64>() / series.len().max(1) as f64;
        Summary {
            readable_fraction: readable,
            download_attempts: stats.download_attempts,
            download_successes: stats.download_successes,
            binomial_readable_fraction: binomial_tail(
                scenario.shares_total,
                scenario.shares_needed,
                availability,
            ),
            model_availability: availability,
            observed_availability: observed,
            files: scenario.files,
            uploads_ok: stats.uploads_ok,
            files_lost: last.map_or(0, |s| s.files_lost),
            repair_bytes: stats.repair_download_bytes + stats.repair_upload_bytes,
            repair_download_bytes: stats.repair_download_bytes,
            repair_upload_bytes: stats.repair_upload_bytes,
            repairs: stats.repairs,
            shares_regenerated: stats.shares_regenerated,
            checks: stats.checks,
            unrepairable_checks: stats.unrepairable_checks,
            incomplete_repairs: stats.incomplete_repairs,
            shares_stored_during_churn,
            nodes_ever,
            final_load_mean: last.map_or(0.0, |s| s.load_mean),
            final_load_max: last.map_or(0, |s| s.load_max),
            final_load_cv: last.map_or(0.0, |s| s.load_cv),
            events,
            digest,
            simulated_days: scenario.days,
            wall_seconds,
            parameters: scenario.clone(),
        }
    }
}

impl Summary {
    /// The parameters in one short line, for chart titles.
    pub fn parameters_line(&self) -> String {
        let p = &self.parameters;
        format!(
            "{} nodes, {} files, {}-of-{}, A={:.2}, repair {}",
            p.nodes, p.files, p.shares_needed, p.shares_total, self.model_availability, p.repair
        )
    }
}

/// `P(X >= k)` for `X ~ Binomial(n, p)`.
pub fn binomial_tail(n: u8, k: u8, p: f64) -> f64 {
    let (n, k) = (u32::from(n), u32::from(k));
    let mut total = 0.0;
    let mut choose = 1.0; // C(n, i)
    for i in 0..=n {
        if i >= k {
            total += choose * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32);
        }
        choose = choose * f64::from(n - i) / f64::from(i + 1);
    }
    total.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::binomial_tail;

    #[test]
    fn binomial_tails_of_known_cases() {
        assert!((binomial_tail(1, 1, 0.3) - 0.3).abs() < 1e-12);
        assert!((binomial_tail(2, 1, 0.5) - 0.75).abs() < 1e-12);
        assert!((binomial_tail(10, 0, 0.2) - 1.0).abs() < 1e-12);
        // 3-of-10 at 0.9: 1 - P(X <= 2).
        let low: f64 = (0..=2u32)
            .map(|i| {
                let c = [1.0, 10.0, 45.0][i as usize];
                c * 0.9f64.powi(i as i32) * 0.1f64.powi(10 - i as i32)
            })
            .sum();
        assert!((binomial_tail(10, 3, 0.9) - (1.0 - low)).abs() < 1e-12);
    }
}
