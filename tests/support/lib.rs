//! Test harness for the black-box API tests (being written).
