//! `spmv`: personalised PageRank on a seeded web-like graph, by CSR
//! sparse matrix-vector products iterated until convergence.
//!
//! The graph's transposed link matrix is three buffers (`row_ptr`,
//! `col_idx`, `vals`) uploaded once and read by every iteration of every
//! query. A query uploads its teleport vector and start vector, then
//! alternates `y = step(x)` (a gather `x[col_idx[k]]` per non-zero) with
//! the L1 distance `|y - x|` summed per workgroup; the host reads the
//! partial sums back and stops below a tolerance, so the number of
//! dispatches depends on the data, as in a real solver. The query's
//! vectors are freed when it ends.
//!
//! For a cache: a large read-only working set (the matrix, about 8 bytes a
//! non-zero) reused every iteration, small vectors that are rewritten every
//! iteration (two buffers alternating between written and read), and
//! tiny per-iteration readbacks. With a budget below the matrix, every
//! iteration streams it again.

use rand::Rng;
use serde::Serialize;

use super::kernels::{L1_PARTIAL, SPMV_PAGERANK, Specialised};
use super::{Session, Verified, rng};
use crate::gpu::GpuResult;

/// The graph and the solver's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SpmvParams {
    /// Pages (rows and columns of the matrix).
    pub nodes: u32,
    /// Largest out-degree of a page (degrees are skewed toward 1).
    pub max_out_degree: u32,
    /// Queries: the first is global PageRank, the rest personalised to
    /// `seeds_per_query` random pages each.
    pub queries: u32,
    /// Pages a personalised query teleports to.
    pub seeds_per_query: u32,
    /// Damping factor.
    pub damping: f32,
    /// Stop when the L1 change of an iteration is below this.
    pub tolerance: f32,
    /// Stop after this many iterations regardless.
    pub max_iterations: u32,
}

impl SpmvParams {
    /// Sizes at `scale`: `4096 * scale` pages, about 10 links each.
    pub fn at_scale(scale: u32) -> SpmvParams {
        SpmvParams {
            nodes: 4096 * scale,
            max_out_degree: 31,
            queries: 4,
            seeds_per_query: 8,
            damping: 0.85,
            tolerance: 1e-6,
            max_iterations: 100,
        }
    }
}

impl SpmvParams {
    /// Bytes of the largest buffer, at most (`col_idx` or `vals` when
    /// every page has the largest out-degree).
    pub fn largest_buffer_bytes(&self) -> u64 {
        4 * u64::from(self.nodes) * u64::from(self.max_out_degree)
    }
}

/// The transposed link matrix in CSR: row = destination page, one entry
/// per link with value 1 / out-degree of its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    /// `nodes + 1` offsets into `col_idx` and `vals`.
    pub row_ptr: Vec<u32>,
    /// Source page of each entry (ascending within a row).
    pub col_idx: Vec<u32>,
    /// 1 / out-degree of the source.
    pub vals: Vec<f32>,
}

/// A seeded graph: out-degrees `1 + floor(max * r^2)` (most pages link
/// little), half of the links to uniform pages and half skewed toward low
/// page ids (popular pages, so gathers hit a hot region of `x`). Every
/// page has a link, so no rank leaks out of dangling pages.
pub fn graph(p: &SpmvParams, seed: u64) -> Csr {
    let mut r = rng(seed, 3);
    let n = p.nodes as usize;
    let mut edges: Vec<(u32, u32)> = Vec::new();
    let mut out_degree = vec![0u32; n];
    for (src, degree) in out_degree.iter_mut().enumerate() {
        let u: f64 = r.random();
        *degree = 1 + (f64::from(p.max_out_degree - 1) * u * u) as u32;
        for _ in 0..*degree {
            let dst = if r.random::<bool>() {
                r.random_range(0..p.nodes)
            } else {
                let v: f64 = r.random();
                ((v * v * f64::from(p.nodes)) as u32).min(p.nodes - 1)
            };
            edges.push((dst, src as u32));
        }
    }
    // Counting sort by destination; sources stay ascending within a row.
    let mut row_ptr = vec![0u32; n + 1];
    for &(dst, _) in &edges {
        row_ptr[dst as usize + 1] += 1;
    }
    for i in 0..n {
        row_ptr[i + 1] += row_ptr[i];
    }
    let mut fill = row_ptr.clone();
    let mut col_idx = vec![0u32; edges.len()];
    let mut vals = vec![0f32; edges.len()];
    for &(dst, src) in &edges {
        let at = fill[dst as usize] as usize;
        col_idx[at] = src;
        vals[at] = 1.0 / out_degree[src as usize] as f32;
        fill[dst as usize] += 1;
    }
    Csr { row_ptr, col_idx, vals }
}

fn step_cpu(m: &Csr, x: &[f32], teleport: &[f32], damping: f32) -> Vec<f32> {
    (0..teleport.len())
        .map(|i| {
            let (a, b) = (m.row_ptr[i] as usize, m.row_ptr[i + 1] as usize);
            let mut acc = 0f32;
            for k in a..b {
                acc += m.vals[k] * x[m.col_idx[k] as usize];
            }
            (1.0 - damping) * teleport[i] + damping * acc
        })
        .collect()
}

/// Runs the queries, recording; checks each query's final ranks against
/// the CPU running the same number of iterations.
///
/// # Errors
/// Device, trace or integrity errors (see [`super::record`]).
pub fn run(s: &mut Session<'_>, p: &SpmvParams, seed: u64) -> GpuResult<Verified> {
    let m = graph(p, seed);
    let n = p.nodes as usize;
    let row_ptr = s.upload_u32("spmv row_ptr", &m.row_ptr)?;
    let col_idx = s.upload_u32("spmv col_idx", &m.col_idx)?;
    let vals = s.upload_f32("spmv vals", &m.vals)?;
    let step = Specialised::new(
        &SPMV_PAGERANK,
        "spmv_csr_pagerank",
        &[("N", f64::from(p.nodes)), ("DAMPING", f64::from(p.damping))],
    );
    let l1 = Specialised::new(&L1_PARTIAL, "l1_distance_partial", &[("N", f64::from(p.nodes))]);
    let rows = step.groups_for([p.nodes, 1, 1]);
    let partial_groups = l1.groups_for([p.nodes, 1, 1]);
    let mut pick = rng(seed, 4);
    let mut verified = Verified::default();
    for q in 0..p.queries {
        let teleport_host: Vec<f32> = if q == 0 {
            vec![1.0 / n as f32; n]
        } else {
            let mut t = vec![0f32; n];
            for _ in 0..p.seeds_per_query {
                t[pick.random_range(0..n)] += 1.0 / p.seeds_per_query as f32;
            }
            t
        };
        let teleport = s.upload_f32(&format!("spmv query {q} teleport"), &teleport_host)?;
        let mut x = s.upload_f32(&format!("spmv query {q} ranks a"), &teleport_host)?;
        let mut y = s.zeroed_f32(&format!("spmv query {q} ranks b"), n)?;
        let partial = s.zeroed_f32(&format!("spmv query {q} l1 partial"), partial_groups[0] as usize)?;
        let mut iterations = 0;
        loop {
            s.dispatch(&step, &[row_ptr, col_idx, vals, x, teleport, y], rows)?;
            s.dispatch(&l1, &[x, y, partial], partial_groups)?;
            iterations += 1;
            let change: f32 = s.read_f32(partial)?.iter().sum();
            std::mem::swap(&mut x, &mut y);
            if change < p.tolerance || iterations == p.max_iterations {
                break;
            }
        }
        let ranks = s.read_f32(x)?;
        let mut ranks_host = teleport_host.clone();
        for _ in 0..iterations {
            ranks_host = step_cpu(&m, &ranks_host, &teleport_host, p.damping);
        }
        verified.check(
            &format!("spmv query {q} ranks after {iterations} iterations"),
            &ranks,
            &ranks_host,
            1e-6,
            1e-4,
        )?;
        for buf in [teleport, x, y, partial] {
            s.free(buf)?;
        }
    }
    Ok(verified)
}
