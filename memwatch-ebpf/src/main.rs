//! memwatch's kernel side. One module per concern; maps and emit helpers in one place each.
#![no_std]
#![no_main]
// The atomic add of `emit::add_one`: the BPF target has no `AtomicU64::fetch_add`.
#![feature(core_intrinsics)]
#![expect(
    internal_features,
    reason = "core_intrinsics, for BPF's atomic add (emit::add_one)"
)]
#![expect(
    clippy::needless_pass_by_value,
    reason = "aya's program macros hand each program its context by value"
)]

mod ctx;
mod emit;
mod fault;
mod gc;
mod heap;
mod maps;
mod mem;
mod net;
mod proc;
mod stack;
mod target;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The verifier rejects any reachable panic, so this is never reached at run time.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
