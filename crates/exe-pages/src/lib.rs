//! Gives back the pages of the running executable's read-only segments.
//!
//! Kura is one 60 MB executable, most of it DuckDB. Opening the engine registers a few
//! thousand built-in functions, one small piece of code each, spread over the whole text
//! segment; the kernel maps a page-cache window (64 KB or a whole folio) around every page
//! it faults in, so after start-up some 35 MB of code that will never run again counts as
//! resident. [`release`] unmaps the read-only `PT_LOAD` segments of the main executable
//! with `madvise(MADV_DONTNEED)`: the pages stay in the page cache (nothing is evicted or
//! re-read from disk) and come back with a minor fault when code on them runs again.
//!
//! Only segments the program never writes are touched: a writable segment (and the RELRO
//! range inside it, rewritten by the dynamic loader's relocations) would lose its changes
//! and is skipped, and each range is shrunk to whole pages inside the segment. The FFI lives
//! in this crate so that Kura itself keeps `unsafe_code = "forbid"`.

/// Unmaps the main executable's read-only segments; returns the bytes advised. Safe to call
/// at any time from any thread: code running on those pages faults them back in.
#[cfg(target_os = "linux")]
pub fn release() -> std::io::Result<usize> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    // SAFETY: the callback only reads the `dl_phdr_info` the loader hands it, and writes to
    // the `Vec` passed through `data`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(collect), (&raw mut ranges).cast());
    }
    let mut advised = 0;
    for (start, len) in ranges {
        // SAFETY: the range lies inside a read-only, never-written `PT_LOAD` segment of the
        // executable (a private file mapping), so dropping its pages loses nothing: the
        // next access maps the same file contents again.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        advised += len;
    }
    Ok(advised)
}

/// Not available off Linux: nothing is released.
#[cfg(not(target_os = "linux"))]
pub fn release() -> std::io::Result<usize> {
    Ok(0)
}

#[cfg(target_os = "linux")]
unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid `dl_phdr_info` for the duration of the call, and
    // `data` is the `Vec` given to `dl_iterate_phdr` above.
    let (info, ranges) = unsafe { (&*info, &mut *data.cast::<Vec<(usize, usize)>>()) };
    // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers of this object.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let page = page_size();
    let base = info.dlpi_addr as usize;
    let segments = headers.iter().map(|h| Segment {
        kind: h.p_type,
        flags: h.p_flags,
        start: base + h.p_vaddr as usize,
        len: h.p_memsz as usize,
    });
    ranges.extend(read_only_pages(segments, page));
    // The main program is the first object reported; stop there.
    1
}

#[cfg(target_os = "linux")]
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// One program header, as far as this crate cares.
#[derive(Clone, Copy, Debug)]
struct Segment {
    kind: u32,
    flags: u32,
    start: usize,
    len: usize,
}

const PT_LOAD: u32 = 1;
const PT_GNU_RELRO: u32 = 0x6474_e552;
const PF_W: u32 = 2;

/// The whole pages of the loadable, non-writable segments that no RELRO range touches.
fn read_only_pages(
    segments: impl Iterator<Item = Segment> + Clone,
    page: usize,
) -> Vec<(usize, usize)> {
    let relro: Vec<(usize, usize)> = segments
        .clone()
        .filter(|s| s.kind == PT_GNU_RELRO)
        .map(|s| (s.start, s.start + s.len))
        .collect();
    segments
        .filter(|s| s.kind == PT_LOAD && s.flags & PF_W == 0)
        .filter_map(|s| {
            let start = s.start.div_ceil(page) * page;
            let end = (s.start + s.len) / page * page;
            let overlaps_relro = relro.iter().any(|&(a, b)| start < b && a < end);
            (end > start && !overlaps_relro).then_some((start, end - start))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(kind: u32, flags: u32, start: usize, len: usize) -> Segment {
        Segment {
            kind,
            flags,
            start,
            len,
        }
    }

    #[test]
    fn only_whole_pages_of_read_only_loads_are_released() {
        let segments = vec![
            seg(PT_LOAD, 4, 0, 0x11db8c4),                 // R: headers, rodata, eh_frame
            seg(PT_LOAD, 5, 0x11dc900, 0x3b60bf0),         // R E: text
            seg(PT_LOAD, 6, 0x4d3e4f0, 0x24bb10),          // RW: data
            seg(PT_GNU_RELRO, 4, 0x4d3e4f0, 0x24bb10),     // inside the RW load
            seg(6 /* PT_PHDR */, 4, 0x40, 0x2a0),
        ];
        let ranges = read_only_pages(segments.into_iter(), 0x1000);
        assert_eq!(ranges, vec![(0, 0x11db000), (0x11dd000, 0x4d3d000 - 0x11dd000)]);
    }

    #[test]
    fn a_read_only_load_that_touches_relro_is_left_alone() {
        let segments = vec![
            seg(PT_LOAD, 4, 0x10000, 0x8000),
            seg(PT_GNU_RELRO, 4, 0x17000, 0x2000),
        ];
        assert!(read_only_pages(segments.into_iter(), 0x1000).is_empty());
    }

    #[test]
    fn a_segment_smaller_than_a_page_is_left_alone() {
        let segments = vec![seg(PT_LOAD, 5, 0x1100, 0x800)];
        assert!(read_only_pages(segments.into_iter(), 0x1000).is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn releasing_keeps_the_program_running() {
        let advised = release().expect("madvise");
        assert!(advised > 0);
        // Code and constants on the released pages still work.
        let text = format!("{}", 40 + 2);
        assert_eq!(text, "42");
        assert!(release().is_ok());
    }
}
