//! Groups (issue 11.2): fair turns between a queue's groups, per-group concurrency and
//! rate limits, and "rate limited, retry after D". Worker processes are `baton worker
//! --exec` running a shell fixture that appends `start ID` / `end ID` lines to a ledger
//! file: appends are atomic and ordered, so the ledger's line order is the real order of
//! starts and ends over every process.

mod fairness;
mod procs;
mod recovery;
mod retry_after;
mod surfaces;
