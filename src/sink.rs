//! Token sink.
