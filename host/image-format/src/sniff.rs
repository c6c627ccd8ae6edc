//! A file's real format from its first bytes (and, for a fixed VHD, its last 512): the magic
//! numbers of the formats an operator is likely to upload by mistake.

/// What the leading bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// No known magic: a disk as it is (MBR, GPT, a filesystem, anything).
    Raw,
    /// `QFI\xfb` with its version word (checked by the qcow2 parser).
    Qcow2 {
        version: u32,
    },
    Foreign(Foreign),
}

/// Formats recognised only to be refused with their name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    Vmdk,
    Vhd,
    Vhdx,
    Vdi,
    Luks,
    Qed,
    Qcow1,
    Parallels,
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Foreign::Vmdk => "VMDK",
            Foreign::Vhd => "VHD",
            Foreign::Vhdx => "VHDX",
            Foreign::Vdi => "VDI",
            Foreign::Luks => "LUKS-encrypted",
            Foreign::Qed => "QED",
            Foreign::Qcow1 => "qcow (version 1)",
            Foreign::Parallels => "Parallels",
        })
    }
}

/// The format the first bytes of a file announce.
pub fn sniff(head: &[u8]) -> Detected {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(b"QFI\xfb") {
        let version = head.get(4..8).map_or(0, |v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        return if version == 1 { Detected::Foreign(Foreign::Qcow1) } else { Detected::Qcow2 { version } };
    }
    let foreign = if starts(b"KDMV") || starts(b"COWD") || starts(b"# Disk DescriptorFile") {
        Some(Foreign::Vmdk)
    } else if starts(b"vhdxfile") {
        Some(Foreign::Vhdx)
    } else if starts(b"conectix") {
        Some(Foreign::Vhd)
    } else if starts(b"LUKS\xba\xbe") {
        Some(Foreign::Luks)
    } else if starts(b"QED\0") {
        Some(Foreign::Qed)
    } else if starts(b"WithoutFreeSpace") || starts(b"WithouFreSpacExt") {
        Some(Foreign::Parallels)
    } else if head.get(0x40..0x44) == Some(&[0x7f, 0x10, 0xda, 0xbe]) || starts(b"<<< Oracle VM VirtualBox Disk Image >>>") {
        Some(Foreign::Vdi)
    } else {
        None
    };
    foreign.map_or(Detected::Raw, Detected::Foreign)
}

/// A fixed VHD is raw data with a 512-byte footer: only the file's last bytes tell.
pub fn sniff_tail(tail: &[u8]) -> Option<Foreign> {
    let footer = tail.len().checked_sub(512).map(|at| &tail[at..])?;
    footer.starts_with(b"conectix").then_some(Foreign::Vhd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_are_recognised_and_the_rest_is_raw() {
        let cases: &[(&[u8], Detected)] = &[
            (b"QFI\xfb\0\0\0\x03rest", Detected::Qcow2 { version: 3 }),
            (b"QFI\xfb\0\0\0\x01", Detected::Foreign(Foreign::Qcow1)),
            (b"KDMV\x01\0\0\0", Detected::Foreign(Foreign::Vmdk)),
            (b"# Disk DescriptorFile\n", Detected::Foreign(Foreign::Vmdk)),
            (b"vhdxfile", Detected::Foreign(Foreign::Vhdx)),
            (b"conectix", Detected::Foreign(Foreign::Vhd)),
            (b"LUKS\xba\xbe\0\x02", Detected::Foreign(Foreign::Luks)),
            (b"QED\0", Detected::Foreign(Foreign::Qed)),
            (b"\xebc\x90MSDOS5.0", Detected::Raw),
            (b"", Detected::Raw),
        ];
        for (head, want) in cases {
            assert_eq!(sniff(head), *want, "{head:?}");
        }
        let mut vdi = vec![0u8; 0x50];
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(sniff(&vdi), Detected::Foreign(Foreign::Vdi));
    }

    #[test]
    fn a_fixed_vhd_is_told_by_its_footer() {
        let mut tail = vec![0u8; 1024];
        assert_eq!(sniff_tail(&tail), None);
        tail[512..520].copy_from_slice(b"conectix");
        assert_eq!(sniff_tail(&tail), Some(Foreign::Vhd));
        assert_eq!(sniff_tail(b"short"), None);
    }
}
