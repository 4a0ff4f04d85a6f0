//! `flow.lua`: a flow (parents and their children) added in one call.

use redis::aio::ConnectionLike;
use redis::Value;

use super::{NewJobArgs, FLOW};
use crate::error::{Error, Result};
use crate::keys::Keys;

/// One job of a flow as `flow.lua` takes it: its queue's keys, the job, its parent's
/// index in the call (1-based, 0 for the root) and how many children it has.
pub(crate) struct FlowNode {
    pub keys: Keys,
    pub job: NewJobArgs,
    /// The job's `keep` field in full: retention, then the group and parent tails.
    pub keep: String,
    pub parent: usize,
    pub children: usize,
}

/// What `flow.lua` did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FlowReply {
    /// Every job was added.
    Added,
    /// The root exists (the flow was added before); nothing changed.
    Exists,
    /// A job of this id (not the root) exists; nothing changed.
    Taken(String),
}

/// `flow.lua`: adds `nodes` (parents before their children) atomically.
pub(crate) async fn add_flow<C: ConnectionLike + Send>(
    c: &mut C,
    nodes: &[FlowNode],
) -> Result<FlowReply> {
    let mut inv = FLOW.prepare_invoke();
    inv.key(nodes[0].keys.meta());
    inv.arg(nodes.len());
    for n in nodes {
        let j = &n.job;
        inv.arg(n.keys.prefix())
            .arg(&j.id)
            .arg(&j.spec[..])
            .arg(j.delay.as_millis() as u64)
            .arg(j.priority)
            .arg(&n.keep)
            .arg(n.parent)
            .arg(n.children)
            .arg(if j.fresh { "1" } else { "0" });
    }
    let out: Vec<Value> = inv.invoke_async(c).await?;
    match out.as_slice() {
        [Value::Int(1)] => Ok(FlowReply::Added),
        [Value::Int(0)] => Ok(FlowReply::Exists),
        [Value::Int(-1), Value::BulkString(id)] => {
            Ok(FlowReply::Taken(String::from_utf8_lossy(id).into_owned()))
        }
        v => Err(Error::Decode(format!("flow reply: {v:?}"))),
    }
}
