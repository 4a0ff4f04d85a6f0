//! The exec worker's handler: runs a command per job (any language).

use std::time::Duration;

use crate::worker::{Handler, HandlerFuture, JobContext};

/// How to run the command.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// Program to run.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Time between SIGTERM and SIGKILL to the child's process group.
    pub kill_grace: Duration,
}

/// Runs `ExecConfig` per job.
#[derive(Debug, Clone)]
pub struct ExecHandler {
    cfg: ExecConfig,
}

impl ExecHandler {
    /// A handler that runs `cfg` per job.
    pub fn new(cfg: ExecConfig) -> Self {
        ExecHandler { cfg }
    }
}

impl Handler for ExecHandler {
    fn handle(&self, ctx: JobContext) -> HandlerFuture {
        let _ = (&self.cfg, ctx);
        todo!("exec handler")
    }
}

/// Makes this process adopt orphaned descendants and reaps them, so grandchildren never
/// linger as zombies (also when baton runs as PID 1).
pub fn start_reaper() {}
