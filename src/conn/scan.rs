//! SCAN over every master: a queue's keys live on the master that owns its slot, and
//! queue discovery must look at all of them. One place pages through the nodes and
//! cursors, so callers only see pages of key names.

use redis::aio::MultiplexedConnection;

use super::connector::{Connector, Node};
use crate::error::Result;

/// Pages of keys matching a pattern, master by master (replicas are skipped: they hold
/// copies of the same keys).
pub struct MasterScan {
    nodes: std::vec::IntoIter<Node>,
    pattern: String,
    count: usize,
    /// The master being scanned and the cursor to continue from.
    current: Option<(MultiplexedConnection, u64)>,
}

impl MasterScan {
    /// A scan of `pattern`, asking for about `count` keys per page.
    pub async fn new(connector: &Connector, pattern: &str, count: usize) -> Result<MasterScan> {
        let masters: Vec<Node> = connector
            .nodes()
            .await?
            .into_iter()
            .filter(|n| n.primary)
            .collect();
        Ok(MasterScan {
            nodes: masters.into_iter(),
            pattern: pattern.to_string(),
            count: count.max(1),
            current: None,
        })
    }

    /// The next page (possibly empty, as SCAN allows), or `None` when every master is
    /// done.
    pub async fn next_page(&mut self) -> Result<Option<Vec<String>>> {
        loop {
            let (conn, cursor) = match self.current.as_mut() {
                Some(cur) => cur,
                None => match self.nodes.next() {
                    Some(node) => self.current.insert((node.connect().await?, 0)),
                    None => return Ok(None),
                },
            };
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(*cursor)
                .arg("MATCH")
                .arg(&self.pattern)
                .arg("COUNT")
                .arg(self.count)
                .query_async(conn)
                .await?;
            if next == 0 {
                self.current = None;
            } else {
                *cursor = next;
            }
            if !keys.is_empty() || self.current.is_none() {
                return Ok(Some(keys));
            }
        }
    }
}
