//! Bounded hot-path hints table (being written).
