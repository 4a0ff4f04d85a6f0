//! The job schedulers of a queue on its page, and the scheduler a job came from on the
//! job's page (a scheduler's jobs have ids `sched:<scheduler id>:<tick>`).

use maud::{html, Markup};

use super::layout::{enc, span, when};
use crate::schedule::SchedulerInfo;

/// The anchor of scheduler `id` on its queue's page.
pub(super) fn anchor(id: &str) -> String {
    format!("scheduler-{}", enc(id))
}

/// The link to scheduler `id` of `queue` (its row on the queue page).
pub(super) fn link(queue: &str, id: &str) -> String {
    format!("/ui/queues/{}#{}", enc(queue), anchor(id))
}

/// The scheduler and tick (ms) a job id names, when it is a scheduler's job.
pub(super) fn of_job(job_id: &str) -> Option<(&str, u64)> {
    let (id, tick) = job_id.strip_prefix("sched:")?.rsplit_once(':')?;
    Some((id, tick.parse().ok()?)).filter(|(id, _)| !id.is_empty())
}

/// The rule of a scheduler in words: its cron expression (and zone) or its interval.
fn rule(s: &SchedulerInfo) -> String {
    match (&s.cron, s.every_ms) {
        (Some(c), _) => format!("cron {c} ({})", s.tz.as_deref().unwrap_or("UTC")),
        (None, Some(ms)) => format!("every {}", span(ms)),
        (None, None) => "?".to_string(),
    }
}

/// The queue page's schedulers section. With `v` (a viewer who may act) it offers a new
/// scheduler, and each row an edit link and a remove button (the action asks to
/// confirm first); a reader sees nothing when the queue has none.
pub(super) fn section(
    queue: &str,
    list: &[SchedulerInfo],
    now: u64,
    v: Option<&super::session::Viewer>,
) -> Markup {
    let action_url = format!("/ui/queues/{}/actions", enc(queue));
    html! {
        @if !list.is_empty() || v.is_some() {
            h2 #schedulers { "Job schedulers" }
        }
        @if v.is_some() {
            p { a.button #new-scheduler href={ "/ui/queues/" (enc(queue)) "/scheduler" } { "New job scheduler" } }
        }
        @if !list.is_empty() {
            table #scheduler-list {
                thead { tr {
                    th { "Id" } th { "Rule" } th { "Job name" } th { "Next run" } th { "Last run" } th.num { "Runs" } @if v.is_some() { th { "" } }
                } }
                tbody {
                    @for s in list {
                        tr id=(anchor(&s.id)) data-scheduler=(s.id) {
                            td.mono { (s.id) }
                            td.mono { (rule(s)) }
                            td { (s.name) }
                            td.next { @match s.next_run_ms { Some(t) => (when(t, now)), None => span.muted { "ended" } } }
                            td { @match s.last_run_ms {
                                Some(t) => a href={ "/ui/queues/" (enc(queue)) "/jobs/" (enc(&crate::schedule::job_id(&s.id, t))) } { (when(t, now)) },
                                None => span.muted { "never" },
                            } }
                            td.num { (s.runs) @if let Some(l) = s.limit { " of " (l) } }
                            @if let Some(v) = v {
                                td { a.button.edit href={ "/ui/queues/" (enc(queue)) "/scheduler?id=" (enc(&s.id)) } { "Edit" } " "
                                    form.inline method="post" action=(action_url) {
                                    (super::layout::csrf_field(v))
                                    input type="hidden" name="scheduler" value=(s.id);
                                    button type="submit" name="action" value="remove_scheduler" { "Remove" }
                                } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::of_job;

    #[test]
    fn scheduler_of_a_job_id() {
        assert_eq!(
            of_job("sched:nightly:1700000000000"),
            Some(("nightly", 1700000000000))
        );
        assert_eq!(of_job("sched:a:b:5"), Some(("a:b", 5)));
        assert_eq!(of_job("sched::5"), None);
        assert_eq!(of_job("sched:x:notatick"), None);
        assert_eq!(of_job("img-7"), None);
    }
}
