//! podrun-container
