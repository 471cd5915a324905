//! Compiled-pipeline caches (being written).
