//! Tiered buffer-residency cache (being written).
