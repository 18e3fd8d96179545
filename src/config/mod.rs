//! TODO(config helper)
