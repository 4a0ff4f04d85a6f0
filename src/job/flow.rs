//! What a flow leaves on its jobs: a child's parent (a tail of its `keep` field) and a
//! parent's children (fields `\t<queue>\t<id>` of its job hash), read back by [`crate::Queue::job`],
//! the CLI, the dashboard and [`crate::JobContext::children`]. The formats are the ones
//! `lua/common.lua` documents (`split_tail`, `child_finished`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a child failing for good (failed, cancelled) does to its parent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChildFailure {
    /// The parent fails at once, naming the child (the default). Its other children
    /// run on; their outcomes are still recorded on the parent.
    #[default]
    FailParent,
    /// The parent runs anyway once all its children are done, and reads the failure
    /// among its children's outcomes.
    Ignore,
}

impl ChildFailure {
    fn mark(self) -> char {
        match self {
            ChildFailure::FailParent => 'f',
            ChildFailure::Ignore => 'i',
        }
    }
}

/// A job's place in a flow: its queue and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRef {
    /// The queue.
    pub queue: String,
    /// The job id.
    pub id: String,
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.queue, self.id)
    }
}

/// One child of a flow's parent, as the parent sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    /// The child's queue and id.
    pub job: JobRef,
    /// How it ended, if it has.
    pub outcome: ChildOutcome,
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildOutcome {
    /// Not finished yet.
    Pending,
    /// Completed with this result (MessagePack).
    Completed(Vec<u8>),
    /// Failed or was cancelled, with this error.
    Failed(Vec<u8>),
}

/// A child as [`crate::JobInfo`] shows it (JSON: `queue`, `id`, `state`, and `result`
/// or `error`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildInfo {
    /// The child's queue.
    pub queue: String,
    /// The child's id.
    pub id: String,
    /// `pending`, `completed` or `failed` (failed or cancelled).
    pub state: &'static str,
    /// The completed child's result, decoded into JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The failed child's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<Child> for ChildInfo {
    fn from(c: Child) -> ChildInfo {
        let (state, result, error) = match &c.outcome {
            ChildOutcome::Pending => ("pending", None, None),
            ChildOutcome::Completed(b) => ("completed", Some(super::msgpack_to_json(b)), None),
            ChildOutcome::Failed(_) => ("failed", None, c.error()),
        };
        ChildInfo {
            queue: c.job.queue,
            id: c.job.id,
            state,
            result,
            error,
        }
    }
}

impl Child {
    /// The completed child's result decoded as `T`; None unless it completed.
    pub fn result<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match &self.outcome {
            ChildOutcome::Completed(b) => rmp_serde::from_slice(b)
                .map(Some)
                .map_err(|e| Error::Decode(format!("result of child {}: {e}", self.job))),
            _ => Ok(None),
        }
    }

    /// The failed or cancelled child's error; None unless it failed.
    pub fn error(&self) -> Option<String> {
        match &self.outcome {
            ChildOutcome::Failed(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A parent's children from the fields of its job hash (`\t<queue>\t<id>` → `""` |
/// `r`+result | `e`+error; other fields are skipped), sorted by queue and id; `open`
/// unseals results and errors.
pub(crate) fn parse_children<'a>(
    fields: impl IntoIterator<Item = (&'a String, &'a Vec<u8>)>,
    open: impl Fn(&[u8]) -> Vec<u8>,
) -> Vec<Child> {
    let mut out: Vec<Child> = fields
        .into_iter()
        .filter_map(|(k, v)| {
            let (queue, id) = k.strip_prefix('\t')?.split_once('\t')?;
            let outcome = match v.split_first() {
                None => ChildOutcome::Pending,
                Some((b'r', rest)) => ChildOutcome::Completed(open(rest)),
                Some((_, rest)) => ChildOutcome::Failed(open(rest)),
            };
            Some(Child {
                job: JobRef {
                    queue: queue.to_string(),
                    id: id.to_string(),
                },
                outcome,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.job.queue, &a.job.id).cmp(&(&b.job.queue, &b.job.id)));
    out
}

/// The tails of a job's `keep` field (after `kc:kca:kf:kfa`), as `keep_of` and
/// `split_tail` in `lua/common.lua` read them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct KeepTails {
    pub group: Option<String>,
    pub parent: Option<(JobRef, ChildFailure)>,
    /// The dedup key (without its mode).
    pub dedup: Option<String>,
}

/// The parent tail of a child on `queue` whose parent is `parent`:
/// `|p<policy><qlen>:<idlen>:<queue><id>`, the queue empty when it is the child's own.
pub(crate) fn parent_tail(queue: &str, parent: &JobRef, policy: ChildFailure) -> String {
    let pq = if parent.queue == queue {
        ""
    } else {
        &parent.queue
    };
    format!(
        "|p{}{}:{}:{pq}{}",
        policy.mark(),
        pq.len(),
        parent.id.len(),
        parent.id
    )
}

/// Reads the tails of the `keep` field of a job on `queue`.
pub(crate) fn parse_keep(queue: &str, keep: &str) -> KeepTails {
    let mut t = KeepTails::default();
    let Some(at) = keep.find('|') else { return t };
    let mut rest = &keep[at..];
    if let Some(g) = rest.strip_prefix("|g") {
        let end = g.find('|').unwrap_or(g.len());
        t.group = Some(g[..end].to_string());
        rest = &g[end..];
    }
    if let Some(p) = rest.strip_prefix("|p") {
        let parsed = (|| {
            let policy = match p.as_bytes().first()? {
                b'f' => ChildFailure::FailParent,
                b'i' => ChildFailure::Ignore,
                _ => return None,
            };
            let (ql, r) = p[1..].split_once(':')?;
            let (il, r) = r.split_once(':')?;
            let (ql, il): (usize, usize) = (ql.parse().ok()?, il.parse().ok()?);
            let pq = r.get(..ql)?;
            let id = r.get(ql..ql + il)?;
            let pq = if pq.is_empty() { queue } else { pq };
            let job = JobRef {
                queue: pq.to_string(),
                id: id.to_string(),
            };
            Some(((job, policy), r.get(ql + il..)?))
        })();
        match parsed {
            Some((parent, r)) => {
                t.parent = Some(parent);
                rest = r;
            }
            None => return t,
        }
    }
    if rest.len() > 2 && rest.starts_with('|') {
        t.dedup = Some(rest[2..].to_string());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(q: &str, id: &str) -> JobRef {
        JobRef {
            queue: q.into(),
            id: id.into(),
        }
    }

    #[test]
    fn keep_tails_read_back() {
        let tail = parent_tail("a", &r("{s}b", "p|1"), ChildFailure::Ignore);
        assert_eq!(tail, "|pi4:3:{s}bp|1");
        let keep = format!("0:0:-1:0|gtenant{tail}|sorder-7");
        let t = parse_keep("a", &keep);
        assert_eq!(t.group.as_deref(), Some("tenant"));
        assert_eq!(t.parent, Some((r("{s}b", "p|1"), ChildFailure::Ignore)));
        assert_eq!(t.dedup.as_deref(), Some("order-7"));
        // The parent on the child's own queue is stored without its name.
        let same = parent_tail("a", &r("a", "x"), ChildFailure::FailParent);
        assert_eq!(same, "|pf0:1:x");
        let t = parse_keep("a", &format!("1:2:3:4{same}"));
        assert_eq!(t.parent, Some((r("a", "x"), ChildFailure::FailParent)));
        assert_eq!(t.group, None);
        assert_eq!(parse_keep("a", "1:2:3:4"), KeepTails::default());
        assert_eq!(parse_keep("a", "1:2:3:4|sk").dedup.as_deref(), Some("k"));
    }

    #[test]
    fn children_read_back_sorted() {
        let fields: std::collections::BTreeMap<String, Vec<u8>> = [
            ("\tq\tb".to_string(), b"efailed".to_vec()),
            ("\tq\ta".to_string(), vec![b'r', 0xc3]),
            ("\tp\tz".to_string(), vec![]),
            ("state".to_string(), b"active".to_vec()),
            ("q\tz".to_string(), vec![]),
        ]
        .into();
        let c = parse_children(&fields, |b| b.to_vec());
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].job, r("p", "z"));
        assert_eq!(c[0].outcome, ChildOutcome::Pending);
        assert_eq!(c[1].result::<bool>().unwrap(), Some(true));
        assert_eq!(c[2].error().as_deref(), Some("failed"));
    }
}
