//! Ready jobs of groups for counts and listings: they wait in their groups' lists
//! (`g:<group>:wait`), not in the wait list.

use redis::AsyncCommands;

use crate::error::Result;
use crate::keys::Keys;

/// Groups looked at by [`grouped_waiting`], per set.
const MAX_GROUPS_COUNTED: isize = 1000;

/// Ready jobs of groups: a group with ready jobs is in line (gready), held back
/// (glimited) or at its concurrency (so in gactive); the lists of the first
/// [`MAX_GROUPS_COUNTED`] of each are summed (a second round trip, only for a queue
/// that has had groups).
pub(super) async fn grouped_waiting(c: &mut crate::conn::RedisConn, k: &Keys) -> Result<u64> {
    let all = group_names(c, k).await?;
    if all.is_empty() {
        return Ok(0);
    }
    let mut p = redis::pipe();
    for g in &all {
        p.llen(k.group_wait(g));
    }
    let lens: Vec<u64> = p.query_async(c).await?;
    Ok(lens.into_iter().sum())
}

/// The groups that may have ready jobs (see [`grouped_waiting`]), sorted by name.
async fn group_names(
    c: &mut crate::conn::RedisConn,
    k: &Keys,
) -> Result<std::collections::BTreeSet<String>> {
    let (ready, limited, active): (Vec<String>, Vec<String>, Vec<String>) = redis::pipe()
        .zrange(k.groups_ready(), 0, MAX_GROUPS_COUNTED - 1)
        .zrange(k.groups_limited(), 0, MAX_GROUPS_COUNTED - 1)
        .cmd("HSCAN")
        .arg(k.groups_active())
        .arg(0)
        .arg("COUNT")
        .arg(MAX_GROUPS_COUNTED)
        .query_async::<(Vec<String>, Vec<String>, (u64, Vec<String>))>(c)
        .await
        .map(|(r, l, (_, a))| (r, l, a.into_iter().step_by(2).collect()))?;
    Ok(ready.into_iter().chain(limited).chain(active).collect())
}

/// Up to `count` ready ids of groups, after skipping `skip`: group by group in name
/// order, each next-to-run first (a group's list is claimed from its right end).
pub(super) async fn grouped_ids(
    c: &mut crate::conn::RedisConn,
    k: &Keys,
    mut skip: usize,
    count: usize,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for g in group_names(c, k).await? {
        let len: usize = c.llen(k.group_wait(&g)).await?;
        if skip >= len {
            skip -= len;
            continue;
        }
        let need = count - out.len();
        let mut ids: Vec<String> = c
            .lrange(
                k.group_wait(&g),
                -((skip + need) as isize),
                -(skip as isize) - 1,
            )
            .await?;
        ids.reverse();
        out.extend(ids);
        skip = 0;
        if out.len() >= count {
            break;
        }
    }
    Ok(out)
}
