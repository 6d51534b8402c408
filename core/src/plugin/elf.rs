//! A pre-flight check of a candidate's ELF headers before `dlopen` sees it.
//!
//! `dlopen` maps each loadable segment at the size its header claims; a
//! truncated file (an interrupted copy, a half-written package) maps pages
//! past the end of the file and the process dies of `SIGBUS` when the loader
//! touches them. This check reads the ELF header and program headers and
//! refuses any file that is not a shared object for this machine or whose
//! segments run past its end, so a bad plugin is skipped, never fatal.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{SkipKind, SkipReason};

const ET_DYN: u16 = 3;
/// `e_phnum` value meaning "the count lives in section header 0".
const PN_XNUM: u16 = 0xffff;

/// Field positions of one ELF class.
struct Layout {
    header: usize,
    phoff: (usize, usize),
    phentsize: usize,
    phnum: usize,
    ph_min: usize,
    p_offset: (usize, usize),
    p_filesz: (usize, usize),
}

const ELF32: Layout = Layout {
    header: 52,
    phoff: (28, 4),
    phentsize: 42,
    phnum: 44,
    ph_min: 32,
    p_offset: (4, 4),
    p_filesz: (16, 4),
};

const ELF64: Layout = Layout {
    header: 64,
    phoff: (32, 8),
    phentsize: 54,
    phnum: 56,
    ph_min: 56,
    p_offset: (8, 8),
    p_filesz: (32, 8),
};

/// Reads an unsigned field of `len` bytes at `at` in this file's byte order.
fn field(bytes: &[u8], (at, len): (usize, usize), big: bool) -> u64 {
    let b = &bytes[at..at + len];
    let fold = |acc: u64, &x: &u8| (acc << 8) | u64::from(x);
    if big {
        b.iter().fold(0, fold)
    } else {
        b.iter().rev().fold(0, fold)
    }
}

/// The ELF `e_machine` of this build's target, where known.
fn host_machine() -> Option<u64> {
    match std::env::consts::ARCH {
        "x86" => Some(3),
        "x86_64" => Some(62),
        "arm" => Some(40),
        "aarch64" => Some(183),
        "powerpc64" => Some(21),
        "s390x" => Some(22),
        "riscv64" => Some(243),
        "loongarch64" => Some(258),
        _ => None,
    }
}

fn refuse(message: impl Into<String>) -> SkipReason {
    SkipReason::new(SkipKind::NotLoadable, message)
}

fn io(what: &str, e: std::io::Error) -> SkipReason {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        refuse(format!("truncated ELF file: it ends inside the {what}"))
    } else {
        refuse(format!("cannot read the {what}: {e}"))
    }
}

/// Checks that `path` is an ELF shared object for this machine whose
/// segments all lie within the file.
pub(crate) fn check(path: &Path) -> Result<(), SkipReason> {
    let mut file = File::open(path).map_err(|e| refuse(format!("cannot open: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| refuse(format!("cannot inspect: {e}")))?
        .len();
    let mut ident = [0u8; 16];
    file.read_exact(&mut ident).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            refuse("not an ELF shared object (file shorter than an ELF header)")
        }
        _ => io("ELF header", e),
    })?;
    if ident[..4] != *b"\x7fELF" {
        return Err(refuse("not an ELF shared object (bad magic bytes)"));
    }
    let (layout, bits) = match ident[4] {
        1 => (&ELF32, 32),
        2 => (&ELF64, 64),
        c => return Err(refuse(format!("unknown ELF class {c}"))),
    };
    if bits != usize::BITS {
        return Err(refuse(format!(
            "a {bits}-bit ELF object; this process is {}-bit",
            usize::BITS
        )));
    }
    let big = match ident[5] {
        1 => false,
        2 => true,
        d => return Err(refuse(format!("unknown ELF byte order {d}"))),
    };
    if big != cfg!(target_endian = "big") {
        return Err(refuse("an ELF object of the other byte order"));
    }
    let mut header = vec![0u8; layout.header];
    header[..16].copy_from_slice(&ident);
    file.read_exact(&mut header[16..])
        .map_err(|e| io("ELF header", e))?;
    check_header(&header, big)?;
    check_segments(&mut file, &header, layout, big, len)
}

fn check_header(header: &[u8], big: bool) -> Result<(), SkipReason> {
    let e_type = field(header, (16, 2), big);
    if e_type != u64::from(ET_DYN) {
        return Err(refuse(format!(
            "not a shared object (ELF type {e_type}, want {ET_DYN})"
        )));
    }
    let machine = field(header, (18, 2), big);
    match host_machine() {
        Some(host) if host != machine => Err(refuse(format!(
            "built for another architecture (ELF machine {machine}; this {} process is {host})",
            std::env::consts::ARCH
        ))),
        _ => Ok(()),
    }
}

fn check_segments(
    file: &mut File,
    header: &[u8],
    layout: &Layout,
    big: bool,
    len: u64,
) -> Result<(), SkipReason> {
    let phoff = field(header, layout.phoff, big);
    let entsize = field(header, (layout.phentsize, 2), big) as usize;
    let count = field(header, (layout.phnum, 2), big);
    if count == u64::from(PN_XNUM) {
        return Err(refuse("extended program header numbering is not supported"));
    }
    if count == 0 {
        return Err(refuse("no program headers: nothing to load"));
    }
    if entsize < layout.ph_min {
        return Err(refuse(format!("program header entries of {entsize} bytes")));
    }
    let table = count as usize * entsize;
    let end = phoff.checked_add(table as u64);
    if end.is_none_or(|end| end > len) {
        return Err(refuse(format!(
            "truncated ELF file: program headers end past its {len} bytes"
        )));
    }
    let mut phdrs = vec![0u8; table];
    file.seek(SeekFrom::Start(phoff))
        .and_then(|_| file.read_exact(&mut phdrs))
        .map_err(|e| io("program headers", e))?;
    for (i, ph) in phdrs.chunks_exact(entsize).enumerate() {
        let offset = field(ph, layout.p_offset, big);
        let size = field(ph, layout.p_filesz, big);
        let end = offset.checked_add(size);
        if size > 0 && end.is_none_or(|end| end > len) {
            return Err(refuse(format!(
                "truncated ELF file: segment {i} needs bytes up to {} but the file has {len}",
                end.map_or_else(|| "beyond 2^64".to_string(), |e| e.to_string())
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(tag: &str, bytes: &[u8]) -> Self {
            let p =
                std::env::temp_dir().join(format!("sunrise-elf-{tag}-{}.so", std::process::id()));
            std::fs::write(&p, bytes).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn exe() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    fn message(tag: &str, bytes: &[u8]) -> String {
        let s = Scratch::new(tag, bytes);
        let r = check(&s.0).unwrap_err();
        assert_eq!(r.kind, SkipKind::NotLoadable);
        r.message
    }

    #[test]
    fn this_test_binary_passes_and_its_damaged_copies_do_not() {
        let bytes = exe();
        // Test binaries are position-independent: ELF type ET_DYN.
        let whole = Scratch::new("whole", &bytes);
        assert_eq!(check(&whole.0), Ok(()));

        assert!(message("short", &bytes[..4096]).contains("truncated"));
        assert!(message("tiny", &bytes[..10]).contains("shorter than an ELF header"));
        assert!(message("text", b"#!/bin/sh\necho not a library\n").contains("bad magic"));

        let mut exec = bytes[..64].to_vec();
        exec[16] = 2; // ET_EXEC, in either byte order's low byte
        exec[17] = 0;
        assert!(message("exec", &exec).contains("not a shared object"));

        let mut foreign = bytes[..64].to_vec();
        let machine: u16 = if host_machine() == Some(183) { 62 } else { 183 };
        let m = if cfg!(target_endian = "big") {
            machine.to_be_bytes()
        } else {
            machine.to_le_bytes()
        };
        foreign[18..20].copy_from_slice(&m);
        assert!(message("foreign", &foreign).contains("another architecture"));
    }
}
