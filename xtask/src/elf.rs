//! The symbol versions an ELF executable needs from its shared libraries: the entries of its
//! `SHT_GNU_verneed` section (`.gnu.version_r`), the same list `objdump -p` prints under "Version
//! References". The dynamic loader refuses to start a program when a library lacks one of them,
//! which is how a binary linked against a newer glibc fails (`version 'GLIBC_2.34' not found`).
//!
//! Only what that needs is read: 64-bit little-endian ELF (x86_64, aarch64), its section headers
//! and the verneed chain with its string table, every offset bounds-checked.

use std::path::Path;

use anyhow::{Context as _, Result, bail, ensure};

/// One version a binary needs: `version` (e.g. `GLIBC_2.28`) from the library `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionNeed {
    /// The library, as in its `DT_NEEDED` entry (e.g. `libc.so.6`).
    pub file: String,
    /// The version name (e.g. `GLIBC_2.28`).
    pub version: String,
}

/// Section type of the version needs (`.gnu.version_r`).
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
/// Size of an ELF64 file header, and of one ELF64 section header.
const EHDR_SIZE: usize = 64;
const SHDR_SIZE: usize = 64;

/// The version needs of the ELF file at `path`.
pub fn read_version_needs(path: &Path) -> Result<Vec<VersionNeed>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    version_needs(&bytes).with_context(|| format!("{}: reading its version needs", path.display()))
}

/// The version needs of an ELF file's contents, in file order; empty for a binary without any
/// (statically linked, or needing no versioned symbol).
pub fn version_needs(elf: &[u8]) -> Result<Vec<VersionNeed>> {
    ensure!(
        elf.len() >= EHDR_SIZE && elf[..4] == *b"\x7fELF",
        "not an ELF file"
    );
    ensure!(elf[4] == 2, "not a 64-bit ELF file");
    ensure!(elf[5] == 1, "not a little-endian ELF file");
    let shoff = usize_at(elf, 0x28)?;
    let shentsize = usize::from(u16_at(elf, 0x3a)?);
    let shnum = usize::from(u16_at(elf, 0x3c)?);
    ensure!(shnum > 0, "no section headers (stripped with sstrip?)");
    ensure!(
        shentsize == SHDR_SIZE,
        "unexpected section header size {shentsize}"
    );
    let section = |i: usize| -> Result<Section> {
        let at = shoff
            .checked_add(i.checked_mul(SHDR_SIZE).context("section index")?)
            .context("section offset")?;
        Section::at(elf, at)
    };
    let mut needs = Vec::new();
    for i in 0..shnum {
        let verneed = section(i)?;
        if verneed.kind != SHT_GNU_VERNEED {
            continue;
        }
        let strtab = section(verneed.link as usize)?.contents(elf)?;
        let table = verneed.contents(elf)?;
        let string = |offset: u32| cstr(strtab, offset as usize);
        // sh_info holds the number of Verneed entries; each links to the next by offset.
        let mut at = 0usize;
        for _ in 0..verneed.info {
            let count = u16_at(table, at + 2)?;
            let file = string(u32_at(table, at + 4)?)?;
            let mut aux = at
                .checked_add(u32_at(table, at + 8)? as usize)
                .context("vn_aux")?;
            for _ in 0..count {
                let version = string(u32_at(table, aux + 8)?)?;
                needs.push(VersionNeed {
                    file: file.clone(),
                    version,
                });
                let next = u32_at(table, aux + 12)? as usize;
                if next == 0 {
                    break;
                }
                aux = aux.checked_add(next).context("vna_next")?;
            }
            let next = u32_at(table, at + 12)? as usize;
            if next == 0 {
                break;
            }
            at = at.checked_add(next).context("vn_next")?;
        }
    }
    Ok(needs)
}

/// The fields of a section header that the reader uses.
struct Section {
    kind: u32,
    offset: usize,
    size: usize,
    link: u32,
    info: u32,
}

impl Section {
    fn at(elf: &[u8], at: usize) -> Result<Section> {
        Ok(Section {
            kind: u32_at(elf, at + 4)?,
            offset: usize_at(elf, at + 24)?,
            size: usize_at(elf, at + 32)?,
            link: u32_at(elf, at + 40)?,
            info: u32_at(elf, at + 44)?,
        })
    }

    fn contents<'a>(&self, elf: &'a [u8]) -> Result<&'a [u8]> {
        self.offset
            .checked_add(self.size)
            .and_then(|end| elf.get(self.offset..end))
            .context("section beyond the end of the file")
    }
}

fn bytes_at<const N: usize>(data: &[u8], at: usize) -> Result<[u8; N]> {
    match at.checked_add(N).and_then(|end| data.get(at..end)) {
        Some(b) => Ok(b.try_into().expect("slice of length N")),
        None => bail!("truncated ELF data (offset {at})"),
    }
}

fn u16_at(data: &[u8], at: usize) -> Result<u16> {
    Ok(u16::from_le_bytes(bytes_at(data, at)?))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32> {
    Ok(u32::from_le_bytes(bytes_at(data, at)?))
}

fn usize_at(data: &[u8], at: usize) -> Result<usize> {
    usize::try_from(u64::from_le_bytes(bytes_at(data, at)?)).context("offset out of range")
}

/// The NUL-terminated string at `at` in a string table.
fn cstr(table: &[u8], at: usize) -> Result<String> {
    let rest = table.get(at..).context("string beyond its table")?;
    let len = rest
        .iter()
        .position(|&b| b == 0)
        .context("unterminated string")?;
    Ok(String::from_utf8_lossy(&rest[..len]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_objdump_reads() {
        let exe = std::env::current_exe().unwrap();
        let needs = read_version_needs(&exe).unwrap();
        // Every Rust program on glibc needs some version of libc.so.6.
        assert!(
            needs
                .iter()
                .any(|n| n.file == "libc.so.6" && n.version.starts_with("GLIBC_2.")),
            "{needs:?}"
        );
        // Where binutils is installed, `objdump -p` lists the same "Version References".
        let Ok(out) = std::process::Command::new("objdump")
            .arg("-p")
            .arg(&exe)
            .output()
        else {
            return;
        };
        let text = String::from_utf8(out.stdout).unwrap();
        let mut theirs = Vec::new();
        let mut file = String::new();
        let section = text
            .lines()
            .skip_while(|l| !l.starts_with("Version References"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty());
        for line in section {
            if let Some(f) = line.trim().strip_prefix("required from ") {
                file = f.trim_end_matches(':').to_owned();
            } else if let Some(version) = line.split_whitespace().nth(3) {
                theirs.push(VersionNeed {
                    file: file.clone(),
                    version: version.to_owned(),
                });
            }
        }
        assert_eq!(needs, theirs);
    }

    #[test]
    fn rejects_what_is_not_a_64_bit_little_endian_elf() {
        assert!(version_needs(b"#!/bin/sh\n").is_err());
        let mut header = vec![0u8; EHDR_SIZE];
        header[..4].copy_from_slice(b"\x7fELF");
        header[4] = 1;
        assert!(version_needs(&header).is_err());
        header[4] = 2;
        header[5] = 1;
        // No section headers.
        assert!(version_needs(&header).is_err());
    }

    #[test]
    fn truncated_files_are_errors_not_panics() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        for len in [0, 3, 63, 64, 65, 1000, exe.len() / 2] {
            let _ = version_needs(&exe[..len]);
        }
    }
}
