//! Which core a thread runs on. The bench keeps the system under test
//! (Envoy, the companion) on one core and its load generator on another,
//! so that neither measures the other's work.

use std::io;

/// Binds the calling thread, and what it starts afterwards, to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data, zeroed is its empty set, and the
    // call only reads it.
    let status = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    match status {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
