//! `mlp`: batched inference of a residual MLP classifier.
//!
//! `input -> Linear+ReLU -> blocks x (Linear+ReLU, + residual) -> Linear ->
//! softmax`, over `passes` batches. The weights (one buffer per matrix and
//! per bias) are uploaded once and read by every pass in the same order;
//! activations live for one or two layers and are freed. So the weight set
//! is a loop the cache sees once per pass: with a device budget below it,
//! LRU evicts each weight just before its next use, while a policy that
//! keeps part of the loop resident hits on that part.

use rand::Rng;
use serde::Serialize;

use super::kernels::{ADD_INPLACE, MATMUL_BIAS_ACT, SOFTMAX_ROWS, Specialised};
use super::{Buf, Session, Verified, rng};
use crate::gpu::GpuResult;

/// The model's shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MlpParams {
    /// Rows per batch.
    pub batch: u32,
    /// Input features.
    pub input: u32,
    /// Hidden width.
    pub hidden: u32,
    /// Residual hidden blocks.
    pub blocks: u32,
    /// Output classes.
    pub classes: u32,
    /// Inference passes (batches).
    pub passes: u32,
}

impl MlpParams {
    /// Shapes at `scale`: widths grow linearly, weights quadratically
    /// (1.34 MiB at 1, 21 MiB at 4, 336 MiB at 16).
    pub fn at_scale(scale: u32) -> MlpParams {
        MlpParams { batch: 16, input: 512 * scale, hidden: 256 * scale, blocks: 3, classes: 64, passes: 6 }
    }

    /// `(k, n, relu)` of each linear layer, in order.
    pub fn layers(&self) -> Vec<(u32, u32, bool)> {
        let mut layers = vec![(self.input, self.hidden, true)];
        layers.extend((0..self.blocks).map(|_| (self.hidden, self.hidden, true)));
        layers.push((self.hidden, self.classes, false));
        layers
    }

    /// Bytes of the largest buffer (the input batch or a weight matrix).
    pub fn largest_buffer_bytes(&self) -> u64 {
        let input = 4 * u64::from(self.batch) * u64::from(self.input);
        self.layers().iter().map(|&(k, n, _)| 4 * u64::from(k) * u64::from(n)).fold(input, u64::max)
    }

    /// Bytes of all weights and biases.
    pub fn weight_bytes(&self) -> u64 {
        self.layers().iter().map(|&(k, n, _)| 4 * (u64::from(k) * u64::from(n) + u64::from(n))).sum()
    }
}

struct Layer {
    k: u32,
    n: u32,
    relu: bool,
    w: Vec<f32>,
    bias: Vec<f32>,
    w_buf: Buf,
    bias_buf: Buf,
}

fn linear(batch: u32, layer: &Layer) -> Specialised {
    let op = if layer.relu { "matmul_bias_relu" } else { "matmul_bias" };
    Specialised::new(
        &MATMUL_BIAS_ACT,
        op,
        &[
            ("M", f64::from(batch)),
            ("K", f64::from(layer.k)),
            ("N", f64::from(layer.n)),
            ("ACT", f64::from(u32::from(layer.relu))),
        ],
    )
}

/// The CPU mirror of one layer: the device sums in the same k order.
fn linear_cpu(x: &[f32], layer: &Layer, batch: usize) -> Vec<f32> {
    let (k, n) = (layer.k as usize, layer.n as usize);
    let mut out = vec![0f32; batch * n];
    for (row, out_row) in out.chunks_exact_mut(n).enumerate() {
        let x_row = &x[row * k..(row + 1) * k];
        for (kk, &xv) in x_row.iter().enumerate() {
            let w_row = &layer.w[kk * n..(kk + 1) * n];
            for (o, &wv) in out_row.iter_mut().zip(w_row) {
                *o += xv * wv;
            }
        }
        for (o, &b) in out_row.iter_mut().zip(&layer.bias) {
            *o += b;
            if layer.relu {
                *o = o.max(0.0);
            }
        }
    }
    out
}

fn softmax_cpu(logits: &mut [f32], cols: usize) {
    for row in logits.chunks_exact_mut(cols) {
        let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for v in row.iter_mut() {
            *v = (*v - top).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

/// Runs the inference passes, recording; checks every pass's class
/// probabilities against the CPU.
///
/// # Errors
/// Device, trace or integrity errors (see [`super::record`]).
pub fn run(s: &mut Session<'_>, p: &MlpParams, seed: u64) -> GpuResult<Verified> {
    let mut data = rng(seed, 1);
    let mut layers = Vec::new();
    for (i, (k, n, relu)) in p.layers().into_iter().enumerate() {
        // Uniform in +-sqrt(3/k): unit variance per output before the bias.
        let a = (3.0 / f64::from(k)).sqrt() as f32;
        let w: Vec<f32> = (0..k as usize * n as usize).map(|_| data.random_range(-a..a)).collect();
        let bias: Vec<f32> = (0..n).map(|_| data.random_range(-0.1..0.1)).collect();
        let w_buf = s.upload_f32(&format!("mlp layer {i} weights"), &w)?;
        let bias_buf = s.upload_f32(&format!("mlp layer {i} bias"), &bias)?;
        layers.push(Layer { k, n, relu, w, bias, w_buf, bias_buf });
    }
    let batch = p.batch as usize;
    let add = Specialised::new(&ADD_INPLACE, "residual_add", &[("LEN", f64::from(p.batch * p.hidden))]);
    let softmax = Specialised::new(
        &SOFTMAX_ROWS,
        "softmax_rows",
        &[("ROWS", f64::from(p.batch)), ("COLS", f64::from(p.classes))],
    );
    let mut verified = Verified::default();
    for pass in 0..p.passes {
        let x_host: Vec<f32> = (0..batch * p.input as usize).map(|_| data.random_range(-1.0..1.0)).collect();
        let x = s.upload_f32(&format!("mlp pass {pass} input"), &x_host)?;
        let mut h_host = x_host;
        let mut h = x;
        for (i, layer) in layers.iter().enumerate() {
            let spec = linear(p.batch, layer);
            let out = s.zeroed_f32(&format!("mlp pass {pass} layer {i} out"), batch * layer.n as usize)?;
            s.dispatch(&spec, &[h, layer.w_buf, layer.bias_buf, out], spec.groups_for([layer.n, p.batch, 1]))?;
            let mut out_host = linear_cpu(&h_host, layer, batch);
            // Residual blocks: same width in and out.
            if i > 0 && layer.k == layer.n && layer.relu {
                s.dispatch(&add, &[out, h], add.strided_groups(u64::from(p.batch * p.hidden)))?;
                for (o, &x) in out_host.iter_mut().zip(&h_host) {
                    *o += x;
                }
            }
            s.free(h)?;
            h = out;
            h_host = out_host;
        }
        s.dispatch(&softmax, &[h], softmax.groups_for([p.batch, 1, 1]))?;
        softmax_cpu(&mut h_host, p.classes as usize);
        let probabilities = s.read_f32(h)?;
        verified.check(&format!("mlp pass {pass} probabilities"), &probabilities, &h_host, 1e-5, 1e-3)?;
        s.free(h)?;
    }
    Ok(verified)
}
