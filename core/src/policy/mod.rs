//! Eviction policies: one trait, one file per policy.
//!
//! A cache in cachescope is a *container plus a policy* (see
//! [`crate::cache::Cache`]). The container owns the key index, the entry table
//! (key, size, dirty bit per dense [`Slot`]), capacity accounting, the
//! "evict until it fits" loop, counters and eviction callbacks. The policy
//! owns only its own metadata, kept in vectors indexed by `Slot` (intrusive
//! lists, bits, counters), and answers "who goes next". No policy ever scans
//! the resident set: every method is O(1) amortized (Belady: O(log n)).
//!
//! The request path, shared by every policy and identical to libCacheSim's
//! (`semantics.md`, section 2):
//!
//! ```text
//! if resident(key):  policy.on_hit(slot)                         -> hit
//! else:              policy.on_miss(req)         (ghosts, adaptation)
//!                    (policy.on_ghost_miss(slot, req) instead when the
//!                     key is a ghost the policy keeps in the container)
//!                    match policy.admission(req, capacity):
//!                      Reject    -> nothing
//!                      Insert    -> while it does not fit: evict(policy.evict(req))
//!                                   policy.on_insert(new slot)
//!                      EvictOnly -> while it does not fit: evict(policy.evict(req))
//! ```

mod arc;
mod belady;
mod belady_cost;
mod clock;
mod fifo;
mod freq_list;
mod gdsf;
mod ghost;
mod gpu_cost;
mod heap;
mod lfu;
mod lirs;
mod list;
mod lists;
mod lru;
mod s3fifo;
mod sieve;
mod sketch;
mod twoq;
mod wtinylfu;

pub use arc::Arc;
pub use belady::Belady;
pub use belady_cost::BeladyCost;
pub use clock::Clock;
pub use fifo::Fifo;
pub use freq_list::FreqBuckets;
pub use gdsf::Gdsf;
pub use ghost::GhostFifo;
pub use gpu_cost::GpuCost;
pub use heap::SlotHeap;
pub use lfu::Lfu;
pub use lirs::Lirs;
pub use list::SlotList;
pub use lists::SlotLists;
pub use lru::Lru;
pub use s3fifo::S3Fifo;
pub use sieve::Sieve;
pub use sketch::CountMinSketch;
pub use twoq::TwoQ;
pub use wtinylfu::WTinyLfu;

use serde::{Deserialize, Serialize};

/// Dense index of a resident entry, assigned by the container. Slots are
/// reused after an eviction, so policies index plain vectors by them.
pub type Slot = u32;

/// How a request touches the object. Only GPU-aware policies and the dirty
/// tracking of the container look at it; the standard policies ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Read only (a GPU binding with access `r`).
    #[default]
    Read,
    /// Written without being read first (`w`): a miss needs no upload.
    Write,
    /// Read and written (`rw`).
    ReadWrite,
}

impl Access {
    /// Whether the access leaves the object modified (dirty).
    pub fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

/// One request, as every policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Object identifier.
    pub key: u64,
    /// Object size in capacity units: bytes for a byte cache, 1 for an
    /// object cache.
    pub size: u64,
    /// Logical time (request index) of the next request for the same key;
    /// [`Request::NEVER`] when there is none. Only clairvoyant policies read
    /// it; the trace layer fills it in with a reverse pass.
    pub next_access: u64,
    /// How the request touches the object.
    pub access: Access,
}

impl Request {
    /// `next_access` of a key that is never requested again.
    pub const NEVER: u64 = u64::MAX;

    /// A read request with no next-access information.
    pub fn new(key: u64, size: u64) -> Self {
        Request { key, size, next_access: Self::NEVER, access: Access::Read }
    }
}

/// What the policy decides for a request that missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Do not store it and evict nothing.
    Reject,
    /// Evict until it fits, then store it.
    Insert,
    /// Evict until it would fit, then do not store it. libCacheSim's S3-FIFO
    /// does this for an object exactly the size of its small queue; exact
    /// agreement needs it.
    EvictOnly,
}

/// Read-only view of the container's entry table, handed to policies so they
/// can learn the key and size of a slot without keeping copies.
#[derive(Debug, Default, Clone)]
pub struct Entries {
    /// Key and size side by side: an eviction reads both, and policies
    /// read both of their victims (ghosts remember key and size), so one
    /// cache line per slot instead of two.
    pub(crate) slots: Vec<KeySize>,
    pub(crate) dirty: Vec<bool>,
    /// The slot holds a ghost: a key the policy remembers after evicting it
    /// (see [`EvictionPolicy::keeps_ghosts`]), not a resident entry.
    pub(crate) ghost: Vec<bool>,
}

/// The key and size of one slot.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KeySize {
    pub(crate) key: u64,
    pub(crate) size: u64,
}

impl Entries {
    /// Key stored in `slot`.
    #[inline]
    pub fn key(&self, slot: Slot) -> u64 {
        self.slots[slot as usize].key
    }

    /// Size (capacity units) of the entry in `slot`.
    #[inline]
    pub fn size(&self, slot: Slot) -> u64 {
        self.slots[slot as usize].size
    }

    /// Whether the entry in `slot` was written since it was stored.
    #[inline]
    pub fn is_dirty(&self, slot: Slot) -> bool {
        self.dirty[slot as usize]
    }

    /// Whether `slot` holds a ghost (an evicted key its policy remembers)
    /// rather than a resident entry.
    #[inline]
    pub fn is_ghost(&self, slot: Slot) -> bool {
        self.ghost[slot as usize]
    }

    /// Number of slots ever allocated (resident, ghost or free): the length
    /// policy vectors must cover.
    #[inline]
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }
}

/// The eviction-policy contract.
///
/// Who guarantees what:
/// * The container calls [`on_hit`](Self::on_hit) only for a resident slot,
///   [`on_insert`](Self::on_insert) only for a slot that is not in the policy,
///   and [`on_remove`](Self::on_remove) only for a slot that is (an explicit
///   removal; evictions chosen by [`evict`](Self::evict) are *not* followed
///   by `on_remove`).
/// * The policy, on [`evict`](Self::evict), returns a slot it currently holds
///   and forgets it before returning; it returns `None` only when it holds
///   nothing. It may reorder its own metadata while choosing (CLOCK's second
///   chances, S3-FIFO's promotions) but must evict exactly one entry.
/// * `entries` always describes every slot the policy holds, including the
///   slot just returned by `evict` (the container removes it afterwards).
/// * Every method is O(1) amortized in the number of resident entries.
///
/// Ghosts. A policy that remembers evicted keys (ARC's B1 and B2) may keep
/// them in the container instead of a key index of its own: it says so with
/// [`keeps_ghosts`](Self::keeps_ghosts). Then a victim it answers `true`
/// for in [`retains_as_ghost`](Self::retains_as_ghost) keeps its slot, key
/// and size, marked as a ghost ([`Entries::is_ghost`]) and still in the
/// container's key index, so turning a resident entry into a ghost, and a
/// ghost back into a resident entry, costs no index update, and one lookup
/// answers both "resident?" and "ghost?". A request for a ghost's key is a
/// miss that calls [`on_ghost_miss`](Self::on_ghost_miss) (not `on_miss`);
/// the policy forgets the ghost there, and the container reuses the slot if
/// the object is stored. A ghost the policy drops (trimming its ghost
/// lists) is handed back through
/// [`pop_dropped_ghost`](Self::pop_dropped_ghost), which the container
/// drains after every call that may trim; and the container may take a
/// ghost away with [`on_remove`](Self::on_remove) (when the key is stored
/// without a request, by [`crate::cache::Cache::insert_with`]). The
/// container never counts ghosts as resident.
pub trait EvictionPolicy: Send {
    /// Short stable name (`lru`, `fifo`, ...), used in results and labels.
    fn name(&self) -> &'static str;

    /// Called once when the container is built, with its capacity in units.
    /// Policies with sub-queues (2Q, S3-FIFO, ARC) derive their quotas here.
    fn init(&mut self, capacity: u64) {
        let _ = capacity;
    }

    /// A resident entry was requested again.
    fn on_hit(&mut self, slot: Slot, req: &Request, entries: &Entries);

    /// A request missed; called before [`admission`](Self::admission), so
    /// ghost bookkeeping happens even when the object is then refused.
    fn on_miss(&mut self, req: &Request, entries: &Entries) {
        let _ = (req, entries);
    }

    /// Whether this policy keeps its ghosts in the container (see the
    /// trait's documentation). Must not change after [`init`](Self::init).
    /// Default: no.
    fn keeps_ghosts(&self) -> bool {
        false
    }

    /// A request missed on `ghost`, a ghost slot of this policy; instead of
    /// [`on_miss`](Self::on_miss). The policy forgets the ghost before
    /// returning. Only called when [`keeps_ghosts`](Self::keeps_ghosts).
    fn on_ghost_miss(&mut self, ghost: Slot, req: &Request, entries: &Entries) {
        let _ = ghost;
        self.on_miss(req, entries);
    }

    /// Whether the victim [`evict`](Self::evict) just returned stays in the
    /// container as a ghost of this policy. Only asked when
    /// [`keeps_ghosts`](Self::keeps_ghosts).
    fn retains_as_ghost(&self, victim: Slot) -> bool {
        let _ = victim;
        false
    }

    /// A ghost slot this policy dropped and no longer holds, for the
    /// container to free; `None` when there are no more. Only asked when
    /// [`keeps_ghosts`](Self::keeps_ghosts).
    fn pop_dropped_ghost(&mut self) -> Option<Slot> {
        None
    }

    /// Whether (and how) a missed object is stored. The default caches every
    /// object no larger than the whole cache (an exact fit is allowed).
    fn admission(&self, req: &Request, capacity: u64) -> Admission {
        if req.size <= capacity { Admission::Insert } else { Admission::Reject }
    }

    /// Whether the policy needs evictions beyond what the capacity asks for.
    /// The container keeps calling [`evict`](Self::evict) while this is
    /// true: after [`on_hit`](Self::on_hit), and before storing a missed
    /// object (after the capacity check). Default: never. libCacheSim's 2Q
    /// needs it (a ghost hit enters Am through Am's own LRU, which makes room
    /// within Am's share), and so do W-TinyLFU's SLRU and LIRS, which evict
    /// during a hit.
    fn wants_eviction(&self, req: &Request) -> bool {
        let _ = req;
        false
    }

    /// Chooses one victim, forgets it, and returns it.
    fn evict(&mut self, req: &Request, entries: &Entries) -> Option<Slot>;

    /// A new entry was stored in `slot`.
    fn on_insert(&mut self, slot: Slot, req: &Request, entries: &Entries);

    /// The entry in `slot` was removed by the caller, not by [`evict`](Self::evict).
    /// With [`keeps_ghosts`](Self::keeps_ghosts), `slot` may be a ghost of
    /// this policy, which it then forgets.
    fn on_remove(&mut self, slot: Slot, entries: &Entries);

    /// Loads what a coming request for `key` will read in the policy's
    /// per-key tables (ghost indexes), and returns what it read; changes
    /// nothing. A speed hint only (see [`crate::cache::Cache::warm`]):
    /// results never depend on it. Default: no per-key table.
    #[inline]
    fn warm(&self, key: u64) -> u64 {
        let _ = key;
        0
    }
}

impl<P: EvictionPolicy + ?Sized> EvictionPolicy for Box<P> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn init(&mut self, capacity: u64) {
        (**self).init(capacity)
    }
    #[inline]
    fn on_hit(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        (**self).on_hit(slot, req, entries)
    }
    #[inline]
    fn on_miss(&mut self, req: &Request, entries: &Entries) {
        (**self).on_miss(req, entries)
    }
    #[inline]
    fn admission(&self, req: &Request, capacity: u64) -> Admission {
        (**self).admission(req, capacity)
    }
    #[inline]
    fn wants_eviction(&self, req: &Request) -> bool {
        (**self).wants_eviction(req)
    }
    #[inline]
    fn evict(&mut self, req: &Request, entries: &Entries) -> Option<Slot> {
        (**self).evict(req, entries)
    }
    fn keeps_ghosts(&self) -> bool {
        (**self).keeps_ghosts()
    }
    #[inline]
    fn on_ghost_miss(&mut self, ghost: Slot, req: &Request, entries: &Entries) {
        (**self).on_ghost_miss(ghost, req, entries)
    }
    #[inline]
    fn retains_as_ghost(&self, victim: Slot) -> bool {
        (**self).retains_as_ghost(victim)
    }
    #[inline]
    fn pop_dropped_ghost(&mut self) -> Option<Slot> {
        (**self).pop_dropped_ghost()
    }
    #[inline]
    fn on_insert(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        (**self).on_insert(slot, req, entries)
    }
    #[inline]
    fn on_remove(&mut self, slot: Slot, entries: &Entries) {
        (**self).on_remove(slot, entries)
    }
    #[inline]
    fn warm(&self, key: u64) -> u64 {
        (**self).warm(key)
    }
}

/// Generic code run on a concrete policy type chosen at run time; see
/// [`PolicyKind::visit`].
pub trait PolicyVisitor {
    /// What the visit returns.
    type Output;
    /// Called with a fresh instance of the chosen policy.
    fn visit<P: EvictionPolicy + 'static>(self, policy: P) -> Self::Output;
}

/// The closed menu of built-in policies, for users who pick one by name (in
/// TOML, on the command line). Implement [`EvictionPolicy`] for your own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Least recently used.
    Lru,
    /// First in, first out.
    Fifo,
    /// CLOCK with one reference bit.
    Clock,
    /// SIEVE (NSDI 2024): FIFO with a visited bit and a hand that does not move survivors.
    Sieve,
    /// Least frequently used (in-cache counts, no aging).
    Lfu,
    /// ARC (FAST 2003): adaptive split between recency and frequency, with ghosts.
    Arc,
    /// 2Q (VLDB 1994): FIFO probation, LRU main, ghost FIFO (Ain 25%, Aout 50%).
    TwoQ,
    /// S3-FIFO (SOSP 2023): small, main and ghost FIFOs.
    S3Fifo,
    /// Belady's MIN: farthest next access first (clairvoyant).
    Belady,
    /// W-TinyLFU (TOS 2017): LRU window, SLRU main, frequency-sketch admission.
    WTinyLfu,
    /// LIRS (SIGMETRICS 2002): inter-reference recency.
    Lirs,
    /// GDSF: Greedy-Dual-Size-Frequency (size- and cost-aware).
    Gdsf,
    /// GPU-aware: next use predicted from reuse intervals (loop-resistant), idle-time fallback, dirty buffers weighted by their readback.
    GpuCost,
    /// Clairvoyant cost-aware reference: farthest next use, weighted by bytes to move.
    BeladyCost,
}

impl PolicyKind {
    /// Every built-in policy, in a stable order.
    pub const ALL: &'static [PolicyKind] = &[
        PolicyKind::Lru,
        PolicyKind::Fifo,
        PolicyKind::Clock,
        PolicyKind::Sieve,
        PolicyKind::Lfu,
        PolicyKind::Arc,
        PolicyKind::TwoQ,
        PolicyKind::S3Fifo,
        PolicyKind::Belady,
        PolicyKind::WTinyLfu,
        PolicyKind::Lirs,
        PolicyKind::Gdsf,
        PolicyKind::GpuCost,
        PolicyKind::BeladyCost,
    ];

    /// A fresh policy instance.
    pub fn build(self) -> Box<dyn EvictionPolicy> {
        struct Boxed;
        impl PolicyVisitor for Boxed {
            type Output = Box<dyn EvictionPolicy>;
            fn visit<P: EvictionPolicy + 'static>(self, policy: P) -> Self::Output {
                Box::new(policy)
            }
        }
        self.visit(Boxed)
    }

    /// Calls `visitor` with a fresh instance of the concrete policy type, so
    /// generic code (the simulator's request loop) is monomorphised per
    /// policy instead of going through a virtual call per request.
    pub fn visit<V: PolicyVisitor>(self, visitor: V) -> V::Output {
        match self {
            PolicyKind::Lru => visitor.visit(Lru::default()),
            PolicyKind::Fifo => visitor.visit(Fifo::default()),
            PolicyKind::Clock => visitor.visit(Clock::default()),
            PolicyKind::Sieve => visitor.visit(Sieve::default()),
            PolicyKind::Lfu => visitor.visit(Lfu::default()),
            PolicyKind::Arc => visitor.visit(Arc::default()),
            PolicyKind::TwoQ => visitor.visit(TwoQ::default()),
            PolicyKind::S3Fifo => visitor.visit(S3Fifo::default()),
            PolicyKind::Belady => visitor.visit(Belady::default()),
            PolicyKind::WTinyLfu => visitor.visit(WTinyLfu::default()),
            PolicyKind::Lirs => visitor.visit(Lirs::default()),
            PolicyKind::Gdsf => visitor.visit(Gdsf::default()),
            PolicyKind::GpuCost => visitor.visit(GpuCost::default()),
            PolicyKind::BeladyCost => visitor.visit(BeladyCost::default()),
        }
    }

    /// The policy's stable name.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Lru => "lru",
            PolicyKind::Fifo => "fifo",
            PolicyKind::Clock => "clock",
            PolicyKind::Sieve => "sieve",
            PolicyKind::Lfu => "lfu",
            PolicyKind::Arc => "arc",
            PolicyKind::TwoQ => "twoq",
            PolicyKind::S3Fifo => "s3fifo",
            PolicyKind::Belady => "belady",
            PolicyKind::WTinyLfu => "wtinylfu",
            PolicyKind::Lirs => "lirs",
            PolicyKind::Gdsf => "gdsf",
            PolicyKind::GpuCost => "gpu_cost",
            PolicyKind::BeladyCost => "belady_cost",
        }
    }

    /// One line on what the policy is and where it is weak (`cachescope policies`).
    pub fn description(self) -> &'static str {
        match self {
            PolicyKind::Lru => "least recently used; the baseline; flushed by scans larger than the cache",
            PolicyKind::Fifo => "first in, first out; no work on a hit; ignores popularity",
            PolicyKind::Clock => "one-bit second chance (CLOCK); LRU-like at FIFO cost; not scan-resistant",
            PolicyKind::Sieve => {
                "SIEVE: FIFO + visited bit + hand, quick demotion at FIFO cost; FIFO-like when reuse comes late"
            }
            PolicyKind::Lfu => {
                "least frequently used (in-cache counts, no aging); scan-proof but slow to forget old popularity"
            }
            PolicyKind::Arc => {
                "ARC: adaptive recency/frequency split with ghost lists; p moves per request, so byte caches act as p = 0"
            }
            PolicyKind::TwoQ => {
                "2Q: FIFO probation + LRU main + ghosts; scan-resistant; never caches objects above 25% of the cache"
            }
            PolicyKind::S3Fifo => {
                "S3-FIFO: small + main + ghost FIFOs, quick demotion; never caches objects of 10% of the cache or more"
            }
            PolicyKind::Belady => {
                "Belady MIN, farthest next use (clairvoyant); optimal for unit sizes only, blind to sizes and costs"
            }
            PolicyKind::WTinyLfu => {
                "W-TinyLFU: 1% LRU window + SLRU main behind a frequency-sketch filter; objects above 1% never cached"
            }
            PolicyKind::Lirs => {
                "LIRS: ranks by reuse distance, loop- and scan-resistant; large metadata stack, slow to adapt"
            }
            PolicyKind::Gdsf => {
                "GDSF: frequency x cost / size with aging; favours small objects, so weak on byte miss ratio"
            }
            PolicyKind::GpuCost => {
                "GPU-aware: predicted next use from reuse gaps (keeps a stable subset of loops), dirty = 2x cost; constants tuned on two traces"
            }
            PolicyKind::BeladyCost => {
                "clairvoyant cost-aware reference (next use per transfer caused; dead dirty buffers kept until freed); a yardstick, not deployable"
            }
        }
    }

    /// Whether results agree exactly with libCacheSim 0.3.5 (`semantics.md` section 3).
    pub fn matches_libcachesim_exactly(self) -> bool {
        match self {
            PolicyKind::Lru
            | PolicyKind::Fifo
            | PolicyKind::Clock
            | PolicyKind::Sieve
            | PolicyKind::Lfu
            | PolicyKind::Arc
            | PolicyKind::TwoQ
            | PolicyKind::S3Fifo
            | PolicyKind::Belady => true,
            PolicyKind::WTinyLfu
            | PolicyKind::Lirs
            | PolicyKind::Gdsf
            | PolicyKind::GpuCost
            | PolicyKind::BeladyCost => false,
        }
    }
}

impl std::fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PolicyKind::ALL.iter().copied().find(|p| p.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
            let known: Vec<_> = PolicyKind::ALL.iter().map(|p| p.name()).collect();
            crate::Error::config(format!("unknown policy `{s}` (known: {})", known.join(", ")))
        })
    }
}
