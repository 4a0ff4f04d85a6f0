//! `baton demo`.
use std::process::ExitCode;
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}
pub async fn run(_url: Option<String>, _a: DemoArgs) -> baton::Result<ExitCode> { todo!() }
