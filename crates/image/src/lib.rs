//! podrun-image
