//! [`flow`]: a flow as JSON, read the same way by `baton add-flow` and
//! `POST /v1/queues/{queue}/flows`.

use serde_json::Value;

use super::JobRequest;
use crate::error::{Error, Result};
use crate::job::ChildFailure;
use crate::queue::{FlowJob, MAX_FLOW_JOBS};

/// Reads a flow: a job as [`JobRequest`] takes it (`name` required), plus
/// - `queue`: the queue it runs on (default: its parent's, or the one it is added to),
/// - `on_failure`: `"fail-parent"` (default) or `"ignore"`: what this child failing for
///   good does to its parent,
/// - `children`: an array of jobs of the same shape.
///
/// A refusal names where: `children[1].children[0]: …`.
pub fn flow(v: Value) -> Result<FlowJob> {
    let mut count = 0;
    node(v, "", &mut count)
}

fn node(v: Value, at: &str, count: &mut usize) -> Result<FlowJob> {
    let here = |m: String| {
        if at.is_empty() {
            Error::Invalid(m)
        } else {
            Error::Invalid(format!("{at}: {m}"))
        }
    };
    *count += 1;
    if *count > MAX_FLOW_JOBS {
        return Err(Error::Invalid(format!(
            "a flow holds at most {MAX_FLOW_JOBS} jobs"
        )));
    }
    let Value::Object(mut m) = v else {
        return Err(here("a flow job must be a JSON object".into()));
    };
    let queue = match m.remove("queue") {
        None | Some(Value::Null) => None,
        Some(Value::String(q)) => {
            super::queue_name(&q).map_err(|e| here(e.to_string()))?;
            Some(q)
        }
        Some(_) => return Err(here("queue must be text".into())),
    };
    let on_failure: ChildFailure = match m.remove("on_failure") {
        None | Some(Value::Null) => ChildFailure::default(),
        Some(v) => serde_json::from_value(v)
            .map_err(|_| here("on_failure must be \"fail-parent\" or \"ignore\"".into()))?,
    };
    let children = match m.remove("children") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(here("children must be an array".into())),
    };
    let req: JobRequest =
        serde_json::from_value(Value::Object(m)).map_err(|e| here(e.to_string()))?;
    let Some(name) = req.name.clone() else {
        return Err(here("name is required".into()));
    };
    let opts = req.options().map_err(|e| here(e.reason()))?;
    let mut job = FlowJob::new(name, &req.data)
        .opts(opts)
        .on_failure(on_failure);
    if let Some(q) = queue {
        job = job.queue(q);
    }
    for (i, c) in children.into_iter().enumerate() {
        let path = if at.is_empty() {
            format!("children[{i}]")
        } else {
            format!("{at}.children[{i}]")
        };
        job = job.child(node(c, &path, count)?);
    }
    Ok(job)
}

/// Gives every job of a flow (as JSON) that names no trace context `t`: the HTTP
/// `traceparent` header and `baton add-flow --traceparent` apply to the whole flow.
pub fn set_trace(v: &mut Value, t: &str) {
    if let Some(m) = v.as_object_mut() {
        m.entry("traceparent").or_insert_with(|| t.into());
        if let Some(Value::Array(kids)) = m.get_mut("children") {
            kids.iter_mut().for_each(|k| set_trace(k, t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_say_where() {
        let e = flow(json!({"name": "p", "children": [{"name": "a"}, {"data": 1}]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument: children[1]: name is required"
        );
        let e = flow(json!({"name": "p", "children": [{"name": "a", "children": [
            {"name": "b", "on_failure": "explode"}]}]}))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("children[0].children[0]: on_failure must be"),
            "{e}"
        );
        let e = flow(json!({"name": "p", "colour": "red"})).unwrap_err();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        let e = flow(json!({"name": "p", "queue": "a b"})).unwrap_err();
        assert!(e.to_string().contains("whitespace"), "{e}");
        assert!(flow(
            json!({"name": "p", "children": [{"name": "c", "queue": "{t}x",
            "on_failure": "ignore", "attempts": 3}]})
        )
        .is_ok());
    }
}
