//! Tests of config loading and validation.

use super::*;

// placeholder
#[test]
fn placeholder() {
    assert!(true);
}
