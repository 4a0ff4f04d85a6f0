//! `baton watch`: counts per state and completion/failure rates, redrawn in place on a
//! terminal, printed frame after frame into a pipe or a file.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use baton::{Queue, Result};

pub async fn run(
    conn: &baton::conn::SharedConn,
    one: Option<String>,
    interval: Duration,
    iterations: u64,
) -> Result<ExitCode> {
    let url = conn.connector().endpoint().to_string();
    let mut last: HashMap<String, (Instant, u64, u64)> = HashMap::new();
    let mut n = 0u64;
    let tty = std::io::stdout().is_terminal();
    loop {
        let names = match &one {
            Some(q) => vec![q.clone()],
            None => Queue::discover(conn).await?,
        };
        let mut rows = Vec::new();
        for name in names {
            let c = Queue::with_conn(conn.clone(), &name).counts().await?;
            let now = Instant::now();
            let (rate_done, rate_failed) = match last.get(&name) {
                Some((t, done, failed)) => {
                    let dt = now.duration_since(*t).as_secs_f64().max(1e-3);
                    (
                        c.completed.saturating_sub(*done) as f64 / dt,
                        c.failed.saturating_sub(*failed) as f64 / dt,
                    )
                }
                None => (0.0, 0.0),
            };
            last.insert(name.clone(), (now, c.completed, c.failed));
            rows.push((name, c, rate_done, rate_failed));
        }
        // The queue column is as wide as the longest name, so the counts stay under
        // their headings whatever the names.
        let w = rows.iter().map(|r| r.0.len()).fold(20, usize::max);
        // Only a terminal gets the clear-screen code: in a pipe or a file the frames
        // follow one another, a blank line apart, readable and greppable.
        let mut out = if tty {
            String::from("\x1b[2J\x1b[H")
        } else if n > 0 {
            String::from("\n")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "baton watch  {}  (every {:?}, Ctrl-C to stop)\n\n{:<w$} {:>8} {:>8} {:>7} {:>10} {:>8} {:>9} {:>10} {:>9}\n",
            url, interval, "QUEUE", "WAITING", "DELAYED", "ACTIVE", "COMPLETED", "FAILED", "CANCELLED", "DONE/s", "FAILED/s"
        ));
        for (name, c, rate_done, rate_failed) in rows {
            out.push_str(&format!(
                "{:<w$} {:>8} {:>8} {:>7} {:>10} {:>8} {:>9} {:>10.1} {:>9.1}\n",
                name,
                c.waiting,
                c.delayed,
                c.active,
                c.completed,
                c.failed,
                c.cancelled,
                rate_done,
                rate_failed
            ));
        }
        print!("{out}");
        let _ = std::io::stdout().flush();
        n += 1;
        if iterations > 0 && n >= iterations {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}
