//! Pure part of the `aws_cost` source: the query period, and Cost Explorer's daily figures by
//! service → month to date, last complete day, month-end forecast, families and status section.
//! Days are UTC calendar days, counted as days since 1970-01-01 (Cost Explorer's dates are UTC).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::{civil_from_days, days_from_civil};
use crate::metrics::{Def, MetricFamily};

/// Complete days before the last complete day averaged for the daily-rise comparison.
pub const TRAILING_DAYS: i64 = 7;

/// One day's cost of one service, as Cost Explorer reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyCost {
    /// `YYYY-MM-DD`, the start of Cost Explorer's daily time period.
    pub day: String,
    pub service: String,
    pub usd: f64,
}

/// One Cost Explorer round: when it was made and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fetch {
    /// Unix seconds of the round (the as-of time of the figures).
    pub fetched_at: f64,
    /// Every (day, service) with a figure; empty when Cost Explorer returned no group at all.
    pub rows: Vec<DailyCost>,
}

pub fn day_of(unix_seconds: f64) -> i64 {
    (unix_seconds.floor() as i64).div_euclid(86_400)
}

pub fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.get(..2)?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d))
}

fn first_of_month(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    days_from_civil(y, m, 1)
}

pub fn days_in_month(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)
}

/// The days to ask for when the fetch happens on `today`: from the first of the month, or the
/// trailing window before yesterday if earlier, through today (Cost Explorer's `End` is
/// exclusive, so `end` is tomorrow). Returns (start, end) as `YYYY-MM-DD`.
pub fn query_period(today: i64) -> (String, String) {
    let start = first_of_month(today).min(today - 1 - TRAILING_DAYS);
    (date(start), date(today + 1))
}

/// What the figures of one round say.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub fetched_at: f64,
    /// False when Cost Explorer returned nothing for the tag (not activated, or nothing tagged).
    pub data: bool,
    /// The last complete day: the day before the fetch (UTC).
    pub last_day: i64,
    pub month_to_date: BTreeMap<String, f64>,
    pub last_day_by_service: BTreeMap<String, f64>,
    pub month_to_date_total: f64,
    pub last_day_total: f64,
    /// Mean daily cost of the [`TRAILING_DAYS`] days before the last complete day.
    pub trailing_daily_average: f64,
    pub forecast: f64,
}

/// The month-end forecast from daily figures, without a request: the run rate of the month's
/// complete days (those before `today`) times the month's length. On the first of a month there
/// is no complete day of it yet, so the last complete day (the previous month's last) is the
/// rate. Today's partial figure is not used: it is replaced by the rate.
pub fn forecast(today: i64, complete_days_this_month: f64, last_day_total: f64) -> f64 {
    let done = today - first_of_month(today);
    let rate = if done >= 1 { complete_days_this_month / done as f64 } else { last_day_total };
    complete_days_this_month + rate * (days_in_month(today) - done) as f64
}

pub fn summarize(fetch: &Fetch) -> Summary {
    let today = day_of(fetch.fetched_at);
    let month = first_of_month(today);
    let last_day = today - 1;
    let mut month_to_date: BTreeMap<String, f64> = BTreeMap::new();
    let mut last_day_by_service: BTreeMap<String, f64> = BTreeMap::new();
    let (mut complete, mut trailing) = (0.0, 0.0);
    for row in &fetch.rows {
        let Some(day) = parse_date(&row.day) else { continue };
        if day >= month && day <= today {
            *month_to_date.entry(row.service.clone()).or_default() += row.usd;
            if day < today {
                complete += row.usd;
            }
        }
        if day == last_day {
            *last_day_by_service.entry(row.service.clone()).or_default() += row.usd;
        }
        if (last_day - TRAILING_DAYS..last_day).contains(&day) {
            trailing += row.usd;
        }
    }
    let last_day_total = last_day_by_service.values().sum();
    Summary {
        fetched_at: fetch.fetched_at,
        data: !fetch.rows.is_empty(),
        last_day,
        month_to_date_total: month_to_date.values().sum(),
        forecast: forecast(today, complete, last_day_total),
        trailing_daily_average: trailing / TRAILING_DAYS as f64,
        month_to_date,
        last_day_by_service,
        last_day_total,
    }
}

const SERVICE: &[&str] = &["service"];

pub static MONTH_TO_DATE: Def = Def::gauge(
    "polo_own_cost_month_to_date_usd",
    "Cost of Polo's own infrastructure (resources tagged with the configured cost-allocation tag) this month so far, today's partial day included, in USD (Cost Explorer; fetched at most once per min_interval).",
    &[],
);
pub static MONTH_TO_DATE_BY_SERVICE: Def = Def::gauge(
    "polo_own_cost_month_to_date_by_service_usd",
    "Month-to-date cost of Polo's own infrastructure by AWS service, in USD (Cost Explorer).",
    SERVICE,
);
pub static LAST_DAY: Def = Def::gauge(
    "polo_own_cost_last_day_usd",
    "Cost of Polo's own infrastructure on the last complete UTC day (polo_own_cost_last_complete_day_timestamp_seconds), in USD (Cost Explorer; revised by AWS for up to a few days).",
    &[],
);
pub static LAST_DAY_BY_SERVICE: Def = Def::gauge(
    "polo_own_cost_last_day_by_service_usd",
    "Cost of Polo's own infrastructure on the last complete UTC day by AWS service, in USD (Cost Explorer).",
    SERVICE,
);
pub static TRAILING_AVERAGE: Def = Def::gauge(
    "polo_own_cost_trailing_daily_average_usd",
    "Mean daily cost of Polo's own infrastructure over the 7 days before the last complete day, in USD (the baseline of the daily-rise alert).",
    &[],
);
pub static FORECAST: Def = Def::gauge(
    "polo_own_cost_month_end_forecast_usd",
    "Forecast of this month's cost of Polo's own infrastructure, in USD: the month's complete days' run rate times the month's length (computed by the exporter, no request).",
    &[],
);
pub static BUDGET: Def = Def::gauge(
    "polo_own_cost_budget_usd",
    "Configured monthly budget of Polo's own infrastructure, in USD (sources.aws_cost.monthly_budget_usd).",
    &[],
);
pub static FETCHED: Def = Def::gauge(
    "polo_own_cost_fetched_timestamp_seconds",
    "When the cost figures were fetched from Cost Explorer (their as-of time).",
    &[],
);
pub static LAST_COMPLETE_DAY: Def = Def::gauge(
    "polo_own_cost_last_complete_day_timestamp_seconds",
    "Start (00:00 UTC) of the last complete day the cost figures cover.",
    &[],
);
pub static DATA: Def = Def::gauge(
    "polo_own_cost_data_available",
    "1 if Cost Explorer returned cost for the configured tag, 0 if it returned nothing at all: the tag is not activated as a cost allocation tag, or no resource carries it (then the cost families have no series: not a 0 USD).",
    &[],
);

pub fn families(s: &Summary, budget: Option<f64>) -> Vec<MetricFamily> {
    let mut out = vec![DATA.family().with([], f64::from(u8::from(s.data))), FETCHED.family().with([], s.fetched_at)];
    if let Some(b) = budget {
        out.push(BUDGET.family().with([], b));
    }
    if !s.data {
        return out;
    }
    let mut mtd = MONTH_TO_DATE_BY_SERVICE.family();
    for (service, usd) in &s.month_to_date {
        mtd.push([service.clone()], *usd);
    }
    let mut last = LAST_DAY_BY_SERVICE.family();
    for (service, usd) in &s.last_day_by_service {
        last.push([service.clone()], *usd);
    }
    out.extend([
        MONTH_TO_DATE.family().with([], s.month_to_date_total),
        mtd,
        LAST_DAY.family().with([], s.last_day_total),
        last,
        TRAILING_AVERAGE.family().with([], s.trailing_daily_average),
        FORECAST.family().with([], s.forecast),
        LAST_COMPLETE_DAY.family().with([], (s.last_day * 86_400) as f64),
    ]);
    out
}

/// The status document's `cost` section: Polo's own cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostStatus {
    /// `ok`, or `no_data` when Cost Explorer returned nothing for the tag.
    pub data: &'static str,
    /// `key=value` of the cost-allocation tag.
    pub tag: String,
    pub cost_metric: String,
    pub currency: &'static str,
    pub month_to_date_usd: Option<f64>,
    pub forecast_usd: Option<f64>,
    pub budget_usd: Option<f64>,
    pub last_day_usd: Option<f64>,
    /// The last complete day the figures cover (`YYYY-MM-DD`).
    pub last_complete_day: String,
    /// When the figures were fetched.
    pub as_of: String,
    pub services: Vec<ServiceCost>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceCost {
    pub service: String,
    pub month_to_date_usd: f64,
    pub last_day_usd: f64,
}

pub fn status(s: &Summary, tag: String, cost_metric: String, budget: Option<f64>) -> CostStatus {
    let cents = |v: f64| (v * 100.0).round() / 100.0;
    let known = |v: f64| s.data.then(|| cents(v));
    CostStatus {
        data: if s.data { "ok" } else { "no_data" },
        tag,
        cost_metric,
        currency: "USD",
        month_to_date_usd: known(s.month_to_date_total),
        forecast_usd: known(s.forecast),
        budget_usd: budget,
        last_day_usd: known(s.last_day_total),
        last_complete_day: date(s.last_day),
        as_of: crate::clock::rfc3339(s.fetched_at),
        services: s
            .month_to_date
            .iter()
            .map(|(service, usd)| ServiceCost {
                service: service.clone(),
                month_to_date_usd: cents(*usd),
                last_day_usd: cents(s.last_day_by_service.get(service).copied().unwrap_or(0.0)),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
