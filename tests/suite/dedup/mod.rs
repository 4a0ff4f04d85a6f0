//! Deduplication of adds (`dedup` key: simple, ttl, debounce): the library on one
//! Redis and on a 3-master Redis Cluster (the same scenarios), the CLI (also many
//! `baton add` processes at once) and the HTTP API.

mod cluster;
mod library;
mod scenarios;
mod surfaces;
