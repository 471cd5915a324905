//! Workgroup-size autotuner (being written).
