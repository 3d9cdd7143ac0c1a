//! Scheduled backups (pure): when the next one is due, what it is named,
//! and which old ones retention deletes.

use crate::crd::{BackupPhase, Retention};
use croner::Cron;
use k8s_openapi::jiff::{tz::TimeZone, Timestamp};
use std::str::FromStr;
use std::time::Duration;

/// Parses a five-field cron schedule (UTC).
pub fn parse(schedule: &str) -> Result<Cron, String> {
    Cron::from_str(schedule).map_err(|e| format!("schedule {schedule:?}: {e}"))
}

/// The latest fire time in `(since, now]`, if any: the run that is due.
/// Runs missed while the operator was down collapse into this one.
pub fn due(cron: &Cron, since: Timestamp, now: Timestamp) -> Option<Timestamp> {
    let at = cron
        .find_previous_occurrence(&now.to_zoned(TimeZone::UTC), true)
        .ok()?
        .timestamp();
    (at > since).then_some(at)
}

/// The first fire time after `t`.
pub fn next_after(cron: &Cron, t: Timestamp) -> Option<Timestamp> {
    cron.find_next_occurrence(&t.to_zoned(TimeZone::UTC), false)
        .ok()
        .map(|z| z.timestamp())
}

/// The EtcdBackup a run at `at` creates: `CLUSTER-YYYYMMDD-HHMMSS` (the same
/// name whoever creates it, so a run is never made twice).
pub fn backup_name(cluster: &str, at: Timestamp) -> String {
    format!("{cluster}-{}", at.strftime("%Y%m%d-%H%M%S"))
}

/// `90m`, `36h`, `7d` (also `s`).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let bad = || format!("maxAge {text:?}: want a number and s, m, h or d (e.g. 7d)");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n * secs))
}

/// A scheduled backup as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Made {
    pub name: String,
    pub phase: BackupPhase,
    pub created: Timestamp,
}

/// Failed runs kept for inspection.
const FAILED_KEPT: usize = 3;

/// The scheduled backups retention deletes: succeeded ones beyond `count`
/// and older than `maxAge` (the newest success always stays), and failed
/// ones beyond the newest few. Running ones are left alone.
pub fn expired(made: &[Made], retention: &Retention, now: Timestamp) -> Vec<String> {
    let max_age = retention.max_age.as_deref().and_then(|a| parse_age(a).ok());
    let mut newest_first = made.to_vec();
    newest_first.sort_by_key(|m| std::cmp::Reverse(m.created));
    let mut out = Vec::new();
    let mut kept = 0usize;
    let mut failed = 0usize;
    for m in newest_first {
        match m.phase {
            BackupPhase::Succeeded => {
                kept += 1;
                let too_many = retention.count.is_some_and(|c| kept > c.max(1) as usize);
                let too_old = max_age.is_some_and(|age| {
                    now.duration_since(m.created).as_secs_f64() > age.as_secs_f64()
                });
                if kept > 1 && (too_many || too_old) {
                    out.push(m.name);
                }
            }
            BackupPhase::Failed => {
                failed += 1;
                if failed > FAILED_KEPT {
                    out.push(m.name);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_due_run_is_the_latest_fire_time_since_the_last() {
        let hourly = parse("0 * * * *").unwrap();
        let since = t("2026-12-03T05:00:00Z");
        assert_eq!(due(&hourly, since, t("2026-12-03T05:59:59Z")), None);
        assert_eq!(
            due(&hourly, since, t("2026-12-03T06:00:00Z")),
            Some(t("2026-12-03T06:00:00Z"))
        );
        // Three missed runs make one.
        assert_eq!(
            due(&hourly, since, t("2026-12-03T08:30:00Z")),
            Some(t("2026-12-03T08:00:00Z"))
        );
        assert_eq!(
            next_after(&hourly, t("2026-12-03T08:30:00Z")),
            Some(t("2026-12-03T09:00:00Z"))
        );
        assert!(parse("every hour").is_err());
        assert_eq!(
            backup_name("demo", t("2026-12-03T08:00:00Z")),
            "demo-20261203-080000"
        );
    }

    #[test]
    fn ages_parse_with_units() {
        assert_eq!(parse_age("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert!(parse_age("7 days").is_err());
        assert!(parse_age("").is_err());
    }

    #[test]
    fn retention_keeps_the_newest_by_count_and_age_and_never_the_last_success() {
        let made = |name: &str, phase, at: &str| Made {
            name: name.into(),
            phase,
            created: t(at),
        };
        use BackupPhase::*;
        let all = vec![
            made("b1", Succeeded, "2026-12-01T00:00:00Z"),
            made("b2", Succeeded, "2026-12-02T00:00:00Z"),
            made("b3", Failed, "2026-12-02T12:00:00Z"),
            made("b4", Succeeded, "2026-12-03T00:00:00Z"),
            made("b5", Running, "2026-12-03T01:00:00Z"),
        ];
        let now = t("2026-12-03T02:00:00Z");
        let by_count = Retention {
            count: Some(2),
            max_age: None,
        };
        assert_eq!(expired(&all, &by_count, now), vec!["b1".to_string()]);
        let by_age = Retention {
            count: None,
            max_age: Some("36h".into()),
        };
        assert_eq!(expired(&all, &by_age, now), vec!["b1".to_string()]);
        // Everything too old: the newest success still stays.
        let late = t("2026-12-30T00:00:00Z");
        assert_eq!(
            expired(&all, &by_age, late),
            vec!["b2".to_string(), "b1".to_string()]
        );
        let failures: Vec<Made> = (0..5)
            .map(|i| {
                made(
                    &format!("f{i}"),
                    Failed,
                    &format!("2026-12-0{}T00:00:00Z", i + 1),
                )
            })
            .collect();
        assert_eq!(
            expired(&failures, &Retention::default(), now),
            vec!["f1".to_string(), "f0".to_string()]
        );
    }
}
