//! `warden.v1.UsageService`: per-member check counts of an org, and monthly active orgs.
//!
//! Authorization: an org report needs `usage:read` on `org`; the instance report only the Unix
//! socket.

use super::{Directory, check_actor, check_slug, on_unix_socket};
use crate::api::pb;
use crate::api::usage::day_of;
use std::collections::BTreeMap;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Days since the Unix epoch of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month) of a day since the epoch.
fn civil_month(day: u64) -> (i64, u32) {
    let z = i64::try_from(day).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1))
}

/// First and last day of `YYYY-MM`.
fn month_days(month: &str) -> Option<(u64, u64)> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i64, u32) = (y.parse().ok()?, m.parse().ok()?);
    if y.to_string().len() != 4 || !(1..=12).contains(&m) {
        return None;
    }
    let first = days_from_civil(y, m, 1);
    let next = if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    };
    Some((u64::try_from(first).ok()?, u64::try_from(next - 1).ok()?))
}

impl Directory {
    pub fn usage_server(&self) -> pb::usage_service_server::UsageServiceServer<Self> {
        pb::usage_service_server::UsageServiceServer::new(self.clone())
    }
}

#[tonic::async_trait]
impl pb::usage_service_server::UsageService for Directory {
    async fn get_org_usage(
        &self,
        request: Request<pb::GetOrgUsageRequest>,
    ) -> Result<Response<pb::GetOrgUsageResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("GetOrgUsage", org = %r.org_id, actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            check_slug("org_id", &r.org_id)?;
            let days = match r.days {
                0 => 30,
                n @ 1..=366 => u64::from(n),
                n => return Err(Status::invalid_argument(format!("days: {n}; at most 366"))),
            };
            self.require(&r.actor, &r.org_id, "org", "usage:read")?;
            let today = day_of(super::now_ms());
            let from = today.saturating_sub(days - 1);
            let org = r.org_id.clone();
            let mut rows = self
                .read(&r.actor, "org_id", move |s| Ok(s.org_usage(&org, from, today)?))
                .await?;
            // Today's counts not flushed yet.
            let unflushed = self.engine.index().read().unflushed_checks(&r.org_id);
            rows.extend(unflushed.into_iter().map(|(u, n)| (today, u, n)));
            let mut members: BTreeMap<String, u64> = BTreeMap::new();
            let mut per_day: BTreeMap<u64, (u64, std::collections::BTreeSet<String>)> = BTreeMap::new();
            for (day, user, n) in rows {
                *members.entry(user.clone()).or_default() += n;
                let d = per_day.entry(day).or_default();
                d.0 += n;
                d.1.insert(user);
            }
            let total_checks = members.values().sum();
            let mut members: Vec<pb::MemberUsage> = members
                .into_iter()
                .map(|(user_id, checks)| pb::MemberUsage { user_id, checks })
                .collect();
            members.sort_by(|a, b| b.checks.cmp(&a.checks).then_with(|| a.user_id.cmp(&b.user_id)));
            Ok(Response::new(pb::GetOrgUsageResponse {
                org_id: r.org_id,
                from_day: from,
                to_day: today,
                members,
                days: per_day
                    .into_iter()
                    .map(|(day, (checks, users))| pb::DayUsage {
                        day,
                        checks,
                        active_members: u32::try_from(users.len()).unwrap_or(u32::MAX),
                    })
                    .collect(),
                total_checks,
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_instance_usage(
        &self,
        request: Request<pb::GetInstanceUsageRequest>,
    ) -> Result<Response<pb::GetInstanceUsageResponse>, Status> {
        if !on_unix_socket(&request) {
            return Err(Status::permission_denied(
                "instance usage is only served on the Unix socket",
            ));
        }
        let r = request.into_inner();
        let today = day_of(super::now_ms());
        let month = if r.month.is_empty() {
            let (y, m) = civil_month(today);
            format!("{y:04}-{m:02}")
        } else {
            r.month
        };
        let (from, to) = month_days(&month)
            .ok_or_else(|| Status::invalid_argument(format!("month: `{month}` is not YYYY-MM")))?;
        let mut active = self.read("", "", move |s| Ok(s.active_orgs(from, to)?)).await?;
        // Orgs active today whose counts are not flushed yet.
        if (from..=to).contains(&today) {
            let pending: Vec<String> = self.engine.index().read().orgs_with_unflushed_checks();
            let store = self.store.clone();
            let extra = tokio::task::spawn_blocking(move || {
                let mut n = 0;
                for org in pending {
                    if store.get_org(&org)?.is_some() && store.org_usage(&org, from, to)?.is_empty() {
                        n += 1;
                    }
                }
                Ok::<u64, crate::store::StoreError>(n)
            })
            .await
            .map_err(|_| Status::internal("usage task failed"))?
            .map_err(|_| Status::unavailable("the directory store is unavailable; see the daemon log"))?;
            active += extra;
        }
        Ok(Response::new(pb::GetInstanceUsageResponse {
            month,
            monthly_active_orgs: active,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_months() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(month_days("2024-02"), Some((19_754, 19_782)), "leap February");
        assert_eq!(civil_month(19_782), (2024, 2));
        assert_eq!(civil_month(19_783), (2024, 3));
        for bad in ["2024-13", "24-01", "2024", "x-y"] {
            assert_eq!(month_days(bad), None, "{bad}");
        }
    }
}
