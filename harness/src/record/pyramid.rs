//! `pyramid`: Laplacian-pyramid detail enhancement of a video, with
//! temporal smoothing.
//!
//! Per frame: the frame is uploaded; a Gaussian pyramid is built down to
//! 16-pixel-ish levels (blur, then 2x2 downsample; the blurred temporary of
//! each level is freed at once); the coarsest level is blurred once more as
//! the base; then the pyramid is rebuilt upwards, each level adding the
//! detail `fine - up(coarse)` times a gain to the upsampled result, freeing
//! the coarser levels as it goes. The frame's result is blended into a
//! history buffer that lives for the whole video.
//!
//! For a cache: buffers of geometrically shrinking sizes (a quarter per
//! level), produced and consumed within a frame (a dirty buffer evicted
//! before its consumer runs costs a readback), the finest and largest ones
//! reused at both ends of the frame (long reuse distance), one persistent
//! read-write buffer, and one pipeline per kernel and level shape.

use rand::Rng;
use serde::Serialize;

use super::kernels::{BLEND, BLUR, DOWNSAMPLE, Specialised, UPSAMPLE_COMBINE};
use super::{Session, Verified, rng};
use crate::gpu::GpuResult;

/// The video's shape and the filter's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PyramidParams {
    /// Frame width (pixels, one f32 channel).
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Downsampling steps (levels below the frame).
    pub levels: u32,
    /// Frames.
    pub frames: u32,
    /// Detail gain of the reconstruction.
    pub gain: f32,
    /// Weight of the new frame in the temporal blend.
    pub alpha: f32,
}

impl PyramidParams {
    /// Shapes at `scale`: `256 * scale` square frames, halved while both
    /// sides stay even and at least 32 (coarsest level 16 to 31 pixels).
    pub fn at_scale(scale: u32) -> PyramidParams {
        let side = 256 * scale;
        let mut levels = 0;
        let (mut w, mut h) = (side, side);
        while w % 2 == 0 && h % 2 == 0 && w >= 32 && h >= 32 {
            w /= 2;
            h /= 2;
            levels += 1;
        }
        PyramidParams { width: side, height: side, levels, frames: 4, gain: 1.5, alpha: 0.5 }
    }

    /// Bytes of the largest buffer (a full-resolution level).
    pub fn largest_buffer_bytes(&self) -> u64 {
        4 * u64::from(self.width) * u64::from(self.height)
    }

    /// `(width, height)` of level `l` (0: the frame).
    pub fn dims(&self, l: u32) -> (u32, u32) {
        (self.width >> l, self.height >> l)
    }
}

fn wh(kernel: &'static super::kernels::Kernel, op: &'static str, (w, h): (u32, u32)) -> Specialised {
    Specialised::new(kernel, op, &[("W", f64::from(w)), ("H", f64::from(h))])
}

fn blur_cpu(src: &[f32], (w, h): (u32, u32)) -> Vec<f32> {
    let (w, h) = (w as i64, h as i64);
    let at = |x: i64, y: i64| src[(y.clamp(0, h - 1) * w + x.clamp(0, w - 1)) as usize];
    let mut out = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        for x in 0..w {
            let top = at(x - 1, y - 1) + 2.0 * at(x, y - 1) + at(x + 1, y - 1);
            let mid = at(x - 1, y) + 2.0 * at(x, y) + at(x + 1, y);
            let bot = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1);
            out.push((top + 2.0 * mid + bot) * 0.0625);
        }
    }
    out
}

fn downsample_cpu(src: &[f32], (w, h): (u32, u32)) -> Vec<f32> {
    let (w, h) = (w as usize, h as usize);
    let mut out = Vec::with_capacity(w * h / 4);
    for y in 0..h / 2 {
        for x in 0..w / 2 {
            let i = 2 * y * w + 2 * x;
            out.push(((src[i] + src[i + 1]) + (src[i + w] + src[i + w + 1])) * 0.25);
        }
    }
    out
}

fn combine_cpu(coarse_result: &[f32], coarse_gauss: &[f32], fine: &[f32], (w, h): (u32, u32), gain: f32) -> Vec<f32> {
    let (w, h) = (w as usize, h as usize);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let c = (y / 2) * (w / 2) + x / 2;
            out.push(coarse_result[c] + gain * (fine[y * w + x] - coarse_gauss[c]));
        }
    }
    out
}

/// Frame `t`: a checkerboard of 32-pixel squares moving right by 8 pixels
/// a frame, plus seeded noise (detail for the pyramid to find).
fn frame(p: &PyramidParams, t: u32, data: &mut impl Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(p.width as usize * p.height as usize);
    for y in 0..p.height {
        for x in 0..p.width {
            let square = ((x + 8 * t) / 32 + y / 32) % 2;
            out.push(0.2 + 0.6 * square as f32 + data.random_range(-0.1..0.1));
        }
    }
    out
}

/// Runs the video, recording; checks every frame's result and the final
/// history against the CPU.
///
/// # Errors
/// Device, trace or integrity errors (see [`super::record`]).
pub fn run(s: &mut Session<'_>, p: &PyramidParams, seed: u64) -> GpuResult<Verified> {
    let mut data = rng(seed, 2);
    let pixels = p.width as usize * p.height as usize;
    let blend = Specialised::new(&BLEND, "temporal_blend", &[("LEN", pixels as f64), ("ALPHA", f64::from(p.alpha))]);
    // Zeros before the first frame; wgpu zero-initialises it.
    let history = s.zeroed_f32("pyramid history", pixels)?;
    let mut history_host = vec![0f32; pixels];
    let mut verified = Verified::default();
    let levels = p.levels;
    for t in 0..p.frames {
        let frame_host = frame(p, t, &mut data);
        let mut gauss = vec![s.upload_f32(&format!("pyramid frame {t}"), &frame_host)?];
        let mut gauss_host = vec![frame_host];
        for l in 0..levels {
            let dims = p.dims(l);
            let blurred = s.zeroed_f32(&format!("pyramid frame {t} level {l} blurred"), (dims.0 * dims.1) as usize)?;
            let blur = wh(&BLUR, "blur3x3", dims);
            s.dispatch(&blur, &[gauss[l as usize], blurred], blur.groups_for([dims.0, dims.1, 1]))?;
            let down = wh(&DOWNSAMPLE, "downsample2x2", dims);
            let (w2, h2) = p.dims(l + 1);
            let next = s.zeroed_f32(&format!("pyramid frame {t} level {} gauss", l + 1), (w2 * h2) as usize)?;
            s.dispatch(&down, &[blurred, next], down.groups_for([w2, h2, 1]))?;
            s.free(blurred)?;
            gauss.push(next);
            let blurred_host = blur_cpu(&gauss_host[l as usize], dims);
            gauss_host.push(downsample_cpu(&blurred_host, dims));
        }
        // The base: the coarsest level blurred once more.
        let coarsest = p.dims(levels);
        let base = wh(&BLUR, "blur3x3", coarsest);
        let mut result =
            s.zeroed_f32(&format!("pyramid frame {t} level {levels} result"), (coarsest.0 * coarsest.1) as usize)?;
        s.dispatch(&base, &[gauss[levels as usize], result], base.groups_for([coarsest.0, coarsest.1, 1]))?;
        let mut result_host = blur_cpu(&gauss_host[levels as usize], coarsest);
        for l in (0..levels).rev() {
            let dims = p.dims(l);
            let combine = Specialised::new(
                &UPSAMPLE_COMBINE,
                "upsample_combine",
                &[("W", f64::from(dims.0)), ("H", f64::from(dims.1)), ("GAIN", f64::from(p.gain))],
            );
            let out = s.zeroed_f32(&format!("pyramid frame {t} level {l} result"), (dims.0 * dims.1) as usize)?;
            let (li, ci) = (l as usize, l as usize + 1);
            s.dispatch(&combine, &[result, gauss[ci], gauss[li], out], combine.groups_for([dims.0, dims.1, 1]))?;
            s.free(result)?;
            s.free(gauss[ci])?;
            result = out;
            result_host = combine_cpu(&result_host, &gauss_host[ci], &gauss_host[li], dims, p.gain);
        }
        s.free(gauss[0])?;
        s.dispatch(&blend, &[history, result], blend.strided_groups(pixels as u64))?;
        for (hv, &r) in history_host.iter_mut().zip(&result_host) {
            *hv += p.alpha * (r - *hv);
        }
        let frame_result = s.read_f32(result)?;
        verified.check(&format!("pyramid frame {t} result"), &frame_result, &result_host, 1e-4, 1e-4)?;
        s.free(result)?;
    }
    let final_history = s.read_f32(history)?;
    verified.check("pyramid history", &final_history, &history_host, 1e-4, 1e-4)?;
    Ok(verified)
}
