//! Flows: a parent job that starts once all its children are done, and reads their
//! results ([`Queue::add_flow`], [`FlowJob`]).
//!
//! A flow is added in one `flow.lua` call, so all of it or none. A parent waits in state
//! `waiting-children`; each child's `keep` field names its parent (a tail the finishing
//! scripts read anyway), and every way a child finishes for good (`finish_job` in
//! `lua/common.lua`: completed, failed, cancelled, failed as stalled) records its outcome
//! in a field of the parent's job hash and counts it off; the last one makes the parent
//! ready. A child failing under [`ChildFailure::FailParent`] fails the parent at once.
//! Cancelling a parent cancels its unfinished children, and theirs.
//!
//! Children may be on other queues. A script touches one Redis Cluster slot, so on a
//! Cluster every queue of a flow must be in the parent's slot: name them with a common
//! `{tag}` prefix (`{shop}orders`, `{shop}emails`: Redis hashes only the tag). This is
//! checked before anything is sent. On one Redis (or Sentinel) any queues will do.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::add::{build, check};
use super::Queue;
use crate::error::{Error, Result};
use crate::job::{parent_tail, ChildFailure, JobOptions, JobRef};
use crate::keys::Keys;
use crate::scripts::{self, FlowNode, FlowReply};

/// The most jobs one flow may hold.
pub const MAX_FLOW_JOBS: usize = 10_000;

/// One job of a flow, with its children (each a `FlowJob`, so flows nest).
#[derive(Debug, Clone)]
pub struct FlowJob {
    queue: Option<String>,
    name: String,
    /// The payload as MessagePack, or why it could not be encoded.
    data: std::result::Result<Vec<u8>, String>,
    opts: JobOptions,
    on_failure: ChildFailure,
    children: Vec<FlowJob>,
}

impl FlowJob {
    /// A job named `name` with payload `data`, on the queue of [`Queue::add_flow`] (or,
    /// for a child, its parent's) unless [`FlowJob::queue`] says otherwise.
    pub fn new<T: Serialize>(name: impl Into<String>, data: &T) -> FlowJob {
        FlowJob {
            queue: None,
            name: name.into(),
            data: rmp_serde::to_vec_named(data).map_err(|e| e.to_string()),
            opts: JobOptions::default(),
            on_failure: ChildFailure::default(),
            children: Vec::new(),
        }
    }
    /// The queue this job runs on.
    pub fn queue(mut self, queue: impl Into<String>) -> FlowJob {
        self.queue = Some(queue.into());
        self
    }
    /// Its options. A flow takes no dedup key, and a job with children no delay (it
    /// starts when they are done).
    pub fn opts(mut self, opts: JobOptions) -> FlowJob {
        self.opts = opts;
        self
    }
    /// What this job failing for good does to its parent (default: fails it).
    pub fn on_failure(mut self, f: ChildFailure) -> FlowJob {
        self.on_failure = f;
        self
    }
    /// Adds a child: this job starts once all its children are done.
    pub fn child(mut self, child: FlowJob) -> FlowJob {
        self.children.push(child);
        self
    }
    /// Adds children.
    pub fn children(mut self, children: impl IntoIterator<Item = FlowJob>) -> FlowJob {
        self.children.extend(children);
        self
    }
}

/// What [`Queue::add_flow`] did: the tree of jobs with their ids, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowAdded {
    /// The queue.
    pub queue: String,
    /// The job id (given or made).
    pub id: String,
    /// False when the root's id existed: the flow was added before and nothing changed
    /// (then every job of the answer says false).
    pub added: bool,
    /// Its children.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<FlowAdded>,
}

/// Flattens a flow, parents before their children.
struct Flattener<'a> {
    queue: &'a Queue,
    nodes: Vec<FlowNode>,
}

impl Flattener<'_> {
    /// Adds `job` (on `queue`, under the parent at `parent`, 1-based, 0 for none) and
    /// its children; returns the tree of ids.
    fn add(&mut self, job: &FlowJob, queue: &str, parent: usize) -> Result<FlowAdded> {
        let queue = job.queue.as_deref().unwrap_or(queue);
        crate::validate::queue_name(queue)?;
        if self.nodes.len() >= MAX_FLOW_JOBS {
            return Err(Error::Invalid(format!(
                "a flow holds at most {MAX_FLOW_JOBS} jobs"
            )));
        }
        let o = &job.opts;
        if o.dedup.is_some() {
            return Err(Error::Invalid(format!(
                "job {:?} of a flow has a dedup key: flows take none",
                job.name
            )));
        }
        if !job.children.is_empty() && !o.delay.is_zero() {
            return Err(Error::Invalid(format!(
                "job {:?} has children and a delay: a parent starts when its children are \
                 done (delay a child instead)",
                job.name
            )));
        }
        let (id, delay) = check(&job.name, o)?;
        let payload = job.data.clone().map_err(Error::Encode)?;
        if payload.len() > self.queue.max_payload {
            return Err(Error::PayloadTooLarge {
                id,
                limit: self.queue.max_payload,
            });
        }
        let args = build(
            &job.name,
            o,
            id,
            delay,
            payload,
            self.queue.keyring.as_deref(),
        );
        let (kc, kf) = (args.keep_completed, args.keep_failed);
        let mut keep = format!("{}:{}:{}:{}", kc.0, kc.1, kf.0, kf.1);
        if let Some(g) = &args.group {
            keep.push_str("|g");
            keep.push_str(g);
        }
        if parent > 0 {
            let p = &self.nodes[parent - 1];
            let pref = JobRef {
                queue: p.keys.queue().to_string(),
                id: p.job.id.clone(),
            };
            keep.push_str(&parent_tail(queue, &pref, job.on_failure));
        }
        let id = args.id.clone();
        self.nodes.push(FlowNode {
            keys: Keys::new(queue),
            job: args,
            keep,
            parent,
            children: job.children.len(),
        });
        let me = self.nodes.len();
        let children = job
            .children
            .iter()
            .map(|c| self.add(c, queue, me))
            .collect::<Result<Vec<_>>>()?;
        Ok(FlowAdded {
            queue: queue.to_string(),
            id,
            added: true,
            children,
        })
    }
}

fn mark_not_added(f: &mut FlowAdded) {
    f.added = false;
    f.children.iter_mut().for_each(mark_not_added);
}

impl Queue {
    /// Adds a flow rooted at `root` (on this queue unless it names another): all of its
    /// jobs or none, in one call. Jobs with children wait in state `waiting-children`
    /// until every child is done; see [`FlowJob`] and [`ChildFailure`], and the module
    /// docs of `src/queue/flow.rs` for queues on a Cluster.
    ///
    /// Sent again with the root's id (after [`Error::MaybeAdded`]), nothing changes and
    /// `added` is false; any other id that exists refuses the whole flow.
    pub async fn add_flow(&self, root: &FlowJob) -> Result<FlowAdded> {
        self.check_name()?;
        let mut f = Flattener {
            queue: self,
            nodes: Vec::new(),
        };
        let mut added = f.add(root, self.name(), 0)?;
        let nodes = f.nodes;
        let mut queues: Vec<&str> = nodes.iter().map(|n| n.keys.queue()).collect();
        queues.sort_unstable();
        queues.dedup();
        for q in &queues {
            super::registry::ensure_or_warn(&self.conn, q).await;
        }
        let sent = AtomicBool::new(false);
        let r = self
            .bounded(async {
                let mut c = self.conn().await?;
                if c.is_cluster() {
                    same_slot(&nodes)?;
                }
                sent.store(true, Ordering::SeqCst);
                scripts::add_flow(&mut c, &nodes).await
            })
            .await;
        match r {
            Ok(FlowReply::Added) => {
                for n in &nodes {
                    metrics::counter!(crate::metrics::JOBS_ENQUEUED, "queue" => n.keys.queue().to_string())
                        .increment(1);
                }
                Ok(added)
            }
            Ok(FlowReply::Exists) => {
                mark_not_added(&mut added);
                Ok(added)
            }
            Ok(FlowReply::Taken(id)) => Err(Error::Invalid(format!(
                "job {id:?} of this flow exists already: only the root's id may be sent again"
            ))),
            Err(e) if sent.load(Ordering::SeqCst) && e.is_connection() => Err(Error::MaybeAdded {
                ids: vec![added.id],
                detail: e.to_string(),
            }),
            Err(e) => Err(e),
        }
    }
}

/// On a Cluster: every queue of the flow in the root's slot, or a refusal that says how.
fn same_slot(nodes: &[FlowNode]) -> Result<()> {
    use redis::cluster_routing::Slot;
    let root = nodes[0].keys.queue();
    let slot = Slot::for_key(nodes[0].keys.meta());
    match nodes.iter().find(|n| Slot::for_key(n.keys.meta()) != slot) {
        None => Ok(()),
        Some(n) => Err(Error::Invalid(format!(
            "queue {:?} is not in the Redis Cluster slot of queue {root:?}: a flow's jobs must \
             share one slot; name its queues with a common {{tag}} prefix, e.g. \
             \"{{shop}}orders\" and \"{{shop}}emails\"",
            n.keys.queue()
        ))),
    }
}
