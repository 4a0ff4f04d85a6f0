//! What a handler is: an async function of a job that returns a result or a [`JobError`].

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::context::JobContext;

/// A boxed handler future: the result as MessagePack, or why it failed.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, JobError>> + Send>>;

/// Runs jobs. Most code uses [`handler_fn`]; the exec worker implements it directly.
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt of a job.
    fn handle(&self, ctx: JobContext) -> HandlerFuture;
}

/// Why an attempt did not succeed, and whether to try again.
///
/// Any `std::error::Error` converts into a retryable `JobError`, so `?` works in
/// handlers; [`JobError::fatal`] asks for no retry, [`JobError::retry_after`] for a
/// given delay.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    message: String,
    retry: Retry,
}

/// Whether and when a failed attempt runs again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// Per the job's attempts and backoff.
    Backoff,
    /// After this delay (if attempts remain).
    After(Duration),
    /// Never: the job fails now.
    Never,
    /// Rate limited: the job runs again after this delay without consuming an attempt,
    /// and its group (or, for a job without a group, the whole queue) starts no job
    /// before then.
    RateLimited(Duration),
}

impl JobError {
    /// A failure retried per the job's attempts and backoff.
    pub fn retry(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            retry: Retry::Backoff,
        }
    }
    /// A failure retried after `delay` (if attempts remain).
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        JobError {
            message: message.into(),
            retry: Retry::After(delay),
        }
    }
    /// "Rate limited, retry after `delay`": the job goes back, delayed by `delay`,
    /// without consuming an attempt, and its group (or, without a group, the whole
    /// queue) is held as long: no worker starts a job of it before then. For a service
    /// that said 429 / Retry-After.
    pub fn rate_limited(delay: Duration) -> Self {
        JobError {
            message: format!("rate limited, retry after {delay:?}"),
            retry: Retry::RateLimited(delay),
        }
    }
    /// A failure that is not retried: the job fails now.
    pub fn fatal(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            retry: Retry::Never,
        }
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The retry choice.
    pub fn retry_choice(&self) -> Retry {
        self.retry
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::retry(e.to_string())
    }
}

/// A handler from an async function of the decoded payload and the context.
///
/// A payload that does not decode as `T` fails the job at once, with no retry and a
/// reason that names the type: retrying cannot make bad bytes good.
pub fn handler_fn<T, R, F, Fut>(f: F) -> impl Handler
where
    T: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, JobError>> + Send + 'static,
{
    FnHandler { f, _t: PhantomData }
}

struct FnHandler<F, T> {
    f: F,
    _t: PhantomData<fn() -> T>,
}

impl<T, R, F, Fut> Handler for FnHandler<F, T>
where
    T: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, JobError>> + Send + 'static,
{
    fn handle(&self, ctx: JobContext) -> HandlerFuture {
        let data = match ctx.data::<T>() {
            Ok(d) => d,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let fut = (self.f)(data, ctx);
        Box::pin(async move {
            let r = fut.await?;
            rmp_serde::to_vec_named(&r)
                .map_err(|e| JobError::fatal(format!("result could not be encoded: {e}")))
        })
    }
}
