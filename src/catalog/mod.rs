//! TODO(catalog helper)
