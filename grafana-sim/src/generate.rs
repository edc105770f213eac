//! Generator of large, realistic estates.
