//! TODO(demand helper)
