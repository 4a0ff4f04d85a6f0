//! `GET/POST /ui/queues/{queue}/flow`: add a flow (a parent job that starts once its
//! children are done) from the browser, as `baton add-flow` and
//! `POST /v1/queues/{queue}/flows` do: the same JSON tree, read by
//! [`crate::validate::flow`], added with [`Queue::add_flow`](crate::Queue::add_flow);
//! then the browser goes to the root job's page, which lists its children.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;

use super::fields::{self, Fields};
use super::layout::{self, csrf_field, enc, redirect_with_flash, Page};
use super::session::Viewer;
use super::UiState;
use crate::error::Error;

const EXAMPLE: &str = r#"{"name": "report", "data": {"month": 11},
 "children": [
   {"name": "tally", "data": {"region": "eu"}},
   {"name": "tally", "data": {"region": "us"}, "on_failure": "ignore"}
 ]}"#;

fn form_page(
    v: &Viewer,
    queue: &str,
    f: &Fields,
    why: Option<&str>,
    status: StatusCode,
) -> Response {
    let post_to = format!("/ui/queues/{}/flow", enc(queue));
    let body = html! {
        h1 { "Add a flow to " a.mono href={ "/ui/queues/" (enc(queue)) } { (queue) } }
        (fields::error(why))
        form.fields #add-flow method="post" action=(post_to) {
            (csrf_field(v))
            label for="flow" { "Flow" }
            div {
                textarea #flow name="flow" rows="14" spellcheck="false" placeholder=(EXAMPLE) { (f.raw("flow")) }
                small.muted {
                    "JSON: a job (" code { "name" } ", " code { "data" } ", the options of a job) with "
                    code { "children" } " of the same shape; a child may name its " code { "queue" }
                    " (on a Redis Cluster, one of this queue's slot: a shared {tag} prefix) and "
                    code { "on_failure" } " (" code { "fail-parent" } " or " code { "ignore" } ")."
                }
            }
            div.bar.span {
                button.primary #add type="submit" { "Add flow" }
                a href={ "/ui/queues/" (enc(queue)) } { "Cancel" }
            }
        }
        p.muted.small { "The same JSON as " code { "baton add-flow" } " and the API's " code { "POST /v1/queues/{queue}/flows" } "; all jobs are added or none." }
    };
    let mut resp = Page::new(format!("Add a flow · {queue}"), v, body).into_response();
    *resp.status_mut() = status;
    resp
}

/// `GET /ui/queues/{queue}/flow`: the empty form.
pub(super) async fn page(Extension(v): Extension<Viewer>, Path(queue): Path<String>) -> Response {
    if let Err(e) = crate::validate::queue_name(&queue) {
        return layout::fail(e);
    }
    if !v.can_act {
        return super::add_job::read_only(&v);
    }
    form_page(&v, &queue, &Fields::default(), None, StatusCode::OK)
}

/// `POST /ui/queues/{queue}/flow`: adds the flow and goes to its root's page; a refusal
/// shows the form again with what was typed (status 400, nothing added).
pub(super) async fn add(
    State(s): State<UiState>,
    Extension(v): Extension<Viewer>,
    Path(queue): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(e) = crate::validate::queue_name(&queue) {
        return layout::fail(e);
    }
    let f = Fields::parse(&body);
    let refused = |why: String| form_page(&v, &queue, &f, Some(&why), StatusCode::BAD_REQUEST);
    let flow = match f
        .json("flow", "the flow")
        .and_then(|j| crate::validate::flow(j).map_err(|e| e.reason()))
    {
        Ok(flow) => flow,
        Err(why) => return refused(why),
    };
    match s.queue(&queue).add_flow(&flow).await {
        Ok(a) => {
            let said = if a.added {
                format!("flow of {} added", a.id)
            } else {
                format!("the flow of {} existed already: nothing changed", a.id)
            };
            let to = format!("/ui/queues/{}/jobs/{}", enc(&a.queue), enc(&a.id));
            redirect_with_flash(&to, &said)
        }
        Err(e @ (Error::Invalid(_) | Error::Encode(_) | Error::PayloadTooLarge { .. })) => {
            refused(e.reason())
        }
        Err(e) => layout::fail(e),
    }
}
