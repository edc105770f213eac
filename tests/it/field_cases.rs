//! Field cases of field-cases.md that concern migrate, one test each.
