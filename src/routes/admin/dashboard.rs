use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::Context;
use askama::Template;
use chrono::{Days, NaiveDateTime, TimeZone};

use super::context::PageContext;
use super::{render, AdminError, Signed};
use crate::db::DashboardStats;
use crate::startup::AppState;

/// Days the sign-up chart covers.
const CHART_DAYS: u64 = 30;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    ctx: PageContext,
    stats: DashboardStats,
    chart: Chart,
}

/// A bar chart laid out on the server, drawn by the template as SVG.
pub struct Chart {
    width: i64,
    height: i64,
    left: i64,
    bars: Vec<Bar>,
    grid: Vec<GridLine>,
}

struct Bar {
    x: i64,
    y: i64,
    width: i64,
    height: i64,
    title: String,
    label: Option<String>,
}

struct GridLine {
    y: i64,
    label: i64,
}

/// A round step for about four grid lines up to `max`.
fn grid_step(max: i64) -> i64 {
    let rough = (max.max(4) as f64 / 4.0).ceil() as i64;
    let magnitude = 10_i64.pow(rough.to_string().len() as u32 - 1);
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(rough)
}

/// Lays out one bar per day; `days` are the local dates, `counts` the sign-ups.
fn layout_chart(days: &[chrono::NaiveDate], counts: &[i64]) -> Chart {
    let (width, height, left, bottom, top) = (720_i64, 240_i64, 40_i64, 22_i64, 10_i64);
    let plot_h = height - bottom - top;
    let step = grid_step(counts.iter().copied().max().unwrap_or(0));
    let max = (counts.iter().copied().max().unwrap_or(0).max(1) + step - 1) / step * step;
    let slot = (width - left) / counts.len().max(1) as i64;
    let bars = counts
        .iter()
        .zip(days)
        .enumerate()
        .map(|(i, (&count, day))| {
            let h = count * plot_h / max;
            Bar {
                x: left + i as i64 * slot + 2,
                y: top + plot_h - h,
                width: slot - 4,
                height: h,
                title: format!("{}: {count}", day.format("%Y-%m-%d")),
                // Every fifth day, counting back from today, gets a date under its bar.
                label: (counts.len() - 1 - i)
                    .is_multiple_of(5)
                    .then(|| day.format("%m-%d").to_string()),
            }
        })
        .collect();
    let grid = (0..=max / step)
        .map(|k| GridLine {
            y: top + plot_h - k * step * plot_h / max,
            label: k * step,
        })
        .collect();
    Chart {
        width,
        height,
        left,
        bars,
        grid,
    }
}

/// `GET /admin`: figures and the sign-up chart.
pub async fn dashboard(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
) -> Result<HttpResponse, AdminError> {
    let tz = state.admin_timezone;
    let now = crate::db::now();
    let today = now.and_utc().with_timezone(&tz).date_naive();
    let days: Vec<chrono::NaiveDate> = (0..CHART_DAYS)
        .rev()
        .filter_map(|back| today.checked_sub_days(Days::new(back)))
        .collect();
    let day_starts: Vec<NaiveDateTime> = days
        .iter()
        .map(|d| {
            let midnight = d.and_hms_opt(0, 0, 0).expect("midnight exists");
            // Where a DST change skips midnight, the day starts at the first instant after.
            tz.from_local_datetime(&midnight)
                .earliest()
                .map(|t| t.naive_utc())
                .unwrap_or(midnight)
        })
        .collect();
    let stats = crate::db::run(&state.pool, move |conn| {
        DashboardStats::load(conn, now, &day_starts).context("computing dashboard figures")
    })
    .await?;
    let chart = layout_chart(&days, &stats.daily_signups);
    let ctx = PageContext::signed(&req, &state, &signed, "dashboard")?;
    render(&DashboardPage { ctx, stats, chart }, StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_steps_are_round() {
        assert_eq!(grid_step(0), 1);
        assert_eq!(grid_step(7), 2);
        assert_eq!(grid_step(37), 10);
        assert_eq!(grid_step(900), 500);
    }

    #[test]
    fn the_tallest_bar_fits_and_zero_days_have_no_height() {
        let days: Vec<_> = (1..=30)
            .map(|d| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap())
            .collect();
        let mut counts = vec![0; 30];
        counts[10] = 37;
        let chart = layout_chart(&days, &counts);
        assert_eq!(chart.bars.len(), 30);
        assert_eq!(chart.bars[0].height, 0);
        let tall = &chart.bars[10];
        assert!(tall.y >= 10 && tall.height > 0 && tall.y + tall.height <= chart.height - 22);
        assert_eq!(tall.title, "2026-11-11: 37");
    }
}
