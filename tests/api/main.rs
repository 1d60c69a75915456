//! Black-box API tests (being written).
