//! `baton bench`.
use std::process::ExitCode;
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}
pub async fn run(_url: &str, _given: Option<String>, _a: BenchArgs) -> baton::Result<ExitCode> { todo!() }
