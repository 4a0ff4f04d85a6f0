//! The CLI (`baton limit --group-concurrency/--group-rate`, `baton add --group`,
//! `stats`) and what is refused.

use baton::JobOptions;

use super::procs::Env;

#[tokio::test]
async fn the_cli_sets_and_shows_group_limits() {
    let env = Env::single();
    let set: serde_json::Value = serde_json::from_str(&env.cli(&[
        "limit",
        "gq",
        "--group-concurrency",
        "2",
        "--group-rate",
        "5/1s",
        "--json",
    ]))
    .unwrap();
    assert_eq!(set["group_concurrency"], 2, "{set}");
    assert_eq!(
        set["group_rate"],
        serde_json::json!({"max": 5, "per_ms": 1000})
    );
    // One given, the other stays.
    let set: serde_json::Value =
        serde_json::from_str(&env.cli(&["limit", "gq", "--group-concurrency", "3", "--json"]))
            .unwrap();
    assert_eq!(set["group_concurrency"], 3, "{set}");
    assert_eq!(set["group_rate"]["max"], 5, "{set}");
    env.cli(&["add", "gq", "--group", "tenant-1", "--name", "x", "{}"]);
    env.cli(&["add", "gq", "--group", "tenant-2", "--name", "x", "{}"]);
    let stats: serde_json::Value =
        serde_json::from_str(&env.cli(&["stats", "gq", "--json"])).unwrap();
    assert_eq!(stats["group_concurrency"], 3, "{stats}");
    assert_eq!(stats["groups_ready"], 2, "{stats}");
    assert_eq!(
        stats["waiting"], 2,
        "grouped jobs count as waiting: {stats}"
    );
    let text = env.cli(&["stats", "gq"]);
    assert!(text.contains("per group at most 3 running"), "{text}");
    assert!(text.contains("per group at most 5/1s started"), "{text}");
    assert!(text.contains("groups: 2 in line"), "{text}");
    let unset: serde_json::Value = serde_json::from_str(&env.cli(&[
        "limit",
        "gq",
        "--group-concurrency",
        "0",
        "--group-rate",
        "none",
        "--json",
    ]))
    .unwrap();
    assert!(unset["group_concurrency"].is_null() && unset["group_rate"].is_null());
}

#[tokio::test]
async fn bad_groups_are_refused_and_nothing_is_added() {
    let env = Env::single();
    let q = env.queue("gbad");
    for (g, why) in [
        ("", "1 to 128 bytes"),
        ("a{b}", "braces"),
        ("a\nb", "control"),
    ] {
        let e = q
            .add("n", &1, JobOptions::default().group(g))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(why), "{g:?}: {e}");
    }
    let e = q
        .add("n", &1, JobOptions::default().group("t").priority(3))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot have a priority"), "{e}");
    assert_eq!(q.counts().await.unwrap().waiting, 0);
    let e = q
        .set_group_limits(None, Some((0, std::time::Duration::from_secs(1))))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("at least 1 job"), "{e}");
}

#[tokio::test]
async fn waiting_jobs_of_groups_are_listed_after_the_others_page_by_page() {
    let env = Env::single();
    let q = env.queue("lq");
    for id in ["u1", "u2"] {
        q.add("n", &0, JobOptions::default().job_id(id))
            .await
            .unwrap();
    }
    for (g, ids) in [("b", ["b1", "b2"]), ("a", ["a1", "a2"])] {
        for id in ids {
            q.add("n", &0, JobOptions::default().job_id(id).group(g))
                .await
                .unwrap();
        }
    }
    let all = q.list(baton::JobState::Waiting, 0, 100).await.unwrap();
    // Ungrouped first, then group by group in name order, each next-to-run first.
    assert_eq!(all, ["u1", "u2", "a1", "a2", "b1", "b2"]);
    assert_eq!(q.counts().await.unwrap().waiting, 6);
    let mut paged = Vec::new();
    for start in (0..6).step_by(4) {
        paged.extend(q.list(baton::JobState::Waiting, start, 4).await.unwrap());
    }
    assert_eq!(paged, all, "pages join up");
    assert_eq!(
        q.list(baton::JobState::Waiting, 3, 2).await.unwrap(),
        ["a2", "b1"],
        "a page may start inside a group"
    );
}
