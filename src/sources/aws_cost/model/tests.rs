use super::*;

fn at(y: i64, m: u32, d: u32, hour: i64) -> f64 {
    (days_from_civil(y, m, d) * 86_400 + hour * 3600) as f64
}

fn row(day: &str, service: &str, usd: f64) -> DailyCost {
    DailyCost { day: day.into(), service: service.into(), usd }
}

/// `usd` per day for every day from `first` (inclusive) to `last` (inclusive), one service.
fn days(first: (i64, u32, u32), last: (i64, u32, u32), service: &str, usd: f64) -> Vec<DailyCost> {
    (days_from_civil(first.0, first.1, first.2)..=days_from_civil(last.0, last.1, last.2))
        .map(|d| row(&date(d), service, usd))
        .collect()
}

#[test]
fn query_period_covers_the_month_and_the_trailing_week() {
    // Mid-month: from the 1st (earlier than yesterday - 7) through tomorrow (exclusive end).
    assert_eq!(query_period(days_from_civil(2026, 11, 22)), ("2026-11-01".into(), "2026-11-23".into()));
    // On the 3rd: the trailing week reaches into the previous month.
    assert_eq!(query_period(days_from_civil(2026, 3, 3)), ("2026-02-23".into(), "2026-03-04".into()));
    // On the 31st of December the end is in the next year.
    assert_eq!(query_period(days_from_civil(2026, 12, 31)), ("2026-12-01".into(), "2027-01-01".into()));
}

#[test]
fn dates_parse_and_format() {
    assert_eq!(parse_date("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
    assert_eq!(parse_date("2024-02-29T00:00:00Z"), Some(days_from_civil(2024, 2, 29)));
    assert_eq!(parse_date("2024-13-01"), None);
    assert_eq!(parse_date("garbage"), None);
    assert_eq!(date(days_from_civil(2024, 2, 29)), "2024-02-29");
    assert_eq!(days_in_month(days_from_civil(2024, 2, 10)), 29);
    assert_eq!(days_in_month(days_from_civil(2026, 2, 10)), 28);
    assert_eq!(days_in_month(days_from_civil(2026, 12, 31)), 31);
}

#[test]
fn mid_month_figures_and_forecast() {
    // 22 Nov 2026, 10:00 UTC: 21 complete days at $3, today's partial $1.
    let mut rows = days((2026, 11, 1), (2026, 11, 21), "AWS Lambda", 2.0);
    rows.extend(days((2026, 11, 1), (2026, 11, 21), "Amazon Simple Queue Service", 1.0));
    rows.push(row("2026-11-22", "AWS Lambda", 1.0));
    // Before the month: only the trailing window uses it (none here: all in November).
    let s = summarize(&Fetch { fetched_at: at(2026, 11, 22, 10), rows });
    assert!(s.data);
    assert_eq!(s.last_day, days_from_civil(2026, 11, 21));
    assert_eq!(s.month_to_date_total, 21.0 * 3.0 + 1.0);
    assert_eq!(s.month_to_date["AWS Lambda"], 43.0);
    assert_eq!(s.last_day_total, 3.0);
    assert_eq!(s.last_day_by_service["Amazon Simple Queue Service"], 1.0);
    assert_eq!(s.trailing_daily_average, 3.0);
    // Run rate $3/day × 30 days.
    assert!((s.forecast - 90.0).abs() < 1e-9, "{}", s.forecast);
}

#[test]
fn first_day_of_a_month_uses_the_previous_day_as_the_rate() {
    // 1 Dec 2026: no complete December day; 30 Nov cost $4; today's partial $0.50 is not the rate.
    let mut rows = days((2026, 11, 23), (2026, 11, 30), "Amazon S3", 4.0);
    rows.push(row("2026-12-01", "Amazon S3", 0.5));
    let s = summarize(&Fetch { fetched_at: at(2026, 12, 1, 6), rows });
    assert_eq!(s.last_day, days_from_civil(2026, 11, 30));
    assert_eq!(s.last_day_total, 4.0);
    assert_eq!(s.month_to_date_total, 0.5, "month to date is December's only");
    assert_eq!(forecast(days_from_civil(2026, 12, 1), 0.0, 4.0), 124.0);
    assert_eq!(s.forecast, 31.0 * 4.0);
    assert_eq!(s.trailing_daily_average, 4.0);
}

#[test]
fn last_day_of_a_month() {
    // 31 Jan 2027: 30 complete days at $1 → 30 + 1 × 1 remaining day.
    let rows = days((2027, 1, 1), (2027, 1, 30), "AWS Secrets Manager", 1.0);
    let s = summarize(&Fetch { fetched_at: at(2027, 1, 31, 23), rows });
    assert_eq!(s.forecast, 31.0);
    assert_eq!(s.month_to_date_total, 30.0);
}

#[test]
fn leap_february_has_29_days() {
    // 15 Feb 2028 (leap year): 14 complete days at $2 → rate 2 × 29 days.
    let rows = days((2028, 2, 1), (2028, 2, 14), "Amazon EC2", 2.0);
    let s = summarize(&Fetch { fetched_at: at(2028, 2, 15, 12), rows });
    assert_eq!(s.forecast, 58.0);
    // The 29th itself: 28 complete days.
    let rows = days((2028, 2, 1), (2028, 2, 28), "Amazon EC2", 2.0);
    assert_eq!(summarize(&Fetch { fetched_at: at(2028, 2, 29, 1), rows }).forecast, 58.0);
    // A common year's February has 28.
    let rows = days((2027, 2, 1), (2027, 2, 14), "Amazon EC2", 2.0);
    assert_eq!(summarize(&Fetch { fetched_at: at(2027, 2, 15, 12), rows }).forecast, 56.0);
}

#[test]
fn no_data_is_not_zero_cost() {
    let empty = summarize(&Fetch { fetched_at: at(2026, 11, 22, 10), rows: vec![] });
    assert!(!empty.data);
    let f = families(&empty, Some(50.0));
    let names: Vec<&str> = f.iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        ["polo_own_cost_data_available", "polo_own_cost_fetched_timestamp_seconds", "polo_own_cost_budget_usd"]
    );
    assert_eq!(f[0].samples()[0].value, crate::metrics::Value::Gauge(0.0));
    let st = status(&empty, "polo:purpose=polo-infrastructure".into(), "UnblendedCost".into(), Some(50.0));
    assert_eq!(st.data, "no_data");
    assert_eq!(st.month_to_date_usd, None);
    assert_eq!(st.forecast_usd, None);

    // Zero cost reported for a tagged service is data: 0 USD, data available.
    let zero = summarize(&Fetch { fetched_at: at(2026, 11, 22, 10), rows: vec![row("2026-11-21", "AWS Lambda", 0.0)] });
    assert!(zero.data);
    let f = families(&zero, None);
    assert_eq!(f[0].samples()[0].value, crate::metrics::Value::Gauge(1.0));
    let mtd = f.iter().find(|f| f.def() == &MONTH_TO_DATE).unwrap();
    assert_eq!(mtd.samples()[0].value, crate::metrics::Value::Gauge(0.0));
    assert_eq!(status(&zero, String::new(), String::new(), None).month_to_date_usd, Some(0.0));
}

#[test]
fn status_rounds_to_cents_and_lists_services() {
    let rows = vec![row("2026-11-21", "AWS Lambda", 1.004), row("2026-11-20", "Amazon S3", 2.5)];
    let s = summarize(&Fetch { fetched_at: at(2026, 11, 22, 10), rows });
    let st = status(&s, "k=v".into(), "UnblendedCost".into(), None);
    assert_eq!(st.month_to_date_usd, Some(3.5));
    assert_eq!(st.last_complete_day, "2026-11-21");
    assert_eq!(st.as_of, "2026-11-22T10:00:00Z");
    assert_eq!(
        st.services,
        vec![
            ServiceCost { service: "AWS Lambda".into(), month_to_date_usd: 1.0, last_day_usd: 1.0 },
            ServiceCost { service: "Amazon S3".into(), month_to_date_usd: 2.5, last_day_usd: 0.0 },
        ]
    );
}

#[test]
fn calendar_edges_under_an_injected_clock() {
    // 00:00:00 UTC belongs to the new day, 23:59:59.999 to the old one.
    let midnight = at(2027, 1, 1, 0);
    assert_eq!(day_of(midnight), days_from_civil(2027, 1, 1));
    assert_eq!(day_of(midnight - 0.001), days_from_civil(2026, 12, 31));
    assert_eq!(crate::clock::rfc3339(midnight), "2027-01-01T00:00:00Z");

    // Year end: on 31 Dec the month is December; at 00:00 on 1 Jan the month is January and the
    // last complete day (31 Dec) is the rate; the trailing week crosses the year.
    assert_eq!(query_period(days_from_civil(2026, 12, 31)), ("2026-12-01".into(), "2027-01-01".into()));
    assert_eq!(query_period(days_from_civil(2027, 1, 1)), ("2026-12-24".into(), "2027-01-02".into()));
    let rows = days((2026, 12, 1), (2026, 12, 31), "AWS Lambda", 2.0);
    let s = summarize(&Fetch { fetched_at: midnight, rows: rows.clone() });
    assert_eq!(s.last_day, days_from_civil(2026, 12, 31));
    assert_eq!(s.month_to_date_total, 0.0, "nothing of January yet");
    assert_eq!(s.forecast, 31.0 * 2.0);
    assert_eq!(s.trailing_daily_average, 2.0);
    // A millisecond earlier it is still December: 30 complete days, 31 Dec partial.
    let s = summarize(&Fetch { fetched_at: midnight - 0.001, rows });
    assert_eq!(s.last_day, days_from_civil(2026, 12, 30));
    assert_eq!(s.month_to_date_total, 31.0 * 2.0);
    assert_eq!(s.forecast, 31.0 * 2.0);

    // 29 February and the day after: the leap day is a day of February, then the rate of March 1.
    assert_eq!(query_period(days_from_civil(2028, 2, 29)), ("2028-02-01".into(), "2028-03-01".into()));
    assert_eq!(query_period(days_from_civil(2028, 3, 1)), ("2028-02-22".into(), "2028-03-02".into()));
    let mut rows = days((2028, 2, 1), (2028, 2, 28), "Amazon EC2", 1.0);
    rows.push(row("2028-02-29", "Amazon EC2", 3.0));
    let s = summarize(&Fetch { fetched_at: at(2028, 3, 1, 0), rows });
    assert_eq!(s.last_day, days_from_civil(2028, 2, 29));
    assert_eq!(s.last_day_total, 3.0);
    assert_eq!(s.forecast, 31.0 * 3.0);
    // 28 Feb of a common year is its month's end; 1 March follows.
    assert_eq!(days_in_month(days_from_civil(2027, 2, 28)), 28);
    assert_eq!(query_period(days_from_civil(2027, 3, 1)), ("2027-02-21".into(), "2027-03-02".into()));

    // Month start at 00:00 exactly, month end at the last second.
    let rows = days((2026, 10, 1), (2026, 10, 31), "Amazon S3", 1.0);
    let s = summarize(&Fetch { fetched_at: at(2026, 11, 1, 0), rows: rows.clone() });
    assert_eq!((s.last_day, s.month_to_date_total, s.forecast), (days_from_civil(2026, 10, 31), 0.0, 30.0));
    let s = summarize(&Fetch { fetched_at: at(2026, 11, 1, 0) - 1.0, rows });
    assert_eq!((s.last_day, s.month_to_date_total), (days_from_civil(2026, 10, 30), 31.0));
    assert_eq!(s.forecast, 31.0, "30 complete days at $1 and the last day at the rate");
}
