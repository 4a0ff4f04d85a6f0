//! The queue page's limits form: what `baton limit` sets (the queue's concurrency cap
//! and rate, and each group's), shown filled with the current values and applied by the
//! `limits` action through the library, as the CLI and the API do.

use maud::{html, Markup};

use super::layout::csrf_field;
use super::session::Viewer;
use crate::error::{Error, Result};
use crate::job::Counts;
use crate::queue::Queue;

/// The form (for a viewer who may act), inside a closed `<details>`.
pub(super) fn form(action_url: &str, back: &str, counts: &Counts, v: &Viewer) -> Markup {
    let text = |r: Option<&crate::job::Rate>| r.map(|r| r.to_string());
    html! {
        details #limits {
            summary { "Limits" }
            form method="post" action=(action_url) {
                (csrf_field(v))
                input type="hidden" name="back" value=(back);
                label { "At most running at once "
                    input type="number" min="0" name="concurrency" value=[counts.concurrency] placeholder="no cap"; }
                " "
                label { "At most started "
                    input type="text" name="rate" value=[text(counts.rate.as_ref())] placeholder="100/1s or none"; }
                " "
                label { "Per group running "
                    input type="number" min="0" name="group_concurrency" value=[counts.group_concurrency] placeholder="no cap"; }
                " "
                label { "Per group started "
                    input type="text" name="group_rate" value=[text(counts.group_rate.as_ref())] placeholder="5/1s or none"; }
                " "
                button type="submit" name="action" value="limits" { "Set limits" }
            }
        }
    }
}

/// A count field: empty or 0 is "no cap".
fn cap(what: &str, v: Option<&str>) -> Result<Option<u32>> {
    match v.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse::<u32>()
            .map(|n| (n > 0).then_some(n))
            .map_err(|_| Error::Invalid(format!("{what}: a whole number, got {t:?}"))),
    }
}

/// A rate field: empty or `none` is no limit.
fn rate(v: Option<&str>) -> Result<Option<(u32, std::time::Duration)>> {
    match v.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => crate::validate::rate(t),
    }
}

/// Applies the form's four fields (each checked before anything is written); returns
/// what the page says after.
pub(super) async fn apply(q: &Queue, get: impl Fn(&str) -> Option<String>) -> Result<String> {
    let concurrency = cap("at most running", get("concurrency").as_deref())?;
    let r = rate(get("rate").as_deref())?;
    let group_concurrency = cap("per group running", get("group_concurrency").as_deref())?;
    let group_rate = rate(get("group_rate").as_deref())?;
    q.set_concurrency(concurrency).await?;
    q.set_rate_limit(r).await?;
    // Group limits are written only when there are some, or some to remove: setting
    // them makes every claim look at groups.
    let had = q.counts().await?;
    if group_concurrency.is_some()
        || group_rate.is_some()
        || had.group_concurrency.is_some()
        || had.group_rate.is_some()
    {
        q.set_group_limits(group_concurrency, group_rate).await?;
    }
    Ok(format!("limits of queue {} set", q.name()))
}
