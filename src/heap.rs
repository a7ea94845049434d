//! The allocator of the static (musl) builds: dlmalloc in an arena of its own, with musl's
//! allocator for the blocks made while a TLS client is built.
//!
//! Why: musl's allocator (mallocng) hands each group of slots back to the kernel as soon as it
//! empties. An agent pushing 1000 updates made 1,900 `mmap` and 1,671 `munmap` calls, nearly
//! each with a fresh zeroed page behind it; without them its CPU time fell by a quarter to a
//! third (BENCHMARKS.md). dlmalloc (the Rust port that std uses on wasm) keeps freed memory.
//!
//! But dlmalloc never returns memory from the middle of its heap, and building an HTTP client
//! reads the system's CA certificates (every file of `/etc/ssl/certs` on Debian): about 170 KiB
//! of short-lived blocks, interleaved with the few that stay, which stayed resident for the
//! agent's whole life. So [`on_system`] runs such a build on musl's allocator, which gives that
//! memory back. A block is freed by the allocator that made it: dlmalloc's all lie in one
//! reserved range of addresses, so one comparison tells.
//!
//! The arena is reserved without access (`PROT_NONE`: neither memory nor commit charge) and
//! made usable from its start as dlmalloc grows, like `sbrk`; when dlmalloc trims its top (more
//! than 2 MiB free there), the pages go back to the kernel. Nothing here depends on musl: the
//! tests run it on any Linux. glibc builds keep glibc's allocator, which does not churn.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Address space reserved for dlmalloc: far above what 1000 hosts need (about 8 MiB at the
/// peak), and small enough for a 32-bit router. When it is full, allocations go to musl's.
const ARENA_BYTES: usize = 64 << 20;

/// dlmalloc in its arena, or musl's allocator: [`GLOBAL`].
pub struct Heap {
    /// While above zero, new blocks come from `System` ([`Heap::on_system`]).
    system: AtomicUsize,
    /// The arena could not be reserved: everything comes from `System`.
    no_arena: AtomicBool,
    /// The arena's range once reserved (0, 0 before); never changes afterwards.
    base: AtomicUsize,
    end: AtomicUsize,
    dl: Mutex<dlmalloc::Dlmalloc<Arena>>,
}

/// dlmalloc's source of memory: the arena, handed out from its start like `sbrk`.
struct Arena {
    /// The first byte not handed out.
    brk: Cell<usize>,
    end: Cell<usize>,
}

/// The program's allocator in musl builds.
#[cfg_attr(target_env = "musl", global_allocator)]
pub static GLOBAL: Heap = Heap::new();

/// Runs `f` (building an HTTP client) with its blocks made by musl's allocator (see the module
/// text); blocks made meanwhile by other threads go there too, which is harmless.
pub fn on_system<T>(f: impl FnOnce() -> T) -> T {
    GLOBAL.on_system(f)
}

impl Heap {
    pub const fn new() -> Heap {
        Heap {
            system: AtomicUsize::new(0),
            no_arena: AtomicBool::new(false),
            base: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            dl: Mutex::new(dlmalloc::Dlmalloc::new_with_allocator(Arena {
                brk: Cell::new(0),
                end: Cell::new(0),
            })),
        }
    }

    pub fn on_system<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Back<'a>(&'a AtomicUsize);
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.system.fetch_add(1, Ordering::AcqRel);
        let _back = Back(&self.system);
        f()
    }

    /// dlmalloc under its lock, the arena reserved on first use; None: new blocks come from
    /// `System`.
    fn arena(&self) -> Option<MutexGuard<'_, dlmalloc::Dlmalloc<Arena>>> {
        if self.system.load(Ordering::Acquire) > 0 || self.no_arena.load(Ordering::Relaxed) {
            return None;
        }
        let mut dl = self.dl.lock().unwrap_or_else(PoisonError::into_inner);
        if self.end.load(Ordering::Relaxed) == 0 {
            // SAFETY: a new private mapping, placed by the kernel; nothing else refers to it.
            let base = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    ARENA_BYTES,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                self.no_arena.store(true, Ordering::Relaxed);
                return None;
            }
            let base = base as usize;
            let arena = dl.allocator_mut();
            arena.brk.set(base);
            arena.end.set(base + ARENA_BYTES);
            self.base.store(base, Ordering::Release);
            self.end.store(base + ARENA_BYTES, Ordering::Release);
        }
        Some(dl)
    }

    /// dlmalloc, for a block it made.
    fn owner(&self) -> MutexGuard<'_, dlmalloc::Dlmalloc<Arena>> {
        self.dl.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether dlmalloc made the block at `p`. `end` is published after `base`, and read
    /// first: a nonzero `end` comes with its `base`.
    fn owns(&self, p: *mut u8) -> bool {
        let p = p as usize;
        let end = self.end.load(Ordering::Acquire);
        end != 0 && p >= self.base.load(Ordering::Relaxed) && p < end
    }

    /// A new block from dlmalloc, or from `System` when on it or when the arena is full.
    ///
    /// # Safety
    /// GlobalAlloc::alloc's: `layout` has a nonzero size.
    unsafe fn make(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        if let Some(mut dl) = self.arena() {
            let (size, align) = (layout.size(), layout.align());
            // SAFETY: dlmalloc's contract is GlobalAlloc's (size and alignment from `layout`).
            let p = unsafe {
                if zeroed {
                    dl.calloc(size, align)
                } else {
                    dl.malloc(size, align)
                }
            };
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: forwarded as given.
        unsafe {
            if zeroed {
                System.alloc_zeroed(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    /// Bytes of the arena handed to dlmalloc now.
    #[cfg(test)]
    fn arena_in_use(&self) -> usize {
        let dl = self.owner();
        let base = self.base.load(Ordering::Acquire);
        dl.allocator().brk.get().saturating_sub(base)
    }
}

impl Default for Heap {
    fn default() -> Heap {
        Heap::new()
    }
}

// SAFETY: every block is freed or resized by the allocator that made it (`owns`), dlmalloc
// only under its lock, and a block that dlmalloc cannot give comes from `System`.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given.
        unsafe { self.make(layout, false) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given.
        unsafe { self.make(layout, true) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if self.owns(p) {
            // SAFETY: dlmalloc made `p` with this layout (GlobalAlloc's caller guarantees it).
            unsafe { self.owner().free(p, layout.size(), layout.align()) }
        } else {
            // SAFETY: System made `p`.
            unsafe { System.dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(p) {
            // SAFETY: System made `p`; a block stays with the allocator that made it.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        let mut dl = self.owner();
        // SAFETY: dlmalloc made `p` with `layout`.
        let q = unsafe { dl.realloc(p, layout.size(), layout.align(), new_size) };
        if !q.is_null() {
            return q;
        }
        // The arena is full: move the block to System.
        // SAFETY: `new_size` with the old alignment is valid (GlobalAlloc::realloc's contract);
        // both blocks are live and distinct; `p` is freed only once copied.
        unsafe {
            let moved = System.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !moved.is_null() {
                ptr::copy_nonoverlapping(p, moved, layout.size().min(new_size));
                dl.free(p, layout.size(), layout.align());
            }
            moved
        }
    }
}

// SAFETY: `Arena` hands out each byte of the arena to one caller at a time, made readable and
// writable and zero-filled (fresh or discarded pages), and takes back only the part at its end.
unsafe impl dlmalloc::Allocator for Arena {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let start = self.brk.get();
        let Some(end) = start.checked_add(size).filter(|&e| e <= self.end.get()) else {
            return (ptr::null_mut(), 0, 0);
        };
        // SAFETY: [start, end) lies in the arena and was not handed out.
        let rc = unsafe {
            libc::mprotect(
                start as *mut libc::c_void,
                size,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return (ptr::null_mut(), 0, 0);
        }
        self.brk.set(end);
        (start as *mut u8, size, 0)
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, ptr: *mut u8, old: usize, new: usize) -> bool {
        self.give_back(ptr as usize + new, old - new)
    }

    fn free(&self, ptr: *mut u8, size: usize) -> bool {
        self.give_back(ptr as usize, size)
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        true
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        // SAFETY: no preconditions; musl answers from the auxiliary vector.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size).unwrap_or(4096).max(4096)
    }
}

impl Arena {
    /// Takes back [start, start + size) if it is the end of what was handed out: its pages go
    /// back to the kernel (replaced by fresh inaccessible ones, so the commit charge goes too).
    fn give_back(&self, start: usize, size: usize) -> bool {
        if start.checked_add(size) != Some(self.brk.get()) {
            return false;
        }
        // SAFETY: [start, start + size) is the arena's, handed out and now returned by dlmalloc.
        let p = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                size,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return false;
        }
        self.brk.set(start);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    /// Fills a block with a pattern of its own, to be checked before it is freed.
    unsafe fn fill(p: *mut u8, size: usize, seed: u8) {
        for i in 0..size {
            unsafe { *p.add(i) = seed.wrapping_add(i as u8) };
        }
    }

    unsafe fn intact(p: *const u8, size: usize, seed: u8) -> bool {
        (0..size).all(|i| unsafe { *p.add(i) } == seed.wrapping_add(i as u8))
    }

    #[test]
    fn blocks_made_on_system_stay_there_and_the_others_use_the_arena() {
        let heap = Heap::new();
        unsafe {
            let early = heap.on_system(|| heap.alloc(layout(3000, 8)));
            fill(early, 3000, 1);
            assert!(!heap.owns(early), "made while on System");
            let late = heap.alloc(layout(3000, 8));
            assert!(heap.owns(late), "dlmalloc serves otherwise");
            fill(late, 3000, 2);
            let nested = heap.on_system(|| heap.on_system(|| heap.alloc(layout(8, 8))));
            assert!(!heap.owns(nested));
            heap.dealloc(nested, layout(8, 8));
            // Growing the System block keeps it with System; the arena's stays in the arena.
            let early = heap.realloc(early, layout(3000, 8), 90_000);
            assert!(!heap.owns(early) && intact(early, 3000, 1));
            let late = heap.realloc(late, layout(3000, 8), 90_000);
            assert!(heap.owns(late) && intact(late, 3000, 2));
            heap.dealloc(early, layout(90_000, 8));
            heap.dealloc(late, layout(90_000, 8));
            let z = heap.alloc_zeroed(layout(70_000, 64));
            assert!(heap.owns(z) && (z as usize).is_multiple_of(64));
            assert!((0..70_000).all(|i| *z.add(i) == 0));
            heap.dealloc(z, layout(70_000, 64));
        }
    }

    #[test]
    fn a_churn_of_blocks_keeps_every_byte_and_the_top_goes_back() {
        let heap = Heap::new();
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        unsafe {
            for round in 0..20_000u32 {
                let r = next();
                if live.len() < 400 && (r % 3 != 0 || live.is_empty()) {
                    let size = [16, 100, 1500, 4096, 9000, 70_000][(r >> 8) as usize % 6];
                    let l = layout(size + (r >> 20) as usize % 64, 1 << ((r >> 30) % 7));
                    let p = heap.alloc(l);
                    assert!(!p.is_null());
                    assert!((p as usize).is_multiple_of(l.align()));
                    fill(p, l.size(), round as u8);
                    live.push((p, l, round as u8));
                } else {
                    let (p, l, seed) = live.swap_remove((r >> 8) as usize % live.len());
                    assert!(intact(p, l.size(), seed), "a block was overwritten");
                    heap.dealloc(p, l);
                }
            }
            for (p, l, seed) in live.drain(..) {
                assert!(intact(p, l.size(), seed));
                heap.dealloc(p, l);
            }
            // A burst of 6 MiB, then freed: more than 2 MiB free at the top is given back.
            let big: Vec<*mut u8> = (0..100).map(|_| heap.alloc(layout(60_000, 8))).collect();
            let peak = heap.arena_in_use();
            assert!(peak >= 6_000_000, "{peak}");
            for p in big {
                heap.dealloc(p, layout(60_000, 8));
            }
            assert!(
                heap.arena_in_use() < peak - (2 << 20),
                "{}",
                heap.arena_in_use()
            );
        }
    }

    #[test]
    fn a_full_arena_falls_back_to_system() {
        let heap = Heap::new();
        unsafe {
            let huge = layout(ARENA_BYTES, 8);
            let p = heap.alloc(huge);
            assert!(
                !p.is_null() && !heap.owns(p),
                "too big for the arena: System's"
            );
            heap.dealloc(p, huge);
            let small = heap.alloc(layout(64, 8));
            assert!(heap.owns(small));
            fill(small, 64, 7);
            let moved = heap.realloc(small, layout(64, 8), ARENA_BYTES);
            assert!(!moved.is_null() && !heap.owns(moved) && intact(moved, 64, 7));
            heap.dealloc(moved, huge);
        }
    }
}
