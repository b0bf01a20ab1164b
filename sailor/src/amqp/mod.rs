//! The AMQP transport of the worker, wire-compatible with elastic.io's sailors: a read
//! connection whose [`consumer`] takes deliveries from the step's queue, a write connection
//! whose [`publisher`] publishes on a confirm channel, the [`headers`] both sides speak, and
//! the [`sink`] that writes one delivery's events on the wire. [`connection`] opens both.
//! [`account_keys`] shares an account's keys with every other process of the account.

pub mod account_keys;
pub mod connection;
pub mod consumer;
pub mod error_input;
pub mod headers;
pub mod keys;
pub mod publisher;
pub mod sink;
