//! The exec worker (`baton worker --exec -- CMD`) end to end: the real `baton` binary
//! against a real redis-server, running tests/fixtures/job.sh per job.

mod cancel;
mod job_waits;
mod orphans;
mod outcomes;
mod procfs;
mod shutdown;
mod worker_proc;
