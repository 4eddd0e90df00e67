//! A busy hour.
