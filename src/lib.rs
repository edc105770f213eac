//! keyshift
