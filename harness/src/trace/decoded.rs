//! [`DecodedTrace`]: the one decoded, column-oriented copy of a trace that
//! the simulator shares across all its policy x capacity runs.
//!
//! Decoding happens once: keys are mapped to dense ids `0..unique_keys`,
//! most requested first, and every request's next access is computed
//! by one reverse pass, whatever the input format (the next-access field of
//! an oracleGeneral or native file is not trusted). The file's blake3 hash
//! is computed on a second thread while the first decodes.

use std::path::{Path, PathBuf};

use cachescope_core::policy::{Access, Request};
use serde::{Deserialize, Serialize};

use super::{EventBatch, EventSource, Flatten, TraceFormat, TraceReader};
use crate::error::{Error, Result};

/// How a trace file is turned into requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Object cache: every size becomes 1 (`unique_bytes` then equals
    /// `unique_keys`).
    pub objects: bool,
    /// Flatten a dispatch trace to one request per dispatch (key =
    /// pipeline, size = 1) instead of one per binding.
    pub pipelines: bool,
    /// GPU view: keep the frees of a dispatch trace as events that remove
    /// the buffer ([`DecodedTrace::is_free`]).
    pub gpu: bool,
    /// Stop after this many requests (frees do not count).
    pub limit: Option<u64>,
}

impl LoadOptions {
    /// The flattening these options ask for.
    pub fn flatten(&self) -> Flatten {
        if self.pipelines { Flatten::Pipelines } else { Flatten::Buffers }
    }
}

/// What trace a result came from: enough to find the same file again and
/// to know it is the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceIdentity {
    /// The file as given.
    pub path: PathBuf,
    /// Its format.
    pub format: TraceFormat,
    /// Its size in bytes.
    pub bytes: u64,
    /// blake3 of the whole file, hex.
    pub blake3: String,
    /// Decoded events: requests plus, in the GPU view, frees (the length of
    /// every column of [`DecodedTrace`]).
    pub records: u64,
    /// Of those, frees (0 unless `options.gpu`).
    pub frees: u64,
    /// Size-0 requests skipped (`semantics.md` section 1), including those
    /// a native file's source had.
    pub skipped_zero_size: u64,
    /// How the file was read.
    pub options: LoadOptions,
}

impl TraceIdentity {
    /// Requests (records that are not frees).
    pub fn requests(&self) -> u64 {
        self.records - self.frees
    }
}

/// A whole trace, decoded once into columns indexed by request index.
#[derive(Debug, Clone)]
pub struct DecodedTrace {
    /// Where it came from.
    pub identity: TraceIdentity,
    /// Key of each event (empty when loaded without it, see [`Columns`]).
    pub keys: Vec<u64>,
    /// Dense id of each event's key: keys are numbered `0..unique_keys`,
    /// most requested first (ties in order of first appearance), so the
    /// hot keys' entries in every table indexed by id sit together (see
    /// `order_by_frequency` in this module).
    pub dense_ids: Vec<u32>,
    /// Size of each event in bytes (1 with `objects`; a free carries the
    /// buffer's bytes).
    pub sizes: Vec<u64>,
    /// Access kind of each event (`Read` for formats without one and for
    /// frees).
    pub access: Vec<Access>,
    /// Index of the next request for the same key, [`Request::NEVER`] for
    /// none. A free ends a key's life: the request before it gets `NEVER`,
    /// and so does the free itself. Empty when loaded without it (see
    /// [`Columns`]).
    pub next_access: Vec<u64>,
    /// In the GPU view (`options.gpu`), which events are frees (a free
    /// removes the buffer from every cache); `None` otherwise.
    pub is_free: Option<Vec<bool>>,
    /// Distinct keys (= the number of dense ids).
    pub unique_keys: u64,
    /// Sum over keys of the size of the key's *first* request (1 per key
    /// with `objects`); the base of capacities given as a percentage.
    pub unique_bytes: u64,
    /// For dispatch traces (and native files converted from them): the
    /// most bytes allocated and not yet freed at any moment, counted from
    /// the allocs and frees of the file (up to where reading stopped).
    pub peak_live_bytes: Option<u64>,
}

/// Column capacity reserved before decoding, whatever a header claims
/// (reserved, not touched: untouched pages cost no memory).
const MAX_RESERVE: usize = 1 << 27;

/// Events asked of the source at a time.
const BATCH_EVENTS: usize = 16 * 1024;

/// Keys whose buckets are loaded ahead of their lookups (small enough that
/// the loaded lines are still in L1/L2 when the lookups come).
const TOUCH_GROUP: usize = 1024;

/// Which columns of a [`DecodedTrace`] a load fills; the others are left
/// empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// `dense_ids`, `sizes`, `access` and (GPU view) `is_free`. Without
    /// them the load is a *summary*: the identity and the counts (unique
    /// keys and bytes, peak live bytes) only, for a run that streams the
    /// trace straight into a cache.
    pub events: bool,
    /// `keys` (the simulator needs only the dense ids).
    pub keys: bool,
    /// `next_access` (only clairvoyant policies read it; the reverse pass
    /// costs a pass over the trace and 8 bytes per event).
    pub next_access: bool,
}

impl Columns {
    /// Every column.
    pub const ALL: Columns = Columns { events: true, keys: true, next_access: true };
    /// No column: identity and counts only.
    pub const SUMMARY: Columns = Columns { events: false, keys: false, next_access: false };
}

impl DecodedTrace {
    /// Reads and decodes a whole trace, every column filled. `format` is
    /// detected when `None`.
    ///
    /// # Errors
    /// The file cannot be read, is malformed (the error names the line or
    /// record and the field), the options do not apply to the format, or it
    /// has more than 2^32 distinct keys.
    pub fn load(path: &Path, format: Option<TraceFormat>, options: LoadOptions) -> Result<DecodedTrace> {
        Self::load_columns(path, format, options, Columns::ALL)
    }

    /// [`load`](Self::load), filling only the optional columns asked for.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_columns(
        path: &Path,
        format: Option<TraceFormat>,
        options: LoadOptions,
        columns: Columns,
    ) -> Result<DecodedTrace> {
        let bytes = std::fs::metadata(path).map_err(|e| Error::io("stat", path, e))?.len();
        let reader = TraceReader::open(path, format, options.flatten(), options.gpu)?;
        let format = reader.format();
        let (decoded, hash) = std::thread::scope(|s| {
            let hasher = s.spawn(|| super::io::blake3_file(path));
            let decoded = Self::from_events_columns(reader, format, options, columns);
            let hash = hasher.join().unwrap_or_else(|_| Err(Error::config("the hashing thread panicked")));
            (decoded, hash)
        });
        let mut decoded = decoded?;
        decoded.identity.path = path.to_owned();
        decoded.identity.format = format;
        decoded.identity.bytes = bytes;
        decoded.identity.blake3 = hash?;
        Ok(decoded)
    }

    /// Decodes any event source (a reader, a synthetic generator), every
    /// column filled. The identity's `path`, `bytes` and `blake3` are left
    /// empty for the caller.
    ///
    /// # Errors
    /// The first error the source yields, or more than 2^32 distinct keys.
    pub fn from_events<S: EventSource>(source: S, format: TraceFormat, options: LoadOptions) -> Result<DecodedTrace> {
        Self::from_events_columns(source, format, options, Columns::ALL)
    }

    /// [`from_events`](Self::from_events), filling only the optional
    /// columns asked for.
    ///
    /// # Errors
    /// As [`from_events`](Self::from_events).
    pub fn from_events_columns<S: EventSource>(
        source: S,
        format: TraceFormat,
        options: LoadOptions,
        columns: Columns,
    ) -> Result<DecodedTrace> {
        // A summary only tells new keys from seen ones: a set of keys (8
        // bytes a slot) does, in half the memory of the id table, so more
        // of it stays in cache.
        if columns.events {
            Self::decode(source, format, options, columns, DenseIds::with_capacity(1 << 16))
        } else {
            Self::decode(source, format, options, columns, KeySet::with_capacity(1 << 16))
        }
    }

    fn decode<S: EventSource, T: KeyTable>(
        mut source: S,
        format: TraceFormat,
        options: LoadOptions,
        columns: Columns,
        mut ids: T,
    ) -> Result<DecodedTrace> {
        let hint =
            source.len_hint().unwrap_or(0).min(options.limit.unwrap_or(u64::MAX)).min(MAX_RESERVE as u64) as usize;
        let limit = options.limit.unwrap_or(u64::MAX);
        let mut keys = Vec::with_capacity(if columns.keys { hint } else { 0 });
        let events_hint = if columns.events { hint } else { 0 };
        let mut dense_ids = Vec::with_capacity(events_hint);
        let mut sizes = Vec::with_capacity(events_hint);
        let mut access = Vec::with_capacity(events_hint);
        let mut is_free: Option<Vec<bool>> = options.gpu.then(|| Vec::with_capacity(events_hint));
        let (mut records, mut requests, mut frees, mut unique_bytes) = (0u64, 0u64, 0u64, 0u64);
        let mut batch = EventBatch::default();
        while requests < limit {
            // At most the requests still wanted: a batch never runs past
            // the limit, so the trace ends where one-by-one reading would.
            let max = usize::try_from(limit - requests).unwrap_or(usize::MAX).min(BATCH_EVENTS);
            source.next_batch(&mut batch, max)?;
            if batch.is_empty() {
                break;
            }
            if !options.gpu {
                // Frees are events only in the GPU view.
                batch.retain_requests();
            }
            let n = batch.len();
            let batch_frees = batch.is_free.iter().filter(|&&f| f).count() as u64;
            frees += batch_frees;
            requests += n as u64 - batch_frees;
            records += n as u64;
            if options.objects {
                batch.sizes.fill(1);
            }
            if columns.keys {
                keys.extend_from_slice(&batch.keys);
            }
            if columns.events {
                sizes.extend_from_slice(&batch.sizes);
                access.extend_from_slice(&batch.access);
                if let Some(f) = is_free.as_mut() {
                    if batch.is_free.is_empty() {
                        f.resize(f.len() + n, false);
                    } else {
                        f.extend_from_slice(&batch.is_free);
                    }
                }
            }
            number_keys(&mut ids, &batch.keys, |i, id, new| {
                if new && !batch.free_at(i) {
                    unique_bytes += batch.sizes[i];
                }
                if columns.events {
                    dense_ids.push(id);
                }
            })?;
        }
        let unique_keys = ids.len() as u64;
        drop(ids);
        if columns.events {
            order_by_frequency(&mut dense_ids, unique_keys as usize);
        }
        let next_access = if columns.next_access && columns.events {
            next_accesses(&dense_ids, is_free.as_deref(), unique_keys as usize)
        } else {
            Vec::new()
        };
        let identity = TraceIdentity {
            path: PathBuf::new(),
            format,
            bytes: 0,
            blake3: String::new(),
            records,
            frees,
            skipped_zero_size: source.skipped_zero_size(),
            options,
        };
        Ok(DecodedTrace {
            identity,
            keys,
            dense_ids,
            sizes,
            access,
            next_access,
            is_free,
            unique_keys,
            unique_bytes,
            peak_live_bytes: source.peak_live_bytes(),
        })
    }

    /// Number of events (requests plus frees).
    pub fn len(&self) -> usize {
        self.dense_ids.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.dense_ids.is_empty()
    }

    /// Whether event `i` is a free.
    #[inline]
    pub fn free_at(&self, i: usize) -> bool {
        self.is_free.as_ref().is_some_and(|f| f[i])
    }

    /// Event `i` as the policies see it (key, size, next access, access);
    /// the trace must have been loaded with every column.
    #[inline]
    pub fn request(&self, i: usize) -> Request {
        Request { key: self.keys[i], size: self.sizes[i], next_access: self.next_access[i], access: self.access[i] }
    }
}

impl EventSource for TraceReader {
    fn skipped_zero_size(&self) -> u64 {
        TraceReader::skipped_zero_size(self)
    }

    fn peak_live_bytes(&self) -> Option<u64> {
        TraceReader::peak_live_bytes(self)
    }

    fn len_hint(&self) -> Option<u64> {
        TraceReader::len_hint(self)
    }

    fn next_batch(&mut self, batch: &mut super::EventBatch, max: usize) -> Result<()> {
        self.inner_mut().next_batch(batch, max)
    }
}

/// Gives `keys` their ids in `ids`, calling `each(i, id, new)` for key `i`
/// in order. In small groups: first every key's bucket is loaded in a tight
/// loop of independent loads (the CPU overlaps those cache misses), then
/// the ids are assigned from cache.
///
/// # Errors
/// The table is full (more than 2^32 - 1 distinct keys).
#[inline]
fn number_keys<T: KeyTable>(ids: &mut T, keys: &[u64], mut each: impl FnMut(usize, u32, bool)) -> Result<()> {
    for (group, group_keys) in keys.chunks(TOUCH_GROUP).enumerate() {
        ids.touch(group_keys);
        for (j, &key) in group_keys.iter().enumerate() {
            let (id, new) = ids.get_or_insert(key)?;
            each(group * TOUCH_GROUP + j, id, new);
        }
    }
    Ok(())
}

/// Numbers keys while decoding.
trait KeyTable {
    /// Loads the bucket of every key, so that the lookups that follow hit
    /// the cache; independent loads let the CPU overlap the misses.
    fn touch(&self, keys: &[u64]);
    /// The key's dense id (0 from a mere set), and whether it was new.
    fn get_or_insert(&mut self, key: u64) -> Result<(u32, bool)>;
    /// Distinct keys so far.
    fn len(&self) -> usize;
}

impl KeyTable for DenseIds {
    #[inline]
    fn touch(&self, keys: &[u64]) {
        DenseIds::touch(self, keys)
    }
    #[inline]
    fn get_or_insert(&mut self, key: u64) -> Result<(u32, bool)> {
        DenseIds::get_or_insert(self, key)
    }
    fn len(&self) -> usize {
        DenseIds::len(self)
    }
}

/// The hash whose top bits pick a key's bucket in [`KeySet`] and
/// [`DenseIds`]: Fibonacci hashing after folding the high half into the
/// low one. Fibonacci hashing alone keeps structure the keys already have:
/// on keys that are themselves ranks times the golden-ratio constant (as a
/// trace generator may make them; `scripts/bench_sim_vs_libcachesim.py`
/// does), it used 524k of 2M buckets for 762k keys where random keys use
/// 640k, and the probe chains that made cost a third of the set's time.
#[inline]
fn key_hash(key: u64) -> u64 {
    (key ^ (key >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A set of keys (for a summary, which needs no ids): an open-addressing
/// table like [`DenseIds`] with 8-byte slots.
///
/// `u64::MAX` marks an empty slot (that key is kept aside), and every new
/// table is filled with it when allocated. An all-zero marker would let the
/// allocator hand out untouched zero pages; the first lookups then map the
/// shared zero page and the first inserts fault again to copy it, each copy
/// flushing the TLBs of the other CPUs (about a tenth of a summary's time
/// on a 10M-request trace).
#[derive(Debug, Clone)]
struct KeySet {
    slots: Vec<u64>,
    shift: u32,
    len: usize,
    has_empty_key: bool,
}

impl KeySet {
    const EMPTY: u64 = u64::MAX;

    fn with_capacity(n: usize) -> KeySet {
        let buckets = (n.max(8) * 2).next_power_of_two();
        KeySet { slots: vec![Self::EMPTY; buckets], shift: 64 - buckets.trailing_zeros(), len: 0, has_empty_key: false }
    }

    #[inline]
    fn bucket(&self, key: u64) -> usize {
        (key_hash(key) >> self.shift) as usize
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let buckets = old.len() * 2;
        self.slots = vec![Self::EMPTY; buckets];
        self.shift = 64 - buckets.trailing_zeros();
        let mask = buckets - 1;
        for key in old.into_iter().filter(|&k| k != Self::EMPTY) {
            let mut i = self.bucket(key);
            while self.slots[i] != Self::EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = key;
        }
    }
}

impl KeyTable for KeySet {
    #[inline]
    fn touch(&self, keys: &[u64]) {
        let mut acc = 0u64;
        for &key in keys {
            acc ^= self.slots[self.bucket(key)];
        }
        std::hint::black_box(acc);
    }

    #[inline]
    fn get_or_insert(&mut self, key: u64) -> Result<(u32, bool)> {
        if key == Self::EMPTY {
            let new = !self.has_empty_key;
            self.has_empty_key = true;
            self.len += usize::from(new);
            return Ok((0, new));
        }
        let mask = self.slots.len() - 1;
        let mut i = self.bucket(key);
        loop {
            match self.slots[i] {
                Self::EMPTY => break,
                k if k == key => return Ok((0, false)),
                _ => i = (i + 1) & mask,
            }
        }
        self.slots[i] = key;
        self.len += 1;
        if self.len * 2 > self.slots.len() {
            self.grow();
        }
        Ok((0, true))
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// Numbers the keys of a request stream batch by batch, in place (key ->
/// dense id, in order of first request), and counts what a summary load
/// reports: distinct keys and unique bytes (the size of each key's first
/// request). The streamed simulation's decoding thread runs it, so the
/// simulating thread indexes its cache by dense id (one warmed load per
/// lookup) and never hashes a key.
#[derive(Debug, Clone)]
pub(crate) struct StreamIds {
    ids: DenseIds,
    unique_bytes: u64,
    /// The ids of the batch being numbered (reused).
    batch_ids: Vec<u32>,
}

impl Default for StreamIds {
    fn default() -> Self {
        StreamIds { ids: DenseIds::with_capacity(1 << 16), unique_bytes: 0, batch_ids: Vec::new() }
    }
}

impl StreamIds {
    /// Replaces the keys of `batch` (requests only) with their dense ids.
    ///
    /// # Errors
    /// More than 2^32 - 1 distinct keys.
    pub(crate) fn number(&mut self, batch: &mut EventBatch) -> Result<()> {
        debug_assert!(batch.is_free.iter().all(|&f| !f), "frees are not numbered");
        let (batch_ids, unique_bytes) = (&mut self.batch_ids, &mut self.unique_bytes);
        batch_ids.clear();
        number_keys(&mut self.ids, &batch.keys, |i, id, new| {
            if new {
                *unique_bytes += batch.sizes[i];
            }
            batch_ids.push(id);
        })?;
        for (key, &id) in batch.keys.iter_mut().zip(batch_ids.iter()) {
            *key = u64::from(id);
        }
        Ok(())
    }

    /// Distinct keys and unique bytes so far.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (self.ids.len() as u64, self.unique_bytes)
    }
}

/// Maps keys to dense ids `0..n` in order of first appearance.
///
/// An open-addressing table (linear probing, Fibonacci hashing, load at
/// most 1/2) of (key, id) pairs in one array: a lookup touches one cache
/// line, and lookups of consecutive requests do not depend on each other,
/// so the CPU overlaps their cache misses. On a 10M-request Zipf trace with
/// 760k keys this decodes about twice as fast as a general-purpose map.
#[derive(Debug, Clone)]
struct DenseIds {
    slots: Vec<(u64, u32)>,
    shift: u32,
    len: u32,
}

impl DenseIds {
    const EMPTY: u32 = u32::MAX;

    fn with_capacity(n: usize) -> DenseIds {
        let buckets = (n.max(8) * 2).next_power_of_two();
        DenseIds { slots: vec![(0, Self::EMPTY); buckets], shift: 64 - buckets.trailing_zeros(), len: 0 }
    }

    #[inline]
    fn bucket(&self, key: u64) -> usize {
        (key_hash(key) >> self.shift) as usize
    }

    /// The key's id, and whether it was new.
    #[inline]
    fn get_or_insert(&mut self, key: u64) -> Result<(u32, bool)> {
        let mask = self.slots.len() - 1;
        let mut i = self.bucket(key);
        loop {
            let (k, id) = self.slots[i];
            if id == Self::EMPTY {
                break;
            }
            if k == key {
                return Ok((id, false));
            }
            i = (i + 1) & mask;
        }
        if self.len == Self::EMPTY - 1 {
            return Err(Error::config("the trace has more than 2^32 - 1 distinct keys"));
        }
        let id = self.len;
        self.slots[i] = (key, id);
        self.len += 1;
        if self.len as usize * 2 > self.slots.len() {
            self.grow();
        }
        Ok((id, true))
    }

    /// Loads the bucket of every key, so that the lookups that follow hit
    /// the cache; independent loads let the CPU overlap the misses.
    #[inline]
    fn touch(&self, keys: &[u64]) {
        let mut acc = 0u32;
        for &key in keys {
            acc ^= self.slots[self.bucket(key)].1;
        }
        std::hint::black_box(acc);
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let buckets = old.len() * 2;
        self.slots = vec![(0, Self::EMPTY); buckets];
        self.shift = 64 - buckets.trailing_zeros();
        let mask = buckets - 1;
        for (key, id) in old.into_iter().filter(|s| s.1 != Self::EMPTY) {
            let mut i = self.bucket(key);
            while self.slots[i].1 != Self::EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = (key, id);
        }
    }

    fn len(&self) -> usize {
        self.len as usize
    }
}

/// Renumbers `ids` (dense ids `0..unique`) by descending number of events,
/// ties in the order of the old ids (first appearance).
///
/// Why: every simulation of a sweep indexes vectors by dense id (the key
/// index, ghost tables), which span megabytes for a million keys; numbered
/// by popularity, the keys that take most requests share a few hundred
/// kilobytes of them. Measured on a 10M-request Zipf sweep the effect was
/// within noise (`results/2026-12-06-dev-2core/dense-id-order/`): kept
/// because it is cheap and exact, not as a proven speed-up. A permutation
/// of ids changes no result of a policy that treats keys as identities
/// (all but W-TinyLFU, whose sketch hashes them), and costs one counting
/// pass and one renumbering pass (about 50 ms per 10M events), shared by
/// every run.
fn order_by_frequency(ids: &mut [u32], unique: usize) {
    let mut count = vec![0u32; unique];
    for &id in ids.iter() {
        count[id as usize] = count[id as usize].saturating_add(1);
    }
    let mut by_count: Vec<u32> = (0..unique as u32).collect();
    // Stable: equal counts keep first-appearance order.
    by_count.sort_by_key(|&id| std::cmp::Reverse(count[id as usize]));
    let new_id = &mut count;
    for (rank, &id) in by_count.iter().enumerate() {
        new_id[id as usize] = rank as u32;
    }
    for id in ids.iter_mut() {
        *id = new_id[*id as usize];
    }
}

/// The reverse pass: for each event, the index of the next request for the
/// same dense id, [`Request::NEVER`] for none; a free resets its key.
pub fn next_accesses(dense_ids: &[u32], is_free: Option<&[bool]>, unique: usize) -> Vec<u64> {
    let mut next_seen = vec![Request::NEVER; unique];
    let mut next = vec![Request::NEVER; dense_ids.len()];
    for i in (0..dense_ids.len()).rev() {
        let id = dense_ids[i] as usize;
        if is_free.is_some_and(|f| f[i]) {
            next_seen[id] = Request::NEVER;
        } else {
            next[i] = next_seen[id];
            next_seen[id] = i as u64;
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids become ranks by request count; equal counts keep their order.
    #[test]
    fn dense_ids_are_ranked_by_popularity() {
        // Counts: id 0 once, 1 three times, 2 twice, 3 three times.
        let mut ids = vec![0, 1, 2, 1, 3, 2, 3, 1, 3];
        order_by_frequency(&mut ids, 4);
        assert_eq!(ids, vec![3, 0, 2, 0, 1, 2, 1, 0, 1]);
    }

    /// `StreamIds` numbers keys in order of first request and agrees with
    /// a textbook count (first size per key), across batches, table growth
    /// and the extreme keys.
    #[test]
    fn stream_ids_number_keys_and_count_first_sizes() {
        let mut ids = StreamIds::default();
        let mut want: std::collections::HashMap<u64, (u64, u64)> = std::collections::HashMap::new();
        let mut x = 1u64;
        let mut batch = EventBatch::default();
        let mut expected_ids = Vec::new();
        for i in 0..600_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = match i % 1000 {
                0 => u64::MAX,
                1 => 0,
                _ => (x >> 44).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 1,
            };
            let size = 1 + (x >> 20) % 100;
            let next_id = want.len() as u64;
            let (id, _) = *want.entry(key).or_insert((next_id, size));
            expected_ids.push(id);
            batch.keys.push(key);
            batch.sizes.push(size);
            batch.access.push(Access::Read);
            if batch.len() == 777 || i == 599_999 {
                ids.number(&mut batch).unwrap();
                let from = expected_ids.len() - batch.len();
                assert_eq!(batch.keys, expected_ids[from..]);
                batch = EventBatch::default();
            }
        }
        assert_eq!(ids.totals(), (want.len() as u64, want.values().map(|&(_, size)| size).sum()));
    }

    #[test]
    fn reverse_pass_small() {
        let ids = [0, 1, 0, 2, 1, 0];
        assert_eq!(next_accesses(&ids, None, 3), vec![2, 4, 5, u64::MAX, u64::MAX, u64::MAX]);
        let free = [false, false, true, false, false, false];
        assert_eq!(next_accesses(&ids, Some(&free), 3), vec![u64::MAX, 4, u64::MAX, u64::MAX, u64::MAX, u64::MAX]);
    }
}
